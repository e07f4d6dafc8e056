import { createHash } from "crypto";
import {
    _InstanceType,
    DescribeSpotPriceHistoryCommand,
    EC2Client,
    Instance,
    paginateDescribeInstances,
    RunInstancesCommand,
    TerminateInstancesCommand,
    waitUntilInstanceRunning,
} from "@aws-sdk/client-ec2";
import {
    DeregisterTargetsCommand,
    DescribeTargetHealthCommand,
    ElasticLoadBalancingV2Client,
    RegisterTargetsCommand,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import type { RetryStrategyV2 } from "@smithy/types";
import { INSTANCE_STATES, InstanceState } from "./events";
import { LaunchAttempt, ObservedInstance, SpotPrices, TargetState } from "./model";
import { HandlerSettings } from "./settings";
import { instanceTags, TAG } from "./tags";

/**
 * The thin AWS side of the handler: observe the stack's instances, targets and prices; execute
 * one action. Retries are the SDK's (adaptive mode), waiting is the SDK's waiter.
 */

/** RunInstances errors that mean "this pool has no capacity for us now": try the next pool. */
export const CAPACITY_ERRORS = ["InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded", "Unsupported"];

/** Seconds to wait for a launched instance to run before registering it; state-change and reconcile cover a miss. */
const RUNNING_WAIT_SECONDS = 90;

export interface AwsClients {
    ec2: EC2Client;
    elb: ElasticLoadBalancingV2Client;
}

/**
 * Clients as Lambda should hold them: once per container, the SDK's adaptive retries. In Lambda
 * credentials and endpoint come from the runtime; `connection` is for an emulator.
 */
export function createClients(region: string, connection: { endpoint?: string; credentials?: { accessKeyId: string; secretAccessKey: string } } = {}): AwsClients {
    const config = { region, retryMode: "adaptive", maxAttempts: 6, ...connection };
    const ec2 = new EC2Client(config);
    withoutCapacityRetries(ec2);
    return { ec2, elb: new ElasticLoadBalancingV2Client(config) };
}

/**
 * AWS answers a capacity error with HTTP 500, which the SDK retries as transient. Retrying a pool
 * that has no capacity spends the two-minute budget for nothing: the next pool is the retry. So
 * the client keeps the SDK's own adaptive strategy for everything else and skips just these.
 */
export function withoutCapacityRetries(ec2: EC2Client): void {
    const sdkStrategy = ec2.config.retryStrategy;
    let wrapped: Promise<RetryStrategyV2> | undefined;
    ec2.config.retryStrategy = () =>
        (wrapped ??= sdkStrategy().then((strategy) => {
            const inner = strategy as RetryStrategyV2;
            return {
                acquireInitialRetryToken: (scope) => inner.acquireInitialRetryToken(scope),
                refreshRetryTokenForRetry: (token, info) =>
                    CAPACITY_ERRORS.includes(info.error?.name ?? "") ? Promise.reject(info.error) : inner.refreshRetryTokenForRetry(token, info),
                recordSuccess: (token) => inner.recordSuccess(token),
            };
        }));
}

export interface LaunchFailure {
    attempt: LaunchAttempt;
    code: string;
}

export type LaunchOutcome =
    | { launched: true; instanceId: string; attempt: LaunchAttempt; failures: LaunchFailure[] }
    | { launched: false; failures: LaunchFailure[] };

function errorName(error: unknown): string {
    return (error as { name?: string }).name ?? "Error";
}

/** A ClientToken unique to the event, purpose and pool: a repeated event gets the same reservation back. */
export function clientToken(idempotencyKey: string, attempt: LaunchAttempt): string {
    return createHash("sha256").update(`${idempotencyKey}|${attempt.zone}|${attempt.instanceType}|${attempt.market}`).digest("hex");
}

function tagValue(instance: Instance, key: string): string | undefined {
    return instance.Tags?.find((tag) => tag.Key === key)?.Value;
}

export function toObservedInstance(instance: Instance): ObservedInstance | undefined {
    const state = instance.State?.Name as InstanceState | undefined;
    const zone = instance.Placement?.AvailabilityZone;
    if (!instance.InstanceId || !zone || !state || !INSTANCE_STATES.includes(state) || !instance.InstanceType) {
        return undefined;
    }
    const launchedBy = tagValue(instance, TAG.launchedBy);
    return {
        id: instance.InstanceId,
        // The zone the instance holds is where it runs; the tag only records intent.
        zone,
        state,
        instanceType: instance.InstanceType,
        market: instance.InstanceLifecycle === "spot" ? "spot" : "on-demand",
        launchedBy: launchedBy === "pulumi" || launchedBy === "handler" ? launchedBy : undefined,
        replaces: tagValue(instance, TAG.replaces),
        launchTime: instance.LaunchTime?.getTime() ?? 0,
    };
}

/**
 * Every instance carrying the stack's tag, in the given states (all when none are given): one
 * paginated DescribeInstances, whatever the zone count.
 */
export async function describeStackInstances(ec2: EC2Client, stack: string, states?: InstanceState[]): Promise<ObservedInstance[]> {
    const observed: ObservedInstance[] = [];
    const pages = paginateDescribeInstances({ client: ec2 }, {
        Filters: [
            { Name: `tag:${TAG.stack}`, Values: [stack] },
            ...(states === undefined ? [] : [{ Name: "instance-state-name", Values: states }]),
        ],
    });
    for await (const page of pages) {
        for (const instance of (page.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? [])) {
            const parsed = toObservedInstance(instance);
            if (parsed) {
                observed.push(parsed);
            }
        }
    }
    return observed;
}

export class StackFleet {
    constructor(
        private readonly clients: AwsClients,
        private readonly settings: HandlerSettings,
    ) {}

    /** Every instance carrying this stack's tag, in any state. */
    describeInstances(): Promise<ObservedInstance[]> {
        return describeStackInstances(this.clients.ec2, this.settings.stack);
    }

    async describeTargets(): Promise<Record<string, TargetState>> {
        const result = await this.clients.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: this.settings.targetGroupArn }));
        return Object.fromEntries(
            (result.TargetHealthDescriptions ?? [])
                .filter((description) => description.Target?.Id)
                .map((description) => [description.Target?.Id as string, (description.TargetHealth?.State ?? "unavailable") as TargetState]),
        );
    }

    /** Current spot prices, zone → instance type → USD per hour: one call for every configured type and zone. */
    async spotPrices(): Promise<SpotPrices> {
        const result = await this.clients.ec2.send(new DescribeSpotPriceHistoryCommand({
            InstanceTypes: this.settings.instanceTypes as _InstanceType[],
            ProductDescriptions: [this.settings.spotProductDescription],
            StartTime: new Date(),
        }));
        const prices: SpotPrices = {};
        for (const entry of result.SpotPriceHistory ?? []) {
            const price = Number(entry.SpotPrice);
            if (entry.AvailabilityZone && entry.InstanceType && Number.isFinite(price)) {
                const zone = (prices[entry.AvailabilityZone] ??= {});
                zone[entry.InstanceType] = Math.min(zone[entry.InstanceType] ?? price, price);
            }
        }
        return prices;
    }

    async drain(instanceId: string): Promise<"drained" | "not-registered"> {
        try {
            await this.clients.elb.send(new DeregisterTargetsCommand({ TargetGroupArn: this.settings.targetGroupArn, Targets: [{ Id: instanceId }] }));
            return "drained";
        } catch (error) {
            // Already gone from the group (terminated instances leave it by themselves).
            if (errorName(error) === "InvalidTargetException" || errorName(error) === "InvalidTarget") {
                return "not-registered";
            }
            throw error;
        }
    }

    async register(instanceId: string): Promise<void> {
        await this.clients.elb.send(new RegisterTargetsCommand({ TargetGroupArn: this.settings.targetGroupArn, Targets: [{ Id: instanceId }] }));
    }

    async terminate(instanceId: string): Promise<void> {
        await this.clients.ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    }

    async waitUntilRunning(instanceId: string): Promise<void> {
        await waitUntilInstanceRunning(
            { client: this.clients.ec2, maxWaitTime: RUNNING_WAIT_SECONDS, minDelay: 2, maxDelay: 5 },
            { InstanceIds: [instanceId] },
        );
    }

    /** Tries each pool in order until one has capacity; any other error is thrown. */
    async launch(attempts: LaunchAttempt[], idempotencyKey: string, replaces: string | undefined): Promise<LaunchOutcome> {
        const failures: LaunchFailure[] = [];
        for (const attempt of attempts) {
            try {
                const instanceId = await this.runInstance(attempt, idempotencyKey, replaces);
                return { launched: true, instanceId, attempt, failures };
            } catch (error) {
                if (!CAPACITY_ERRORS.includes(errorName(error))) {
                    throw error;
                }
                failures.push({ attempt, code: errorName(error) });
            }
        }
        return { launched: false, failures };
    }

    private async runInstance(attempt: LaunchAttempt, idempotencyKey: string, replaces: string | undefined): Promise<string> {
        const { settings } = this;
        const tags = instanceTags({ instanceName: settings.instanceName, stack: settings.stack, zone: attempt.zone, region: settings.region, launchedBy: "handler", replaces });
        const result = await this.clients.ec2.send(new RunInstancesCommand({
            MinCount: 1,
            MaxCount: 1,
            LaunchTemplate: { LaunchTemplateId: settings.launchTemplateId, Version: settings.launchTemplateVersion },
            InstanceType: attempt.instanceType as _InstanceType,
            SubnetId: settings.subnetsByZone[attempt.zone],
            ...(attempt.market === "spot"
                ? {
                      InstanceMarketOptions: {
                          MarketType: "spot",
                          SpotOptions: { SpotInstanceType: "one-time", InstanceInterruptionBehavior: "terminate", MaxPrice: settings.spotMaxPrice },
                      },
                  }
                : {}),
            TagSpecifications: [
                { ResourceType: "instance", Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
                { ResourceType: "volume", Tags: [{ Key: TAG.stack, Value: settings.stack }] },
            ],
            ClientToken: clientToken(idempotencyKey, attempt),
        }));
        const instanceId = result.Instances?.[0]?.InstanceId;
        if (!instanceId) {
            throw new Error(`RunInstances in ${attempt.zone} answered without an instance id`);
        }
        return instanceId;
    }
}
