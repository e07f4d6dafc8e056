import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    AuthorizeSecurityGroupEgressCommand,
    AuthorizeSecurityGroupIngressCommand,
    CreateLaunchTemplateCommand,
    CreateLaunchTemplateVersionCommand,
    CreateSecurityGroupCommand,
    CreateSubnetCommand,
    CreateVpcCommand,
    DeleteLaunchTemplateCommand,
    DeleteSecurityGroupCommand,
    DeleteSubnetCommand,
    DeleteVpcCommand,
    DescribeInstancesCommand,
    DescribeLaunchTemplatesCommand,
    EC2Client,
    IpPermission,
    ModifyLaunchTemplateCommand,
    ModifySecurityGroupRulesCommand,
    RevokeSecurityGroupEgressCommand,
    RevokeSecurityGroupIngressCommand,
    SecurityGroupRuleRequest,
    _InstanceType,
} from "@aws-sdk/client-ec2";
import {
    Action,
    CreateListenerCommand,
    CreateLoadBalancerCommand,
    CreateTargetGroupCommand,
    DeleteListenerCommand,
    DeleteLoadBalancerCommand,
    DeleteTargetGroupCommand,
    ElasticLoadBalancingV2Client,
    ModifyListenerCommand,
    ModifyTargetGroupAttributesCommand,
    ModifyTargetGroupCommand,
    SetSecurityGroupsCommand,
    SetSubnetsCommand,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import { AddRoleToInstanceProfileCommand, CreateInstanceProfileCommand, CreateRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { CREDENTIALS, Emulator, motoConnection } from "./emulator";
import { ACCOUNT_ID, DeclaredResource, Materializer, ProgramRun, REGION, ROOT, RunOptions, runProgram } from "./program";
import { canonicalJson } from "../handler/deployRequest";
import { awsxVpcChildren, REPLACE_ON } from "./replaceOn";

/**
 * Mocks that create the declared stack for real in moto, and apply every later run of the
 * program the way `pulumi up` applies an update, which the mocks alone do not: the engine diffs
 * each resource's inputs against the last run's and
 * - replaces it when an input its type replaces on changed (the plan test's `REPLACE_ON`, from
 *   terraform-provider-aws): the new one is created in place of the old one, which is deleted
 *   only once the whole update succeeded (Pulumi's create-before-delete), after the invocation;
 * - updates it in place with the provider's own calls otherwise (a launch template gets a new
 *   version, a target group its health check, a listener its default action, a rule its ports);
 * - deletes, at the end, what the program no longer declares.
 * The deploy invocation runs the deploy function's archive exactly as `pulumi up` would upload
 * it, with the payload the provider builds, so the fleet is the handler's own launches. Every id
 * and ARN the program bakes into the Lambda then exists in the emulator. Types not materialised
 * here keep the mocks' stand-ins.
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

/**
 * A failed update that stores its new inputs anyway: the invocation's (terraform-provider-aws
 * `lambda/invocation.go`, hashicorp/terraform-provider-aws#43447), so the next `pulumi up` does not
 * call it again with the same input.
 */
const KEEPS_INPUTS_OF_FAILED_UPDATE = new Set(["aws:lambda/invocation:Invocation"]);

/**
 * A launch template's inputs that are not part of its versions: every other change creates a
 * version (the `updateKeys` of `resourceLaunchTemplateUpdate`, ec2_launch_template.go).
 */
const LAUNCH_TEMPLATE_NON_VERSION_INPUTS = ["name", "namePrefix", "defaultVersion", "updateDefaultVersion", "tags", "tagsAll"];

export interface MotoStack {
    materialize: Materializer;
    /**
     * `pulumi up`: runs the program against what the last runs left, then deletes what this run
     * replaced or no longer declares, newest first. A failed run deletes nothing; the next one does.
     */
    up(options?: Omit<RunOptions, "materialize">): Promise<ProgramRun>;
    /**
     * `pulumi destroy`: deletes everything the state holds, newest first (dependents before what
     * they use), an invocation by calling it with `tf.action: "delete"` and its last input.
     * Resolves to the invocations' answers, in that order. `guardQuietSeconds` shortens the
     * teardown guard's quiet period (the event function's timeout, 60 s) so that a test need not
     * wait it out; the guard's input is otherwise the one in the state.
     */
    destroy(options?: { guardQuietSeconds?: number }): Promise<unknown[]>;
    /** Whether the state holds the resource: a failed create does not. */
    holds(type: string, name: string): boolean;
    /** Calls a declared function as Lambda would (its name's end picks it: `-handler` is the event path's), as the event source mapping calls it. */
    invoke(functionSuffix: string, payload: unknown): Promise<unknown>;
    /** The deploy function's log lines, every invocation's, in order. */
    deployLogs(): Record<string, any>[];
    /** What the engine did, in order, across every run (an invocation's step is its `tf.action`). */
    steps: EngineStep[];
}

export interface EngineStep {
    type: string;
    name: string;
    step: "create" | "replace" | "update" | "delete";
}

type InvocationAction = "create" | "update" | "delete";

/** A resource in the stack's state, as the last run that reached it left it. */
interface StackResource {
    type: string;
    name: string;
    id: string;
    state: Record<string, any>;
    inputs: Record<string, any>;
    /** Creation order: a resource can depend only on ones created before it. */
    created: number;
    /** State keys of the resources a component created (awsx's VPC): declared whenever it is. */
    children: string[];
}

/** How the provider creates, updates and deletes one type in moto. */
interface ResourceProvider {
    create(name: string, inputs: Record<string, any>): Promise<{ id: string; state: Record<string, any>; children?: string[] }>;
    /** In place, returning the new state; absent: no change of its inputs needs an AWS call moto keeps. */
    update?(before: StackResource, inputs: Record<string, any>): Promise<{ state: Record<string, any>; children?: string[] }>;
    /** Absent: the state forgets it and moto keeps it (no update in the tests replaces or removes one). */
    delete?(resource: StackResource): Promise<void>;
    /** Whether inputs differ where JSON cannot tell (a function's archive). */
    differs?(before: StackResource, inputs: Record<string, any>): Promise<boolean>;
}

const stateKey = (type: string, name: string) => `${type}::${name}`;

/** JSON with sorted keys and no undefined members: inputs compared as the engine compares property values. */
function canonical(value: unknown): string {
    return JSON.stringify(value, (_key, member) =>
        member !== null && typeof member === "object" && !Array.isArray(member)
            ? Object.fromEntries(Object.keys(member).sort().filter((key) => member[key] !== undefined).map((key) => [key, member[key]]))
            : member);
}

const changedInputs = (before: Record<string, any>, after: Record<string, any>, keys: string[]) => keys.filter((key) => canonical(before[key]) !== canonical(after[key]));

/** How the emulated Lambda differs from the program's declaration, for a test that needs it. */
export interface LambdaOverrides {
    /** The deploy function's timeout as its context reports it: a slow fleet's 15 minutes, compressed. */
    deployTimeoutSeconds?: number;
}

export function inMoto(emulator: Emulator, region = REGION, overrides: LambdaOverrides = {}): MotoStack {
    const connection = motoConnection(emulator, region);
    const ec2 = new EC2Client(connection);
    const elb = new ElasticLoadBalancingV2Client(connection);
    const iam = new IAMClient(connection);
    const sqs = new SQSClient(connection);
    const ec2Arn = (resource: string) => `arn:aws:ec2:${region}:${ACCOUNT_ID}:${resource}`;
    const resources = new Map<string, StackResource>();
    /** Replaced resources, deleted once the update succeeds. */
    const replaced: StackResource[] = [];
    /** What the current run declared. */
    const declared = new Set<string>();
    let creations = 0;
    /** Physical names already used per resource: a replacement gets a new one, as Pulumi's autonaming gives it. */
    const generations = new Map<string, number>();
    const functions = new Map<string, LambdaHandler>();
    /** Each function's timeout in seconds (Lambda's default is 3). */
    const timeouts = new Map<string, number>();
    /** One log per loaded deploy archive: each run of the program that changes it loads a new one. */
    const deployLogBooks: Record<string, any>[][] = [];

    const physicalName = (type: string, name: string) => {
        const generation = (generations.get(stateKey(type, name)) ?? 0) + 1;
        generations.set(stateKey(type, name), generation);
        return generation === 1 ? name : `${name}-${generation}`;
    };

    const steps: EngineStep[] = [];
    /** The provider's payload (invocation.go `buildInput`): the input, plus `tf.action` and the previous input object, null on create. */
    const invoke = async (functionName: string, input: string, action: InvocationAction, previousInput: string | undefined) => {
        const handler = functions.get(functionName);
        if (handler === undefined) {
            throw new Error(`no function named ${functionName} was declared`);
        }
        // Go's json.Marshal of a map sorts its keys, at every level: the function sees them sorted.
        const payload = JSON.parse(canonicalJson({ ...JSON.parse(input), tf: { action, prev_input: previousInput === undefined ? null : JSON.parse(previousInput) } }));
        // Lambda's context: the time left before the function's timeout.
        const deadline = Date.now() + (timeouts.get(functionName) ?? 3) * 1000;
        return handler(payload, { getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()) });
    };

    const loadFunction = async (name: string, inputs: Record<string, any>) => {
        const { handler, logs } = await loadLambda(inputs.code, lambdaEnvironment(emulator, region));
        const deploy = name.endsWith("-deploy");
        functions.set(name, handler);
        timeouts.set(name, deploy ? overrides.deployTimeoutSeconds ?? inputs.timeout : inputs.timeout);
        if (deploy) {
            deployLogBooks.push(logs);
        }
        return { state: { arn: `arn:aws:lambda:${region}:${ACCOUNT_ID}:function:${name}`, name } };
    };

    /**
     * AWS refuses to delete a security group or subnet while an instance's network interface uses
     * it, shutting-down ones included (DependencyViolation, which the provider retries for 15 and
     * 20 minutes before failing); moto deletes it. The emulator refuses as AWS would.
     */
    const refuseWhileInUse = async (id: string, filter: "instance.group-id" | "subnet-id") => {
        const users = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: filter, Values: [id] }, { Name: "instance-state-name", Values: ["pending", "running", "stopping", "stopped", "shutting-down"] }] }));
        const instances = (users.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId);
        if (instances.length > 0) {
            throw new Error(`DependencyViolation: resource ${id} has a dependent object (${instances.join(", ")})`);
        }
    };

    const securityGroupRule = (direction: "ingress" | "egress"): ResourceProvider => ({
        create: async (_name, inputs) => {
            const request = { GroupId: inputs.securityGroupId, IpPermissions: [ipPermission(inputs)] };
            const answer = direction === "ingress"
                ? await ec2.send(new AuthorizeSecurityGroupIngressCommand(request))
                : await ec2.send(new AuthorizeSecurityGroupEgressCommand(request));
            const id = answer.SecurityGroupRules?.[0].SecurityGroupRuleId as string;
            return { id, state: { arn: ec2Arn(`security-group-rule/${id}`), securityGroupRuleId: id } };
        },
        // vpc_security_group_ingress_rule.go: every change but the group's is ModifySecurityGroupRules.
        update: async (before, inputs) => {
            await ec2.send(new ModifySecurityGroupRulesCommand({
                GroupId: inputs.securityGroupId,
                SecurityGroupRules: [{ SecurityGroupRuleId: before.id, SecurityGroupRule: securityGroupRuleRequest(inputs) }],
            }));
            return { state: before.state };
        },
        delete: async ({ id, inputs }) => {
            const request = { GroupId: inputs.securityGroupId, SecurityGroupRuleIds: [id] };
            await (direction === "ingress" ? ec2.send(new RevokeSecurityGroupIngressCommand(request)) : ec2.send(new RevokeSecurityGroupEgressCommand(request)));
        },
    });

    const providers: Record<string, ResourceProvider> = {
        "awsx:ec2:Vpc": {
            // A remote component: its children are what awsx would declare, so a subnet whose zone
            // or CIDR moved is replaced.
            create: (name, inputs) => applyVpcLayout(name, inputs),
            update: (before, inputs) => applyVpcLayout(before.name, inputs),
        },
        "aws:ec2/vpc:Vpc": {
            create: async (_name, inputs) => {
                const vpcId = (await ec2.send(new CreateVpcCommand({ CidrBlock: inputs.cidrBlock }))).Vpc?.VpcId as string;
                return { id: vpcId, state: { arn: ec2Arn(`vpc/${vpcId}`) } };
            },
            delete: async ({ id }) => void (await ec2.send(new DeleteVpcCommand({ VpcId: id }))),
        },
        "aws:ec2/subnet:Subnet": {
            create: async (_name, inputs) => {
                const subnetId = (await ec2.send(new CreateSubnetCommand({ VpcId: inputs.vpcId, CidrBlock: inputs.cidrBlock, AvailabilityZone: inputs.availabilityZone }))).Subnet?.SubnetId as string;
                emulator.proxy.subnetZones[subnetId] = inputs.availabilityZone;
                return { id: subnetId, state: { arn: ec2Arn(`subnet/${subnetId}`) } };
            },
            delete: async ({ id }) => {
                await refuseWhileInUse(id, "subnet-id");
                await ec2.send(new DeleteSubnetCommand({ SubnetId: id }));
            },
        },
        "aws:ec2/securityGroup:SecurityGroup": {
            create: async (name, inputs) => {
                const groupId = (await ec2.send(new CreateSecurityGroupCommand({ GroupName: physicalName("aws:ec2/securityGroup:SecurityGroup", name), Description: inputs.description, VpcId: inputs.vpcId }))).GroupId as string;
                // vpc_security_group.go removes the egress rule AWS adds to a new group: egress is the rules' to declare.
                await ec2.send(new RevokeSecurityGroupEgressCommand({ GroupId: groupId, IpPermissions: [{ IpProtocol: "-1", IpRanges: [{ CidrIp: "0.0.0.0/0" }] }] }));
                return { id: groupId, state: { arn: ec2Arn(`security-group/${groupId}`) } };
            },
            delete: async ({ id }) => {
                await refuseWhileInUse(id, "instance.group-id");
                await ec2.send(new DeleteSecurityGroupCommand({ GroupId: id }));
            },
        },
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": securityGroupRule("ingress"),
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": securityGroupRule("egress"),
        "aws:iam/role:Role": {
            create: async (name, inputs) => {
                const role = await iam.send(new CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: inputs.assumeRolePolicy }));
                return { id: name, state: { arn: role.Role?.Arn, name } };
            },
        },
        "aws:iam/instanceProfile:InstanceProfile": {
            create: async (name, inputs) => {
                const profile = await iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: name }));
                await iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: name, RoleName: inputs.role }));
                return { id: name, state: { arn: profile.InstanceProfile?.Arn, name } };
            },
        },
        "aws:ec2/launchTemplate:LaunchTemplate": {
            create: async (name, inputs) => {
                const template = await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: physicalName("aws:ec2/launchTemplate:LaunchTemplate", name), VersionDescription: inputs.description, LaunchTemplateData: launchTemplateData(inputs) }));
                const id = template.LaunchTemplate?.LaunchTemplateId as string;
                return { id, state: { arn: ec2Arn(`launch-template/${id}`), latestVersion: 1, defaultVersion: 1 } };
            },
            // resourceLaunchTemplateUpdate: a new version with the whole template data (moto 5.2.5
            // ignores SourceVersion), made the default only with updateDefaultVersion, then read back.
            update: async (before, inputs) => {
                const versionInputs = Object.keys({ ...before.inputs, ...inputs }).filter((key) => !LAUNCH_TEMPLATE_NON_VERSION_INPUTS.includes(key));
                let latestVersion: number = before.state.latestVersion;
                if (changedInputs(before.inputs, inputs, versionInputs).length > 0) {
                    const version = await ec2.send(new CreateLaunchTemplateVersionCommand({ LaunchTemplateId: before.id, VersionDescription: inputs.description, LaunchTemplateData: launchTemplateData(inputs) }));
                    latestVersion = version.LaunchTemplateVersion?.VersionNumber as number;
                }
                if (inputs.updateDefaultVersion === true || changedInputs(before.inputs, inputs, ["defaultVersion"]).length > 0) {
                    const defaultVersion = inputs.updateDefaultVersion === true ? latestVersion : inputs.defaultVersion;
                    await ec2.send(new ModifyLaunchTemplateCommand({ LaunchTemplateId: before.id, DefaultVersion: String(defaultVersion) }));
                }
                const [template] = (await ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateIds: [before.id] }))).LaunchTemplates ?? [];
                return { state: { ...before.state, latestVersion: template.LatestVersionNumber, defaultVersion: template.DefaultVersionNumber } };
            },
            delete: async ({ id }) => void (await ec2.send(new DeleteLaunchTemplateCommand({ LaunchTemplateId: id }))),
        },
        "aws:lb/loadBalancer:LoadBalancer": {
            create: async (name, inputs) => {
                const [balancer] = (await elb.send(new CreateLoadBalancerCommand({
                    Name: physicalName("aws:lb/loadBalancer:LoadBalancer", name),
                    Type: inputs.loadBalancerType,
                    Scheme: inputs.internal === true ? "internal" : "internet-facing",
                    Subnets: inputs.subnets,
                    SecurityGroups: inputs.securityGroups,
                }))).LoadBalancers ?? [];
                return { id: balancer.LoadBalancerArn as string, state: { arn: balancer.LoadBalancerArn, dnsName: balancer.DNSName, zoneId: balancer.CanonicalHostedZoneId } };
            },
            // load_balancer.go: SetSubnets and SetSecurityGroups for an application load balancer.
            update: async (before, inputs) => {
                if (changedInputs(before.inputs, inputs, ["subnets"]).length > 0) {
                    await elb.send(new SetSubnetsCommand({ LoadBalancerArn: before.id, Subnets: inputs.subnets }));
                }
                if (changedInputs(before.inputs, inputs, ["securityGroups"]).length > 0) {
                    await elb.send(new SetSecurityGroupsCommand({ LoadBalancerArn: before.id, SecurityGroups: inputs.securityGroups }));
                }
                return { state: before.state };
            },
            delete: async ({ id }) => void (await elb.send(new DeleteLoadBalancerCommand({ LoadBalancerArn: id }))),
        },
        "aws:lb/targetGroup:TargetGroup": {
            create: async (name, inputs) => {
                const [group] = (await elb.send(new CreateTargetGroupCommand({
                    Name: physicalName("aws:lb/targetGroup:TargetGroup", name),
                    Protocol: inputs.protocol,
                    Port: inputs.port,
                    VpcId: inputs.vpcId,
                    TargetType: inputs.targetType,
                    ...healthCheckRequest(inputs.healthCheck),
                }))).TargetGroups ?? [];
                const arn = group.TargetGroupArn as string;
                await setTargetGroupAttributes(arn, inputs);
                return { id: arn, state: { arn, name: group.TargetGroupName } };
            },
            // target_group.go: ModifyTargetGroup for the health check, attributes for the rest.
            update: async (before, inputs) => {
                if (changedInputs(before.inputs, inputs, ["healthCheck"]).length > 0) {
                    await elb.send(new ModifyTargetGroupCommand({ TargetGroupArn: before.id, ...healthCheckRequest(inputs.healthCheck) }));
                }
                if (changedInputs(before.inputs, inputs, ["deregistrationDelay"]).length > 0) {
                    await setTargetGroupAttributes(before.id, inputs);
                }
                return { state: before.state };
            },
            delete: async ({ id }) => void (await elb.send(new DeleteTargetGroupCommand({ TargetGroupArn: id }))),
        },
        "aws:lb/listener:Listener": {
            create: async (_name, inputs) => {
                const [listener] = (await elb.send(new CreateListenerCommand({ LoadBalancerArn: inputs.loadBalancerArn, ...listenerRequest(inputs) }))).Listeners ?? [];
                return { id: listener.ListenerArn as string, state: { arn: listener.ListenerArn } };
            },
            // listener.go: everything but the load balancer is ModifyListener.
            update: async (before, inputs) => {
                await elb.send(new ModifyListenerCommand({ ListenerArn: before.id, ...listenerRequest(inputs) }));
                return { state: before.state };
            },
            delete: async ({ id }) => void (await elb.send(new DeleteListenerCommand({ ListenerArn: id }))),
        },
        "aws:sqs/queue:Queue": {
            // The handler sends its timers here; the event source mapping's reads are the rehearsal's to model.
            create: async (name) => {
                const url = (await sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl as string;
                const arn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }))).Attributes?.QueueArn as string;
                return { id: url, state: { arn, name, url } };
            },
        },
        "aws:lambda/function:Function": {
            create: async (name, inputs) => ({ id: name, ...(await loadFunction(name, inputs)) }),
            // New code: the settings are baked into the archive.
            update: (before, inputs) => loadFunction(before.name, inputs),
            differs: async (before, inputs) => (await archiveText(before.inputs.code)) !== (await archiveText(inputs.code)),
            delete: async ({ name }) => void functions.delete(name),
        },
        "aws:lambda/invocation:Invocation": {
            create: async (name, inputs) => {
                const answer = await invoke(inputs.functionName, inputs.input, "create", undefined);
                return { id: `${name}-id`, state: { result: JSON.stringify(answer) } };
            },
            update: async (before, inputs) => {
                const answer = await invoke(inputs.functionName, inputs.input, "update", before.inputs.input);
                return { state: { result: JSON.stringify(answer) } };
            },
            // invocation.go: on delete, the old and the new input are both the last one stored.
            delete: async ({ inputs }) => void (await invoke(inputs.functionName, inputs.input, "delete", inputs.input)),
        },
    };

    async function setTargetGroupAttributes(arn: string, inputs: Record<string, any>): Promise<void> {
        if (inputs.deregistrationDelay !== undefined) {
            await elb.send(new ModifyTargetGroupAttributesCommand({ TargetGroupArn: arn, Attributes: [{ Key: "deregistration_delay.timeout_seconds", Value: String(inputs.deregistrationDelay) }] }));
        }
    }

    /**
     * The awsx VPC's children as the plan test lays them out (`awsxVpcChildren`), each applied as
     * its own resource where moto holds it; its outputs as a remote component shows them.
     */
    async function applyVpcLayout(name: string, inputs: Record<string, any>) {
        const children = awsxVpcChildren(name, inputs).filter((child) => child.type in providers);
        const idOf = (type: string, child: string) => (resources.get(stateKey(type, child)) as StackResource).id;
        for (const child of children) {
            await apply(child.type, child.name, child.inputs(idOf));
        }
        const publicSubnetIds = (inputs.availabilityZoneNames as string[]).map((_, index) => idOf("aws:ec2/subnet:Subnet", `${name}-public-${index + 1}`));
        return {
            id: `${name}-id`,
            state: { vpcId: idOf("aws:ec2/vpc:Vpc", name), publicSubnetIds, privateSubnetIds: [], isolatedSubnetIds: [] },
            children: children.map((child) => stateKey(child.type, child.name)),
        };
    }

    const declare = (key: string) => {
        declared.add(key);
        for (const child of resources.get(key)?.children ?? []) {
            declare(child);
        }
    };

    const remember = (type: string, name: string, inputs: Record<string, any>, result: { id: string; state: Record<string, any>; children?: string[] }, created = ++creations) => {
        const resource = { type, name, inputs, id: result.id, state: result.state, created, children: result.children ?? [] };
        resources.set(stateKey(type, name), resource);
        return resource;
    };

    /** One step of the engine's plan for a declared resource: create, replace, update or keep it. */
    async function apply(type: string, name: string, inputs: Record<string, any>): Promise<StackResource> {
        const provider = providers[type];
        const key = stateKey(type, name);
        const before = resources.get(key);
        const record = (step: EngineStep["step"]) => steps.push({ type, name, step });
        let after: StackResource;
        if (before === undefined) {
            record("create");
            after = remember(type, name, inputs, await provider.create(name, inputs));
        } else if (changedInputs(before.inputs, inputs, REPLACE_ON[type]?.replaceOn ?? []).length > 0) {
            replaced.push(before);
            record("replace");
            after = remember(type, name, inputs, await provider.create(name, inputs));
        } else if (canonical(before.inputs) !== canonical(inputs) || (await provider.differs?.(before, inputs))) {
            record("update");
            try {
                const updated = (await provider.update?.(before, inputs)) ?? { state: before.state };
                after = remember(type, name, inputs, { id: before.id, state: updated.state, children: updated.children ?? before.children }, before.created);
            } catch (error) {
                if (KEEPS_INPUTS_OF_FAILED_UPDATE.has(type)) {
                    remember(type, name, inputs, before, before.created);
                }
                throw error;
            }
        } else {
            after = before;
        }
        declare(key);
        return after;
    }

    /** Deletes what the update replaced or no longer declares, newest first: dependents before what they use. */
    async function deleteRetired(): Promise<void> {
        const retired = [...replaced, ...[...resources.entries()].filter(([key]) => !declared.has(key)).map(([, resource]) => resource)].sort((a, b) => b.created - a.created);
        for (const resource of retired) {
            await remove(resource);
        }
    }

    async function remove(resource: StackResource): Promise<void> {
        steps.push({ type: resource.type, name: resource.name, step: "delete" });
        await providers[resource.type].delete?.(resource);
        if (replaced.includes(resource)) {
            replaced.splice(replaced.indexOf(resource), 1);
        }
        const key = stateKey(resource.type, resource.name);
        if (resources.get(key) === resource) {
            resources.delete(key);
        }
    }

    const materialize: Materializer = async (type, name, inputs) => {
        if (!(type in providers)) {
            return undefined;
        }
        const { id, state } = await apply(type, name, inputs);
        return { id, state };
    };

    return {
        deployLogs: () => deployLogBooks.flat(),
        holds: (type, name) => resources.has(stateKey(type, name)),
        invoke: async (functionSuffix, payload) => {
            const names = [...functions.keys()].filter((name) => name.endsWith(functionSuffix));
            if (names.length !== 1) {
                throw new Error(`${names.length} functions end with ${functionSuffix}: ${[...functions.keys()].join(", ")}`);
            }
            return (functions.get(names[0]) as LambdaHandler)(payload);
        },
        steps,
        materialize,
        up: async (options = {}) => {
            declared.clear();
            const run = await runProgram({ ...options, materialize });
            await deleteRetired();
            return run;
        },
        destroy: async (options = {}) => {
            const answers: unknown[] = [];
            const quieter = (input: string) => {
                const parsed = JSON.parse(input);
                return parsed.teardownGuard === undefined || options.guardQuietSeconds === undefined ? input : JSON.stringify({ teardownGuard: { quietSeconds: options.guardQuietSeconds } });
            };
            for (const resource of [...resources.values()].sort((a, b) => b.created - a.created)) {
                if (resource.type === "aws:lambda/invocation:Invocation") {
                    const input = quieter(resource.inputs.input);
                    answers.push(await invoke(resource.inputs.functionName, input, "delete", input));
                    steps.push({ type: resource.type, name: resource.name, step: "delete" });
                    resources.delete(stateKey(resource.type, resource.name));
                } else {
                    await remove(resource);
                }
            }
            return answers;
        },
    };
}

