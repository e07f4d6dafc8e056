import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    CreateLaunchTemplateCommand,
    CreateSecurityGroupCommand,
    CreateSubnetCommand,
    CreateVpcCommand,
    EC2Client,
    _InstanceType,
} from "@aws-sdk/client-ec2";
import { CreateTargetGroupCommand, ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { AddRoleToInstanceProfileCommand, CreateInstanceProfileCommand, CreateRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { CREDENTIALS, Emulator, motoConnection } from "./emulator";
import { DeclaredResource, ACCOUNT_ID, Materializer, ProgramRun, REGION, ROOT } from "./program";

/**
 * Mocks that create the declared stack for real in moto: network, security group, instance role
 * and profile, launch template, target group, queues; and the deploy invocation, which runs the
 * deploy function's archive exactly as `pulumi up` would upload it, so the initial fleet is the
 * handler's own launches. Every id and ARN the program bakes into the Lambda then exists in the
 * emulator. Run the program again with the same stack and it is an update: what exists keeps its
 * id, the functions get their new code, and an invocation whose input changed is invoked with
 * `tf.action: "update"`, as the provider invokes it.
 */

/** The event path's function and the deploy's, as the program names them. */
export type FunctionRole = "events" | "deploy";

/** The declared function of that role. */
export function declaredFunction(run: ProgramRun, role: FunctionRole = "events"): DeclaredResource {
    return run.one("aws:lambda/function:Function", role === "events" ? "-handler" : "-deploy");
}

/** The Lambda environment the emulator gives a function: region, credentials, the endpoint. */
export function lambdaEnvironment(emulator: Emulator, region = REGION): Record<string, string> {
    return { AWS_REGION: region, AWS_ENDPOINT_URL: emulator.endpoint, AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey };
}

export interface MotoStack {
    materialize: Materializer;
    /** `pulumi destroy`'s call of every deploy invocation: `tf.action: "delete"` with its last input. Resolves to the answers. */
    destroy(): Promise<unknown[]>;
    /** The deploy function's log lines, every invocation's, in order. */
    deployLogs(): Record<string, any>[];
}

interface Created {
    id: string;
    state: Record<string, any>;
    inputs: Record<string, any>;
}

export function inMoto(emulator: Emulator, region = REGION): MotoStack {
    const connection = motoConnection(emulator, region);
    const ec2 = new EC2Client(connection);
    const elb = new ElasticLoadBalancingV2Client(connection);
    const iam = new IAMClient(connection);
    const sqs = new SQSClient(connection);
    const ec2Arn = (resource: string) => `arn:aws:ec2:${region}:${ACCOUNT_ID}:${resource}`;
    const created = new Map<string, Created>();
    const functions = new Map<string, LambdaHandler>();
    /** One log per loaded deploy archive: each run of the program loads a new one. */
    const deployLogBooks: Record<string, any>[][] = [];
    const subnets = new Map<string, string>();

    const invoke = async (functionName: string, input: string, action: "create" | "update" | "delete", previous?: string) => {
        const handler = functions.get(functionName);
        if (handler === undefined) {
            throw new Error(`no function named ${functionName} was declared`);
        }
        return handler({ ...JSON.parse(input), tf: { action, prev_input: previous === undefined ? null : JSON.parse(previous) } });
    };

    const create = async (type: string, name: string, inputs: Record<string, any>, before: Created | undefined): Promise<{ id: string; state: Record<string, any> } | undefined> => {
        switch (type) {
            case "awsx:ec2:Vpc": {
                // awsx's outputs, which is all a remote component shows: its VPC and one public subnet per zone.
                const vpcId = before?.state.vpcId ?? (await ec2.send(new CreateVpcCommand({ CidrBlock: inputs.cidrBlock }))).Vpc?.VpcId as string;
                const zones = inputs.availabilityZoneNames as string[];
                for (const zone of zones.filter((z) => !subnets.has(z))) {
                    const subnet = await ec2.send(new CreateSubnetCommand({ VpcId: vpcId, CidrBlock: `10.0.${subnets.size * 16}.0/20`, AvailabilityZone: zone }));
                    subnets.set(zone, subnet.Subnet?.SubnetId as string);
                    emulator.proxy.subnetZones[subnet.Subnet?.SubnetId as string] = zone;
                }
                return { id: `${name}-id`, state: { vpcId, publicSubnetIds: zones.map((zone) => subnets.get(zone)), privateSubnetIds: [], isolatedSubnetIds: [] } };
            }
            case "aws:lambda/function:Function": {
                // New code on every run: an update uploads the archive the changed settings make.
                const { handler, logs } = await loadLambda(inputs.code, lambdaEnvironment(emulator, region));
                functions.set(name, handler);
                if (name.endsWith("-deploy")) {
                    deployLogBooks.push(logs);
                }
                return { id: name, state: { arn: `arn:aws:lambda:${region}:${ACCOUNT_ID}:function:${name}`, name } };
            }
            case "aws:lambda/invocation:Invocation": {
                if (before !== undefined && before.inputs.input === inputs.input) {
                    return before;
                }
                const answer = await invoke(inputs.functionName, inputs.input, before === undefined ? "create" : "update", before?.inputs.input);
                return { id: `${name}-id`, state: { result: JSON.stringify(answer) } };
            }
        }
        if (before !== undefined) {
            // Everything else is updated in place: same id.
            return before;
        }
        switch (type) {
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
            case "aws:sqs/queue:Queue": {
                // The handler sends its timers here; the event source mapping's reads are the rehearsal's to model.
                const url = (await sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl as string;
                const arn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }))).Attributes?.QueueArn as string;
                return { id: url, state: { arn, name, url } };
            }
            default:
                return undefined;
        }
    };

    return {
        deployLogs: () => deployLogBooks.flat(),
        materialize: async (type, name, inputs) => {
            const key = `${type}::${name}`;
            const result = await create(type, name, inputs, created.get(key));
            if (result !== undefined) {
                created.set(key, { ...result, inputs });
            }
            return result;
        },
        destroy: async () => {
            const answers: unknown[] = [];
            for (const resource of created.values()) {
                if ("result" in resource.state && typeof resource.inputs.functionName === "string") {
                    answers.push(await invoke(resource.inputs.functionName, resource.inputs.input, "delete", resource.inputs.input));
                }
            }
            return answers;
        },
    };
}

