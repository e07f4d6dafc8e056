import { computedState, Materializer } from "./program";

/**
 * What `pulumi up` would do to each resource, as the engine diffs it: the mocks record inputs only,
 * so this applies the real provider's semantics to them. A resource is replaced when an input its
 * type is ForceNew on changes (terraform-provider-aws, the file cited per type); a replaced
 * resource gets a new id, so whatever refers to it sees a new value too; a launch template whose
 * inputs change gets a new version. The awsx VPC is a remote component (under mocks only its
 * inputs are seen), so its children are modelled as awsx computes them.
 */

interface ReplaceRule {
    /** terraform-provider-aws, `internal/service/…`: where the ForceNew attributes are declared. */
    source: string;
    /** The Pulumi input names of the ForceNew attributes. */
    replaceOn: string[];
}

/** The one table: per resource type, the inputs whose change replaces it. */
export const REPLACE_ON: Record<string, ReplaceRule> = {
    "aws:ec2/vpc:Vpc": { source: "ec2/vpc_.go", replaceOn: ["cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength"] },
    "aws:ec2/subnet:Subnet": {
        source: "ec2/vpc_subnet.go",
        replaceOn: ["availabilityZone", "availabilityZoneId", "cidrBlock", "vpcId", "ipv4IpamPoolId", "ipv4NetmaskLength", "ipv6IpamPoolId", "ipv6Native", "ipv6NetmaskLength", "outpostArn"],
    },
    // `vpc_id` is updated by detaching and attaching.
    "aws:ec2/internetGateway:InternetGateway": { source: "ec2/vpc_internet_gateway.go", replaceOn: [] },
    "aws:ec2/routeTable:RouteTable": { source: "ec2/vpc_route_table.go", replaceOn: ["vpcId"] },
    "aws:ec2/routeTableAssociation:RouteTableAssociation": { source: "ec2/vpc_route_table_association.go", replaceOn: ["subnetId", "gatewayId"] },
    "aws:ec2/route:Route": { source: "ec2/vpc_route.go", replaceOn: ["routeTableId", "destinationCidrBlock", "destinationIpv6CidrBlock", "destinationPrefixListId"] },
    "aws:ec2/securityGroup:SecurityGroup": { source: "ec2/vpc_security_group.go", replaceOn: ["name", "namePrefix", "description", "vpcId"] },
    // Every other attribute is modified in place (ModifySecurityGroupRules).
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": { source: "ec2/vpc_security_group_ingress_rule.go", replaceOn: ["securityGroupId"] },
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": { source: "ec2/vpc_security_group_egress_rule.go (the ingress rule's schema)", replaceOn: ["securityGroupId"] },
    "aws:ec2/launchTemplate:LaunchTemplate": { source: "ec2/ec2_launch_template.go", replaceOn: ["name", "namePrefix"] },
    // An ALB's `subnets` and `security_groups` are updated in place (only an NLB's subnet removal forces a new one).
    "aws:lb/loadBalancer:LoadBalancer": { source: "elbv2/load_balancer.go", replaceOn: ["name", "namePrefix", "internal", "loadBalancerType", "customerOwnedIpv4Pool"] },
    "aws:lb/targetGroup:TargetGroup": {
        source: "elbv2/target_group.go",
        replaceOn: ["name", "namePrefix", "port", "protocol", "protocolVersion", "targetType", "vpcId", "ipAddressType"],
    },
    "aws:lb/listener:Listener": { source: "elbv2/listener.go", replaceOn: ["loadBalancerArn"] },
    "aws:iam/role:Role": { source: "iam/role.go", replaceOn: ["name", "namePrefix", "path"] },
    "aws:iam/instanceProfile:InstanceProfile": { source: "iam/instance_profile.go", replaceOn: ["name", "namePrefix", "path"] },
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": { source: "iam/role_policy_attachment.go", replaceOn: ["role", "policyArn"] },
    "aws:iam/rolePolicy:RolePolicy": { source: "iam/role_policy.go", replaceOn: ["name", "namePrefix", "role"] },
    "aws:sqs/queue:Queue": { source: "sqs/queue.go", replaceOn: ["name", "namePrefix", "fifoQueue"] },
    "aws:sqs/queuePolicy:QueuePolicy": { source: "sqs/queue_policy.go", replaceOn: ["queueUrl"] },
    "aws:cloudwatch/logGroup:LogGroup": { source: "logs/group.go", replaceOn: ["name", "namePrefix", "logGroupClass"] },
    // `alarm_name` is the Pulumi `name`.
    "aws:cloudwatch/metricAlarm:MetricAlarm": { source: "cloudwatch/metric_alarm.go", replaceOn: ["name"] },
    "aws:cloudwatch/dashboard:Dashboard": { source: "cloudwatch/dashboard.go", replaceOn: ["dashboardName"] },
    "aws:cloudwatch/eventRule:EventRule": { source: "events/rule.go", replaceOn: ["name", "namePrefix", "eventBusName"] },
    "aws:cloudwatch/eventTarget:EventTarget": { source: "events/target.go", replaceOn: ["rule", "targetId", "eventBusName"] },
    // `function_name` is the Pulumi `name`.
    "aws:lambda/function:Function": { source: "lambda/function.go", replaceOn: ["name", "packageType"] },
    "aws:lambda/eventSourceMapping:EventSourceMapping": {
        source: "lambda/event_source_mapping.go",
        replaceOn: ["eventSourceArn", "startingPosition", "startingPositionTimestamp", "queues", "topics", "selfManagedEventSource", "selfManagedKafkaEventSourceConfig", "amazonManagedKafkaEventSourceConfig"],
    },
    "aws:lambda/invocation:Invocation": { source: "lambda/invocation.go", replaceOn: ["functionName", "qualifier", "triggers"] },
};

export type Operation = "same" | "update" | "replace" | "create" | "delete";

/** A resource as one run declared it, and what the engine would do to it against the run before. */
export interface PlannedResource {
    type: string;
    name: string;
    inputs: Record<string, any>;
    id: string;
    /** What the provider answered (ids, ARNs, versions), without the inputs. */
    outputs: Record<string, any>;
    op: Operation;
    /** The inputs that changed: for a replacement, the ForceNew ones. */
    changed: string[];
}

export type Plan = Map<string, PlannedResource>;

export const key = (type: string, name: string) => `${type}::${name}`;

/** Custom resources only: components have no provider and nothing to replace. */
function isCustom(type: string): boolean {
    return !type.startsWith("spot-availability:") && type !== "awsx:ec2:Vpc";
}

/** Inputs in a comparable form: a function's archive by its code, which `JSON.stringify` cannot see. */
async function comparable(type: string, inputs: Record<string, any>): Promise<Record<string, string>> {
    const entries = await Promise.all(Object.entries(inputs).map(async ([name, value]): Promise<[string, string]> => {
        if (type === "aws:lambda/function:Function" && name === "code") {
            return [name, await (await value.assets)["__index.js"].text];
        }
        return [name, JSON.stringify(value)];
    }));
    return Object.fromEntries(entries);
}

/** The inputs that differ, and which of them replace the resource. */
async function diff(type: string, before: Record<string, any>, after: Record<string, any>): Promise<{ changed: string[]; replacing: string[] }> {
    const rule = REPLACE_ON[type];
    if (rule === undefined) {
        throw new Error(`${type} is not in REPLACE_ON: add what it is ForceNew on, from terraform-provider-aws`);
    }
    const [was, is] = await Promise.all([comparable(type, before), comparable(type, after)]);
    const changed = [...new Set([...Object.keys(was), ...Object.keys(is)])].filter((name) => was[name] !== is[name]).sort();
    return { changed, replacing: changed.filter((name) => rule.replaceOn.includes(name)) };
}

/** What the engine does with one resource, given what the last run left. */
export async function planResource(type: string, name: string, inputs: Record<string, any>, prior: PlannedResource | undefined): Promise<PlannedResource> {
    if (!isCustom(type) || prior === undefined) {
        const { id, state } = computedState(type, name, inputs);
        return { type, name, inputs, id, outputs: state, op: prior === undefined ? "create" : "same", changed: [] };
    }
    const { changed, replacing } = await diff(type, prior.inputs, inputs);
    if (replacing.length > 0) {
        // A new resource: new id, new ARN, new autonamed name.
        const { id, state } = computedState(type, `${name}-replacement`, inputs);
        return { type, name, inputs, id, outputs: state, op: "replace", changed: replacing };
    }
    const op = changed.length > 0 ? "update" : "same";
    const outputs = type === "aws:ec2/launchTemplate:LaunchTemplate" && op === "update"
        ? { ...prior.outputs, latestVersion: prior.outputs.latestVersion + 1 }
        : prior.outputs;
    return { type, name, inputs, id: prior.id, outputs, op, changed };
}

/** A child of the awsx VPC: its inputs given the ids of its siblings, declared in awsx's order. */
interface ChildSpec {
    type: string;
    name: string;
    inputs: (idOf: (type: string, name: string) => string) => Record<string, any>;
}

const AWSX_VPC = "aws:ec2/vpc:Vpc";
const AWSX_GATEWAY = "aws:ec2/internetGateway:InternetGateway";

/** awsx's even split (`getSubnetSpecs` in `awsx/ec2/subnetDistributorNew.ts`), for a /16 and one public subnet per zone. */
function evenCidr(vpcCidr: string, zoneCount: number, index: number): string {
    const [a, b] = vpcCidr.split(".");
    const mask = 16 + Math.ceil(Math.log2(zoneCount));
    return `${a}.${b}.${index * 2 ** (24 - mask)}.0/${mask}`;
}

/**
 * The children `awsx.ec2.Vpc` declares for public subnets (pulumi-awsx `awsx/ec2/vpc.ts`): the VPC,
 * the internet gateway, and per zone, by position, `<name>-public-<i+1>`'s subnet, route table,
 * association and route. A subnet's CIDR is `cidrBlocks[i]` when given (`getSubnetSpecsExplicit`),
 * else the zone's share of the VPC.
 */
export function awsxVpcChildren(name: string, args: Record<string, any>): ChildSpec[] {
    const zones: string[] = args.availabilityZoneNames;
    const explicit: string[] | undefined = args.subnetSpecs?.[0]?.cidrBlocks;
    const children: ChildSpec[] = [
        { type: AWSX_VPC, name, inputs: () => ({ cidrBlock: args.cidrBlock, enableDnsHostnames: args.enableDnsHostnames, enableDnsSupport: args.enableDnsSupport }) },
        { type: AWSX_GATEWAY, name, inputs: (idOf) => ({ vpcId: idOf(AWSX_VPC, name) }) },
    ];
    zones.forEach((zone, index) => {
        const subnetName = `${name}-public-${index + 1}`;
        const cidrBlock = explicit?.[index] ?? evenCidr(args.cidrBlock, zones.length, index);
        children.push(
            { type: "aws:ec2/subnet:Subnet", name: subnetName, inputs: (idOf) => ({ vpcId: idOf(AWSX_VPC, name), availabilityZone: zone, cidrBlock, mapPublicIpOnLaunch: true }) },
            { type: "aws:ec2/routeTable:RouteTable", name: subnetName, inputs: (idOf) => ({ vpcId: idOf(AWSX_VPC, name) }) },
            {
                type: "aws:ec2/routeTableAssociation:RouteTableAssociation",
                name: subnetName,
                inputs: (idOf) => ({ routeTableId: idOf("aws:ec2/routeTable:RouteTable", subnetName), subnetId: idOf("aws:ec2/subnet:Subnet", subnetName) }),
            },
            {
                type: "aws:ec2/route:Route",
                name: subnetName,
                inputs: (idOf) => ({ routeTableId: idOf("aws:ec2/routeTable:RouteTable", subnetName), gatewayId: idOf(AWSX_GATEWAY, name), destinationCidrBlock: "0.0.0.0/0" }),
            },
        );
    });
    return children;
}

/** Plans the awsx VPC's children into `plan`; answers the VPC's outputs from their ids. */
async function planAwsxVpc(name: string, args: Record<string, any>, prior: Plan | undefined, plan: Plan): Promise<Record<string, any>> {
    const idOf = (type: string, child: string) => (plan.get(key(type, child)) as PlannedResource).id;
    for (const child of awsxVpcChildren(name, args)) {
        plan.set(key(child.type, child.name), await planResource(child.type, child.name, child.inputs(idOf), prior?.get(key(child.type, child.name))));
    }
    const subnets = (args.availabilityZoneNames as string[]).map((_, index) => idOf("aws:ec2/subnet:Subnet", `${name}-public-${index + 1}`));
    return { vpcId: idOf(AWSX_VPC, name), publicSubnetIds: subnets, privateSubnetIds: [], isolatedSubnetIds: [] };
}

/**
 * The mocks' answers as the engine would leave them after the run `prior` recorded (undefined: a
 * new stack), recording into `plan` what happens to each resource. Pass as `materialize`.
 */
export function planner(prior: Plan | undefined, plan: Plan): Materializer {
    return async (type, name, inputs) => {
        if (type === "awsx:ec2:Vpc") {
            const outputs = await planAwsxVpc(name, inputs, prior, plan);
            plan.set(key(type, name), { type, name, inputs, id: `${name}-id`, outputs, op: "same", changed: [] });
            return { id: `${name}-id`, state: outputs };
        }
        const planned = await planResource(type, name, inputs, prior?.get(key(type, name)));
        plan.set(key(type, name), planned);
        return { id: planned.id, state: planned.outputs };
    };
}

/** What the update deletes: what the last run declared and this one does not. */
export function deleted(prior: Plan, plan: Plan): PlannedResource[] {
    return [...prior.values()].filter((resource) => !plan.has(key(resource.type, resource.name)) && isCustom(resource.type)).map((resource) => ({ ...resource, op: "delete" as const }));
}
