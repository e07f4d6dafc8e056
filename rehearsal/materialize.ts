import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    CreateLaunchTemplateCommand,
    CreateSecurityGroupCommand,
    CreateSubnetCommand,
    CreateVpcCommand,
    EC2Client,
    RunInstancesCommand,
    _InstanceType,
} from "@aws-sdk/client-ec2";
import { CreateTargetGroupCommand, ElasticLoadBalancingV2Client, RegisterTargetsCommand } from "@aws-sdk/client-elastic-load-balancing-v2";
import { AddRoleToInstanceProfileCommand, CreateInstanceProfileCommand, CreateRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { CREDENTIALS, Emulator } from "./emulator";
import { ACCOUNT_ID, Materializer, ProgramRun, REGION, ROOT } from "./program";

/**
 * Mocks that create the declared stack for real in moto: network, security group, instance role
 * and profile, launch template, target group, queues, the initial instances and their
 * attachments. Every id and ARN the program bakes into the Lambda then exists in the emulator.
 */

const toTags = (tags: Record<string, string> | undefined) => Object.entries(tags ?? {}).map(([Key, Value]) => ({ Key, Value }));

export function inMoto(emulator: Emulator, region = REGION): Materializer {
    const connection = { region, endpoint: emulator.motoEndpoint, credentials: CREDENTIALS };
    const ec2 = new EC2Client(connection);
    const elb = new ElasticLoadBalancingV2Client(connection);
    const iam = new IAMClient(connection);
    const sqs = new SQSClient(connection);
    const ec2Arn = (resource: string) => `arn:aws:ec2:${region}:${ACCOUNT_ID}:${resource}`;

    return async (type, name, inputs) => {
        switch (type) {
            case "aws:ec2/vpc:Vpc": {
                const vpc = await ec2.send(new CreateVpcCommand({ CidrBlock: inputs.cidrBlock }));
                return { id: vpc.Vpc?.VpcId as string, state: {} };
            }
            case "aws:ec2/subnet:Subnet": {
                const subnet = await ec2.send(new CreateSubnetCommand({ VpcId: inputs.vpcId, CidrBlock: inputs.cidrBlock, AvailabilityZone: inputs.availabilityZone }));
                const id = subnet.Subnet?.SubnetId as string;
                emulator.proxy.subnetZones[id] = inputs.availabilityZone;
                return { id, state: { arn: ec2Arn(`subnet/${id}`) } };
            }
            case "aws:ec2/securityGroup:SecurityGroup": {
                const group = await ec2.send(new CreateSecurityGroupCommand({ GroupName: name, Description: inputs.description, VpcId: inputs.vpcId }));
                return { id: group.GroupId as string, state: { arn: ec2Arn(`security-group/${group.GroupId}`) } };
            }
            case "aws:iam/role:Role": {
                const role = await iam.send(new CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: inputs.assumeRolePolicy }));
                return { id: name, state: { arn: role.Role?.Arn, name } };
            }
            case "aws:iam/instanceProfile:InstanceProfile": {
                const profile = await iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: name }));
                await iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: name, RoleName: inputs.role }));
                return { id: name, state: { arn: profile.InstanceProfile?.Arn, name } };
            }
            case "aws:ec2/launchTemplate:LaunchTemplate": {
                const template = await ec2.send(new CreateLaunchTemplateCommand({
                    LaunchTemplateName: name,
                    LaunchTemplateData: {
                        ImageId: inputs.imageId,
                        InstanceType: inputs.instanceType as _InstanceType,
                        KeyName: inputs.keyName,
                        IamInstanceProfile: { Arn: inputs.iamInstanceProfile.arn },
                        SecurityGroupIds: inputs.vpcSecurityGroupIds,
                        UserData: inputs.userData,
                        MetadataOptions: { HttpTokens: inputs.metadataOptions.httpTokens, HttpEndpoint: inputs.metadataOptions.httpEndpoint },
                    },
                }));
                const id = template.LaunchTemplate?.LaunchTemplateId as string;
                return { id, state: { arn: ec2Arn(`launch-template/${id}`), latestVersion: 1, defaultVersion: 1 } };
            }
            case "aws:lb/targetGroup:TargetGroup": {
                const group = await elb.send(new CreateTargetGroupCommand({
                    Name: name,
                    Protocol: inputs.protocol,
                    Port: inputs.port,
                    VpcId: inputs.vpcId,
                    TargetType: inputs.targetType,
                    HealthCheckIntervalSeconds: inputs.healthCheck.interval,
                    HealthyThresholdCount: inputs.healthCheck.healthyThreshold,
                }));
                const arn = group.TargetGroups?.[0].TargetGroupArn as string;
                return { id: arn, state: { arn } };
            }
            case "aws:ec2/instance:Instance": {
                const launched = await ec2.send(new RunInstancesCommand({
                    MinCount: 1,
                    MaxCount: 1,
                    LaunchTemplate: { LaunchTemplateId: inputs.launchTemplate.id, Version: inputs.launchTemplate.version },
                    InstanceType: inputs.instanceType as _InstanceType,
                    SubnetId: inputs.subnetId,
                    InstanceMarketOptions: { MarketType: inputs.instanceMarketOptions.marketType },
                    TagSpecifications: [{ ResourceType: "instance", Tags: toTags(inputs.tags) }],
                }));
                const id = launched.Instances?.[0].InstanceId as string;
                return { id, state: { arn: ec2Arn(`instance/${id}`) } };
            }
            case "aws:sqs/queue:Queue": {
                // The handler sends its timers here; the event source mapping's reads are the rehearsal's to model.
                const url = (await sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl as string;
                const arn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }))).Attributes?.QueueArn as string;
                return { id: url, state: { arn, name, url } };
            }
            case "aws:lb/targetGroupAttachment:TargetGroupAttachment":
                await elb.send(new RegisterTargetsCommand({ TargetGroupArn: inputs.targetGroupArn, Targets: [{ Id: inputs.targetId, Port: inputs.port }] }));
                return { id: `${inputs.targetGroupArn}-${inputs.targetId}`, state: {} };
            default:
                return undefined;
        }
    };
}