export type LambdaHandler = (event: unknown, context?: unknown) => Promise<unknown>;

/** The packages the Lambda runtime provides: the project's own SDK unless told otherwise. */
export interface RuntimePackages {
    nodeModules?: string;
}

/** The SDK as an older nodejs22.x runtime ships it (December 2024 releases), installed by `npm run setup:runtime-sdk`. */
export const RUNTIME_SDK_MODULES = path.join(ROOT, "tests", "runtime-sdk", "node_modules");

/** A function's `code` input under mocks: the archive `pulumi up` would upload. */
export type FunctionCode = { assets: Promise<Record<string, { text: Promise<string> }>> | Record<string, { text: Promise<string> }> };

/** The code of a declared function: the event path's unless told otherwise. */
export function functionCode(run: ProgramRun, role: FunctionRole = "events"): FunctionCode {
    return declaredFunction(run, role).inputs.code;
}

/**
 * Writes the function's archive, exactly as it would be uploaded, to a new folder beside a
 * `node_modules` link that stands in for the packages the Lambda runtime provides (the SDK).
 */
export async function writeArchive(code: FunctionCode, runtime: RuntimePackages = {}): Promise<{ dir: string; bytes: number }> {
    const assets = await code.assets;
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
export async function requireArchive(code: FunctionCode, runtime: RuntimePackages = {}): Promise<LambdaHandler> {
    const { dir } = await writeArchive(code, runtime);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require(path.join(dir, "__index.js")) as { handler: LambdaHandler }).handler;
}

/**
 * The function's archive, written out by `writeArchive` and loaded the way Lambda loads it
 * (`__index.handler`), with the environment Lambda would give it: credentials, region, and here
 * the emulator's endpoint. Log lines are collected as JSON.
 */
export async function loadLambda(code: FunctionCode, environment: Record<string, string>, runtime: RuntimePackages = {}): Promise<{ handler: LambdaHandler; logs: Record<string, any>[]; metrics: Record<string, any>[] }> {
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
    const handler = await inLambda(() => requireArchive(code, runtime));
    return { handler: (event) => inLambda(() => handler(event)), logs, metrics };
}
