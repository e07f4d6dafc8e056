import {
    CreateLaunchTemplateCommand,
    CreateSecurityGroupCommand,
    CreateSubnetCommand,
    CreateVpcCommand,
    DescribeInstancesCommand,
    EC2Client,
    Instance,
    RunInstancesCommand,
} from "@aws-sdk/client-ec2";
import { CreateTargetGroupCommand, DescribeTargetHealthCommand, ElasticLoadBalancingV2Client, RegisterTargetsCommand } from "@aws-sdk/client-elastic-load-balancing-v2";
import { CreateQueueCommand, SQSClient } from "@aws-sdk/client-sqs";
import { createClients } from "../handler/aws";
import { BatchResponse, createHandler } from "../handler";
import { HandlerSettings } from "../handler/settings";
import { instanceTags, TAG } from "../handler/tags";
import { AwsProxy } from "./awsProxy";
import { CREDENTIALS, Emulator, motoConnection, useEmulator } from "./emulator";

/**
 * A stack as `pulumi up` leaves it, built in moto with real SDK calls: VPC, one subnet per zone,
 * security group, launch template, target group, the handler's queue, and `instancesPerZone` spot
 * instances per zone tagged `launched-by: pulumi` and registered. Plus the handler, wired to it
 * through the proxy, and handed events as the event source mapping hands them: SQS batches.
 */

export const REGION = "us-east-2";
export const STACK = "spot-availability/test";

export interface WorldOptions {
    /** us-east-2 unless set: moto knows only its zones a to c; us-east-1 has a to f. */
    region?: string;
    zones?: string[];
    instancesPerZone?: number;
    settings?: Partial<HandlerSettings>;
}

export interface World {
    settings: HandlerSettings;
    /** Clients straight to moto, for setting up and asserting without being recorded. */
    ec2: EC2Client;
    elb: ElasticLoadBalancingV2Client;
    /** Logical name (`Prometheus-B`) → instance id of the instances "Pulumi" declared. */
    declared: Record<string, string>;
    /** Delivers the events to the handler as one SQS batch, one message each (message ids `m1`, `m2` …). */
    handle: (...events: unknown[]) => Promise<BatchResponse>;
    /** The handler as the program would bake it after `pulumi config set`: same stack, changed settings. */
    reconfigured(changes: Partial<HandlerSettings>): (...events: unknown[]) => Promise<BatchResponse>;
    /** The handler itself: takes any payload. */
    handler: (payload: unknown) => Promise<BatchResponse>;
    logs: Record<string, any>[];
    /** Embedded-metric-format documents the handler wrote. */
    metrics: Record<string, any>[];
    /** Owned instances by state. */
    instances(states?: string[]): Promise<Instance[]>;
    registeredTargets(): Promise<Record<string, string>>;
    /** Launches an instance of this stack behind the handler's back, as a lost or stray launch would leave it. */
    launchOwned(zone: string, launchedBy: "pulumi" | "handler", market?: "spot" | "on-demand"): Promise<string>;
}

export function tag(instance: Instance, key: string): string | undefined {
    return instance.Tags?.find((t) => t.Key === key)?.Value;
}