/** The launch template's data as the provider expands it (`expandRequestLaunchTemplateData`), for what moto launches with. */
function launchTemplateData(inputs: Record<string, any>) {
    return {
        ImageId: inputs.imageId,
        InstanceType: inputs.instanceType as _InstanceType,
        KeyName: inputs.keyName,
        IamInstanceProfile: { Arn: inputs.iamInstanceProfile.arn },
        SecurityGroupIds: inputs.vpcSecurityGroupIds,
        UserData: inputs.userData,
        MetadataOptions: { HttpTokens: inputs.metadataOptions.httpTokens, HttpEndpoint: inputs.metadataOptions.httpEndpoint },
    };
}

function ipPermission(inputs: Record<string, any>): IpPermission {
    const allPorts = inputs.ipProtocol === "-1";
    return {
        IpProtocol: inputs.ipProtocol,
        FromPort: allPorts ? undefined : inputs.fromPort,
        ToPort: allPorts ? undefined : inputs.toPort,
        IpRanges: inputs.cidrIpv4 === undefined ? undefined : [{ CidrIp: inputs.cidrIpv4, Description: inputs.description }],
        UserIdGroupPairs: inputs.referencedSecurityGroupId === undefined ? undefined : [{ GroupId: inputs.referencedSecurityGroupId, Description: inputs.description }],
    };
}