export type LambdaHandler = (event: unknown) => Promise<unknown>;

/** The packages the Lambda runtime provides: the project's own SDK unless told otherwise. */
export interface RuntimePackages {
    nodeModules?: string;
}

/** The SDK as an older nodejs22.x runtime ships it (December 2024 releases), installed by `npm run setup:runtime-sdk`. */
export const RUNTIME_SDK_MODULES = path.join(ROOT, "tests", "runtime-sdk", "node_modules");

/**
 * Writes the function's archive, exactly as it would be uploaded, to a new folder beside a
 * `node_modules` link that stands in for the packages the Lambda runtime provides (the SDK).
 */
export async function writeArchive(run: ProgramRun, runtime: RuntimePackages = {}): Promise<{ dir: string; bytes: number }> {
    const assets: Record<string, { text: Promise<string> }> = await run.one("aws:lambda/function:Function").inputs.code.assets;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "spot-lambda-"));
    let bytes = 0;
    for (const [file, asset] of Object.entries(assets)) {
        const text = await asset.text;
        bytes += Buffer.byteLength(text);
        fs.writeFileSync(path.join(dir, file), text);
    }
    fs.symlinkSync(runtime.nodeModules ?? path.join(ROOT, "node_modules"), path.join(dir, "node_modules"), "dir");
    return { dir, bytes };
}

/** The archive's handler, required as Lambda requires `__index.js`; the caller provides Lambda's environment. */
export async function requireArchive(run: ProgramRun, runtime: RuntimePackages = {}): Promise<LambdaHandler> {
    const { dir } = await writeArchive(run, runtime);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require(path.join(dir, "__index.js")) as { handler: LambdaHandler }).handler;
}

/**
 * The function's archive, written out by `writeArchive` and loaded the way Lambda loads it
 * (`__index.handler`), with the environment Lambda would give it: credentials, region, and here
 * the emulator's endpoint. Log lines are collected as JSON.
 */
export async function loadLambda(run: ProgramRun, environment: Record<string, string>, runtime: RuntimePackages = {}): Promise<{ handler: LambdaHandler; logs: Record<string, any>[]; metrics: Record<string, any>[] }> {
    const logs: Record<string, any>[] = [];
    const metrics: Record<string, any>[] = [];
    // Lambda's environment while the module loads and whenever it runs; the test's own afterwards.
    const inLambda = async <T>(work: () => T | Promise<T>): Promise<T> => {
        const saved = { ...process.env };
        const log = console.log;
        const write = process.stdout.write;
        Object.assign(process.env, environment);
        console.log = (line: string) => logs.push(JSON.parse(line));
        process.stdout.write = ((chunk: string) => metrics.push(JSON.parse(chunk))) as unknown as typeof process.stdout.write;
        try {
            return await work();
        } finally {
            process.env = saved;
            console.log = log;
            process.stdout.write = write;
        }
    };
    const handler = await inLambda(() => requireArchive(run, runtime));
    return { handler: (event) => inLambda(() => handler(event)), logs, metrics };
}