export async function buildWorld(emulator: Emulator, options: WorldOptions = {}): Promise<World> {
    const region = options.region ?? REGION;
    const zones = options.zones ?? ["a", "b", "c"].map((letter) => `${region}${letter}`);
    const perZone = options.instancesPerZone ?? 1;
    const direct = motoConnection(emulator, region);
    const ec2 = new EC2Client(direct);
    const elb = new ElasticLoadBalancingV2Client(direct);

    const vpcId = (await ec2.send(new CreateVpcCommand({ CidrBlock: "10.0.0.0/16" }))).Vpc?.VpcId as string;
    const subnetsByZone: Record<string, string> = {};
    for (const [index, zone] of zones.entries()) {
        const subnet = await ec2.send(new CreateSubnetCommand({ VpcId: vpcId, AvailabilityZone: zone, CidrBlock: `10.0.${index * 4}.0/22` }));
        subnetsByZone[zone] = subnet.Subnet?.SubnetId as string;
    }
    emulator.proxy.subnetZones = Object.fromEntries(Object.entries(subnetsByZone).map(([zone, id]) => [id, zone]));
    const groupId = (await ec2.send(new CreateSecurityGroupCommand({ GroupName: "instances", Description: "instances", VpcId: vpcId }))).GroupId as string;
    const template = await ec2.send(new CreateLaunchTemplateCommand({
        LaunchTemplateName: "spot-instances",
        LaunchTemplateData: {
            ImageId: "ami-12c6146b",
            InstanceType: "t3.micro",
            SecurityGroupIds: [groupId],
            MetadataOptions: { HttpTokens: "required", HttpEndpoint: "enabled" },
        },
    }));
    const targetGroupArn = (await elb.send(new CreateTargetGroupCommand({ Name: "spot-lb", Protocol: "HTTP", Port: 80, VpcId: vpcId, TargetType: "instance" })))
        .TargetGroups?.[0].TargetGroupArn as string;
    const queueUrl = (await new SQSClient(direct).send(new CreateQueueCommand({ QueueName: "spot-events" }))).QueueUrl as string;

    const settings: HandlerSettings = {
        stack: STACK,
        region,
        instanceName: "Prometheus",
        instanceTypes: ["t3.micro", "t3a.micro", "t2.micro"],
        instancesPerZone: perZone,
        subnetsByZone,
        launchTemplateId: template.LaunchTemplate?.LaunchTemplateId as string,
        launchTemplateVersion: 1,
        securityGroupIds: [],
        release: { batchPercent: 100, healthTimeoutSeconds: 300 },
        targetGroupArn,
        targetGroup: { healthCheckIntervalSeconds: 5, healthyThreshold: 2, deregistrationDelaySeconds: 30 },
        spotProductDescription: "Linux/UNIX",
        onDemandFallback: true,
        replaceOnRebalance: true,
        drainWhen: "replacement-healthy",
        queueUrl,
        ...options.settings,
    };

    const launchOwned = async (zone: string, launchedBy: "pulumi" | "handler", market: "spot" | "on-demand" = "spot") => {
        const tags = instanceTags({ instanceName: settings.instanceName, stack: STACK, zone, region, launchedBy });
        const launched = await ec2.send(new RunInstancesCommand({
            MinCount: 1,
            MaxCount: 1,
            LaunchTemplate: { LaunchTemplateId: settings.launchTemplateId, Version: "$Default" },
            SubnetId: subnetsByZone[zone],
            ...(market === "spot" ? { InstanceMarketOptions: { MarketType: "spot" } } : {}),
            TagSpecifications: [{ ResourceType: "instance", Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }],
        }));
        const id = launched.Instances?.[0].InstanceId as string;
        await elb.send(new RegisterTargetsCommand({ TargetGroupArn: targetGroupArn, Targets: [{ Id: id }] }));
        return id;
    };
    const declared: Record<string, string> = {};
    for (const zone of zones) {
        for (let ordinal = 1; ordinal <= perZone; ordinal++) {
            const name = instanceTags({ instanceName: settings.instanceName, stack: STACK, zone, region, launchedBy: "pulumi" }).Name;
            declared[ordinal === 1 ? name : `${name}-${ordinal}`] = await launchOwned(zone, "pulumi");
        }
    }

    const logs: Record<string, any>[] = [];
    const metrics: Record<string, any>[] = [];
    const handlerWith = (handlerSettings: HandlerSettings) => createHandler(handlerSettings, {
        clients: createClients(region, { endpoint: emulator.endpoint, credentials: CREDENTIALS }),
        log: (line) => logs.push(JSON.parse(line)),
        metrics: (line) => metrics.push(JSON.parse(line)),
    });
    const handler = handlerWith(settings);
    emulator.proxy.calls.length = 0;

    return {
        settings,
        ec2,
        elb,
        declared,
        handler,
        handle: (...events) => handler(sqsBatch(...events)),
        reconfigured: (changes) => {
            const changed = handlerWith({ ...settings, ...changes });
            return (...events) => changed(sqsBatch(...events));
        },
        logs,
        metrics,
        instances: async (states = ["pending", "running"]) => {
            const result = await ec2.send(new DescribeInstancesCommand({
                Filters: [{ Name: `tag:${TAG.stack}`, Values: [STACK] }, { Name: "instance-state-name", Values: states }],
            }));
            return (result.Reservations ?? []).flatMap((r) => r.Instances ?? []);
        },
        launchOwned,
        registeredTargets: async () => {
            const result = await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn }));
            return Object.fromEntries((result.TargetHealthDescriptions ?? []).map((d) => [d.Target?.Id as string, d.TargetHealth?.State as string]));
        },
    };
}