function securityGroupRuleRequest(inputs: Record<string, any>): SecurityGroupRuleRequest {
    const allPorts = inputs.ipProtocol === "-1";
    return {
        IpProtocol: inputs.ipProtocol,
        FromPort: allPorts ? -1 : inputs.fromPort,
        ToPort: allPorts ? -1 : inputs.toPort,
        CidrIpv4: inputs.cidrIpv4,
        ReferencedGroupId: inputs.referencedSecurityGroupId,
        Description: inputs.description,
    };
}

function healthCheckRequest(healthCheck: Record<string, any> = {}) {
    return {
        HealthCheckEnabled: healthCheck.enabled,
        HealthCheckProtocol: healthCheck.protocol,
        HealthCheckPath: healthCheck.path,
        HealthCheckIntervalSeconds: healthCheck.interval,
        HealthCheckTimeoutSeconds: healthCheck.timeout,
        HealthyThresholdCount: healthCheck.healthyThreshold,
        UnhealthyThresholdCount: healthCheck.unhealthyThreshold,
        Matcher: healthCheck.matcher === undefined ? undefined : { HttpCode: healthCheck.matcher },
    };
}

function listenerRequest(inputs: Record<string, any>) {
    return {
        Port: inputs.port,
        Protocol: inputs.protocol,
        SslPolicy: inputs.sslPolicy,
        Certificates: inputs.certificateArn === undefined ? undefined : [{ CertificateArn: inputs.certificateArn }],
        DefaultActions: (inputs.defaultActions as Record<string, any>[]).map((action): Action => ({
            Type: action.type,
            TargetGroupArn: action.targetGroupArn,
            RedirectConfig: action.redirect === undefined ? undefined : { Protocol: action.redirect.protocol, Port: action.redirect.port, Host: action.redirect.host, Path: action.redirect.path, Query: action.redirect.query, StatusCode: action.redirect.statusCode },
            FixedResponseConfig: action.fixedResponse === undefined ? undefined : { ContentType: action.fixedResponse.contentType, MessageBody: action.fixedResponse.messageBody, StatusCode: action.fixedResponse.statusCode },
        })),
    };
}

/** A function archive's files, in order: what decides whether its code changed. */
async function archiveText(code: FunctionCode): Promise<string> {
    const assets = await code.assets;
    const texts = await Promise.all(Object.keys(assets).sort().map(async (file) => `${file}\n${await assets[file].text}`));
    return texts.join("\n");
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
    return { handler: (event, context) => inLambda(() => handler(event, context)), logs, metrics };
}