/** A world in a freshly reset emulator: every scenario starts from the same stack. */
export async function freshWorld(options: WorldOptions = {}): Promise<{ emulator: Emulator; world: World }> {
    const emulator = await useEmulator();
    await emulator.reset();
    return { emulator, world: await buildWorld(emulator, options) };
}

let sequence = 0;

/** A message the handler sent to its own queue: a timer. */
export interface SentMessage {
    delaySeconds: number;
    body: Record<string, any>;
}

/** Every message the handler sent to its own queue, in order, as the proxy recorded them. */
export function sentMessages(proxy: AwsProxy): SentMessage[] {
    return proxy.callsTo("SendMessageBatch").flatMap((call) =>
        (JSON.parse(call.params.Entries) as { MessageBody: string; DelaySeconds?: number }[]).map((entry) => ({ delaySeconds: entry.DelaySeconds ?? 0, body: JSON.parse(entry.MessageBody) })));
}

/** Events as an SQS event source mapping hands them to a function: one record each, message ids `m1`, `m2` … */
export function sqsBatch(...events: unknown[]) {
    return {
        Records: events.map((event, index) => ({
            messageId: `m${index + 1}`,
            receiptHandle: `receipt-${index + 1}`,
            body: typeof event === "string" ? event : JSON.stringify(event),
            attributes: { ApproximateReceiveCount: "1", SentTimestamp: String(Date.now()) },
            messageAttributes: {},
            eventSource: "aws:sqs",
            eventSourceARN: `arn:aws:sqs:${REGION}:123456789012:spot-events`,
            awsRegion: REGION,
        })),
    };
}

/** An EventBridge event as AWS delivers it. */
export function ec2Event(detailType: string, detail: Record<string, unknown>, id = `event-${++sequence}-${Date.now()}`) {
    return {
        version: "0",
        id,
        "detail-type": detailType,
        source: "aws.ec2",
        account: "123456789012",
        time: new Date().toISOString(),
        region: REGION,
        resources: typeof detail["instance-id"] === "string" ? [`arn:aws:ec2:${REGION}:123456789012:instance/${detail["instance-id"]}`] : [],
        detail,
    };
}

export function interruptionWarning(instanceId: string, id?: string) {
    return ec2Event("EC2 Spot Instance Interruption Warning", { "instance-id": instanceId, "instance-action": "terminate" }, id);
}

export function rebalanceRecommendation(instanceId: string, id?: string) {
    return ec2Event("EC2 Instance Rebalance Recommendation", { "instance-id": instanceId }, id);
}

export function stateChange(instanceId: string, state: string, id?: string) {
    return ec2Event("EC2 Instance State-change Notification", { "instance-id": instanceId, state }, id);
}

export function scheduledEvent(id = `schedule-${++sequence}-${Date.now()}`) {
    return {
        version: "0",
        id,
        "detail-type": "Scheduled Event",
        source: "aws.events",
        account: "123456789012",
        time: new Date().toISOString(),
        region: REGION,
        resources: ["arn:aws:events:us-east-2:123456789012:rule/spot-handler-reconcile"],
        detail: {},
    };
}
