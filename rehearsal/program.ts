import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { fleetMemberName } from "../handler/tags";

/**
 * Runs the Pulumi program under runtime mocks, as `pulumi up --stack <name>` would run it, and
 * records every resource it declares. Config is what the CLI would hand the program: the
 * defaults `Pulumi.yaml` declares, overlaid with the stack's own settings.
 */

export const ROOT = path.resolve(__dirname, "..");
export const ACCOUNT_ID = "123456789012";
export const REGION = "us-east-2";
export const REGION_ZONES = ["us-east-2a", "us-east-2b", "us-east-2c"];
/** The zones the mocked account offers per region: us-east-1 has six, as AWS's does. */
const ZONES_BY_REGION: Record<string, string[]> = { [REGION]: REGION_ZONES, "us-east-1": ["a", "b", "c", "d", "e", "f"].map((letter) => `us-east-1${letter}`) };
/** Local Zones (opt-in, zone type `local-zone`) the account has opted into: a standard-zone lookup leaves them out. */
const LOCAL_ZONES_BY_REGION: Record<string, string[]> = { "us-east-1": ["us-east-1-bos-1a", "us-east-1-mia-2a"] };

export interface DeclaredResource {
    type: string;
    name: string;
    id: string;
    inputs: Record<string, any>;
    state: Record<string, any>;
    /** Logical names of the resources this one depends on, explicitly or through its inputs. */
    dependsOn: string[];
    /** Parent URNs this resource was once declared under (its `aliases`): the engine moves it, not replaces it. */
    formerParents: string[];
}

/** Facts the mocked account answers lookups with. */
export interface Account {
    subnets: Record<string, { availabilityZone: string; vpcId: string }>;
    images: Record<string, { architecture: string; rootDeviceName: string }>;
    hostedZones: Record<string, string>;
    /** The zones a region offers, where they differ from the mocked account's usual ones (a zone AWS adds later). */
    zones?: Record<string, string[]>;
}

export const DEFAULT_ACCOUNT: Account = {
    subnets: {
        "subnet-0aaaaaaaaaaaaaaa1": { availabilityZone: "us-east-2a", vpcId: "vpc-0123456789abcdef0" },
        "subnet-0bbbbbbbbbbbbbbb2": { availabilityZone: "us-east-2b", vpcId: "vpc-0123456789abcdef0" },
        "subnet-0ccccccccccccccc3": { availabilityZone: "us-east-2c", vpcId: "vpc-0123456789abcdef0" },
        "subnet-0ddddddddddddddd4": { availabilityZone: "us-east-2a", vpcId: "vpc-0123456789abcdef0" },
        "subnet-0eeeeeeeeeeeeeee5": { availabilityZone: "us-east-2b", vpcId: "vpc-0fedcba9876543210" },
    },
    images: {
        "ami-0123456789abcdef0": { architecture: "x86_64", rootDeviceName: "/dev/sda1" },
        "ami-0fedcba9876543210": { architecture: "arm64", rootDeviceName: "/dev/xvda" },
    },
    hostedZones: { "example.com": "Z0123456789EXAMPLE" },
};

/** `Pulumi.yaml`'s config defaults, as the CLI passes them: strings, lists as JSON. */
export function projectDefaults(): Record<string, string> {
    const project = parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8"));
    return Object.fromEntries(
        Object.entries<{ default: unknown }>(project.config).map(([key, declaration]) => [`${project.name}:${key}`, configText(declaration.default)]),
    );
}

/** A stack file's `config:` block, in the same form. */
export function stackConfig(stackName: string): Record<string, string> {
    const stack = parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stackName}.yaml`), "utf8"));
    return Object.fromEntries(Object.entries(stack.config).map(([key, value]) => [key, configText(value)]));
}

function configText(value: unknown): string {
    return typeof value === "string" ? value : JSON.stringify(value);
}

function arn(service: string, resource: string): string {
    return `arn:aws:${service}:${REGION}:${ACCOUNT_ID}:${resource}`;
}

function hex(seed: string, length: number): string {
    let hash = 2166136261;
    let out = "";
    while (out.length < length) {
        for (const char of seed + out.length) {
            hash = Math.imul(hash ^ char.charCodeAt(0), 16777619) >>> 0;
        }
        out += hash.toString(16).padStart(8, "0");
    }
    return out.slice(0, length);
}

/** What AWS would compute for a resource: ids of the right shape, ARNs, DNS names. */
export function computedState(type: string, name: string, inputs: Record<string, any>): { id: string; state: Record<string, any> } {
    const id = (prefix: string) => `${prefix}-${hex(name, 17)}`;
    switch (type) {
        case "awsx:ec2:Vpc":
            // A remote component: under mocks, its outputs are ours to return (no children appear).
            return {
                id: `${name}-id`,
                state: {
                    vpcId: id("vpc"),
                    publicSubnetIds: (inputs.availabilityZoneNames as string[]).map((zone) => `subnet-${hex(`${name}-${zone}`, 17)}`),
                    privateSubnetIds: [],
                    isolatedSubnetIds: [],
                },
            };
        case "aws:lambda/invocation:Invocation": {
            const { desired, teardownGuard } = JSON.parse(inputs.input) as { desired?: { instanceName: string; zones: string[]; instancesPerZone: number }; teardownGuard?: unknown };
            if (teardownGuard !== undefined || desired === undefined) {
                return { id: `${name}-id`, state: { result: JSON.stringify({ unchanged: "the teardown guard acts only at pulumi destroy" }) } };
            }
            // What the deploy answers: every zone's instances, named as the handler names them, and the fleet it reached.
            const instances: Record<string, string> = {};
            for (const zone of desired.zones) {
                for (let ordinal = 1; ordinal <= desired.instancesPerZone; ordinal++) {
                    instances[fleetMemberName(`${desired.instanceName}-${zone.slice(-1).toUpperCase()}`, ordinal)] = `i-${hex(`${zone}-${ordinal}`, 17)}`;
                }
            }
            return { id: `${name}-id`, state: { result: JSON.stringify({ instances, desired }) } };
        }
        case "aws:ec2/securityGroup:SecurityGroup":
            return { id: id("sg"), state: { arn: arn("ec2", `security-group/${id("sg")}`) } };
        case "aws:ec2/launchTemplate:LaunchTemplate":
            return { id: id("lt"), state: { arn: arn("ec2", `launch-template/${id("lt")}`), latestVersion: 1, defaultVersion: 1 } };
        case "aws:lb/loadBalancer:LoadBalancer":
            return {
                id: arn("elasticloadbalancing", `loadbalancer/app/${name}/${hex(name, 16)}`),
                state: {
                    arn: arn("elasticloadbalancing", `loadbalancer/app/${name}/${hex(name, 16)}`),
                    dnsName: `${name}-${hex(name, 8)}.${REGION}.elb.amazonaws.com`,
                    zoneId: "Z3AADJGX6KTTL2",
                },
            };
        case "aws:lb/targetGroup:TargetGroup":
            return { id: arn("elasticloadbalancing", `targetgroup/${name}/${hex(name, 16)}`), state: { arn: arn("elasticloadbalancing", `targetgroup/${name}/${hex(name, 16)}`) } };
        case "aws:acm/certificate:Certificate":
            return {
                id: arn("acm", `certificate/${hex(name, 32)}`),
                state: {
                    arn: arn("acm", `certificate/${hex(name, 32)}`),
                    domainValidationOptions: [{
                        domainName: inputs.domainName,
                        resourceRecordName: `_${hex(name, 32)}.${inputs.domainName}.`,
                        resourceRecordType: "CNAME",
                        resourceRecordValue: `_${hex(name + "v", 32)}.acm-validations.aws.`,
                    }],
                },
            };
        case "aws:acm/certificateValidation:CertificateValidation":
            return { id: inputs.certificateArn, state: {} };
        case "aws:route53/record:Record":
            return { id: `${inputs.zoneId}_${inputs.name}_${inputs.type}`, state: { fqdn: String(inputs.name).replace(/\.$/, "") } };
        case "aws:iam/role:Role":
            return { id: `${name}-${hex(name, 7)}`, state: { arn: `arn:aws:iam::${ACCOUNT_ID}:role/${name}-${hex(name, 7)}`, name: `${name}-${hex(name, 7)}` } };
        case "aws:iam/instanceProfile:InstanceProfile":
            return { id: `${name}-${hex(name, 7)}`, state: { arn: `arn:aws:iam::${ACCOUNT_ID}:instance-profile/${name}-${hex(name, 7)}` } };
        case "aws:sqs/queue:Queue":
            return {
                id: `https://sqs.${REGION}.amazonaws.com/${ACCOUNT_ID}/${name}-${hex(name, 7)}`,
                state: { arn: arn("sqs", `${name}-${hex(name, 7)}`), name: `${name}-${hex(name, 7)}`, url: `https://sqs.${REGION}.amazonaws.com/${ACCOUNT_ID}/${name}-${hex(name, 7)}` },
            };
        case "aws:cloudwatch/logGroup:LogGroup":
            return { id: `${name}-${hex(name, 7)}`, state: { arn: arn("logs", `log-group:${name}-${hex(name, 7)}`), name: `${name}-${hex(name, 7)}` } };
        case "aws:lambda/function:Function":
            return { id: `${name}-${hex(name, 7)}`, state: { arn: arn("lambda", `function:${name}-${hex(name, 7)}`), name: `${name}-${hex(name, 7)}` } };
        case "aws:cloudwatch/eventRule:EventRule":
            return { id: `${name}-${hex(name, 7)}`, state: { arn: arn("events", `rule/${name}-${hex(name, 7)}`), name: `${name}-${hex(name, 7)}` } };
        default:
            return { id: `${name}-id`, state: {} };
    }
}

function lookup(account: Account, region: string, token: string, args: Record<string, any>): Record<string, any> {
    switch (token) {
        case "aws:index/getAvailabilityZones:getAvailabilityZones": {
            const standardOnly = ((args.filters ?? []) as { name: string; values: string[] }[]).some((filter) =>
                (filter.name === "zone-type" && filter.values.includes("availability-zone")) || (filter.name === "opt-in-status" && filter.values.includes("opt-in-not-required")));
            const standard = account.zones?.[region] ?? ZONES_BY_REGION[region] ?? [];
            const names = standardOnly ? standard : [...standard, ...(LOCAL_ZONES_BY_REGION[region] ?? [])];
            return { names, zoneIds: names.map((_, i) => `${region}-az${i + 1}`), state: "available", id: region };
        }
        case "aws:index/getCallerIdentity:getCallerIdentity":
            return { accountId: ACCOUNT_ID, arn: `arn:aws:iam::${ACCOUNT_ID}:user/deployer`, userId: "AIDAEXAMPLE", id: ACCOUNT_ID };
        case "aws:ec2/getSubnet:getSubnet": {
            const subnet = account.subnets[args.id];
            if (!subnet) {
                throw new Error(`InvalidSubnetID.NotFound: The subnet ID '${args.id}' does not exist`);
            }
            return { id: args.id, ...subnet };
        }
        case "aws:ec2/getAmi:getAmi": {
            const imageId = args.filters[0].values[0];
            const image = account.images[imageId];
            if (!image) {
                throw new Error("Your query returned no results. Please change your search criteria and try again.");
            }
            return { id: imageId, imageId, ...image };
        }
        case "aws:route53/getZone:getZone": {
            const zoneId = account.hostedZones[args.name];
            if (!zoneId) {
                throw new Error("no matching Route 53 Hosted Zone found");
            }
            return { id: zoneId, zoneId, name: args.name };
        }
        default:
            throw new Error(`unexpected lookup ${token}`);
    }
}

export interface ProgramRun {
    resources: DeclaredResource[];
    outputs: Record<string, any>;
    /** The declared resources of one type. */
    ofType(type: string): DeclaredResource[];
    /** The one resource of a type whose logical name ends with `suffix`. */
    one(type: string, suffix?: string): DeclaredResource;
}

/** Creates a declared resource for real (in the emulator); undefined leaves it to the mock's stand-in. */
export type Materializer = (type: string, name: string, inputs: Record<string, any>) => Promise<{ id: string; state: Record<string, any> } | undefined>;

export interface RunOptions {
    /** `spot-availability:*` settings (and `aws:*`) over the dev stack's. */
    config?: Record<string, unknown>;
    /** Start from `Pulumi.<stack>.yaml` (default `dev`); null starts from the project defaults alone. */
    stack?: string | null;
    account?: Account;
    materialize?: Materializer;
}

/** Runs the program; rejects with the program's error, and `resources` lists what was declared before it. */
export async function runProgram(options: RunOptions = {}, declared: DeclaredResource[] = []): Promise<ProgramRun> {
    const account = options.account ?? DEFAULT_ACCOUNT;
    const stackName = options.stack === undefined ? "dev" : options.stack;
    const config: Record<string, string> = {
        ...projectDefaults(),
        ...(stackName === null ? { "aws:region": REGION } : stackConfig(stackName)),
        ...Object.fromEntries(Object.entries(options.config ?? {}).map(([key, value]) => [key, configText(value)])),
    };
    // A resource that fails to create fails the run, as it fails `pulumi up` (the mock monitor alone would leave the program waiting).
    let failRun: (error: Error) => void = () => undefined;
    let failed = false;
    const creationFailed = new Promise<never>((_, reject) => (failRun = reject));
    creationFailed.catch(() => undefined);
    const create = async (args: pulumi.runtime.MockResourceArgs) => {
        try {
            return (await options.materialize?.(args.type, args.name, args.inputs)) ?? computedState(args.type, args.name, args.inputs);
        } catch (error) {
            failed = true;
            failRun(new Error(`creating ${args.type} ${args.name} failed: ${(error as Error).message}`));
            throw error;
        }
    };
    await pulumi.runtime.setMocks({
        newResource: async (args: pulumi.runtime.MockResourceArgs) => {
            const { id, state } = await create(args);
            const resource = { type: args.type, name: args.name, id, inputs: args.inputs, state: { ...args.inputs, ...state }, dependsOn: dependencies.get(`${args.type}::${args.name}`) ?? [], formerParents: formerParents.get(`${args.type}::${args.name}`) ?? [] };
            declared.push(resource);
            return { id, state: resource.state };
        },
        call: (args: pulumi.runtime.MockCallArgs) => lookup(account, config["aws:region"], args.token, args.inputs),
    }, "spot-availability", stackName ?? "test", false);
    // The mocks' callback sees no dependencies; the mock monitor's request carries them.
    const dependencies = new Map<string, string[]>();
    const formerParents = new Map<string, string[]>();
    const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource: (req: any, callback: any) => unknown };
    const registerResource = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req, callback) => {
        dependencies.set(`${req.getType()}::${req.getName()}`, (req.getDependenciesList() as string[]).map((urn) => urn.split("::").pop() as string));
        formerParents.set(`${req.getType()}::${req.getName()}`, (req.getAliasesList() as any[]).map((alias) => alias.getSpec()?.getParenturn()).filter(Boolean));
        return registerResource(req, callback);
    };
    pulumi.runtime.setAllConfig(config);

    // The module exports the program's main function, as `pulumi up` expects.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const program: () => Promise<Record<string, pulumi.Output<unknown> | unknown>> = require("../index");
    const outputs: Record<string, any> = {};
    try {
        const exported = await Promise.race([program(), creationFailed]);
        for (const [key, value] of Object.entries(exported)) {
            outputs[key] = pulumi.Output.isInstance(value) ? await Promise.race([outputValue(value), creationFailed]) : value;
        }
    } finally {
        // Lets registrations already under way reach the mock, so `declared` is complete. After a
        // failed creation the resources that depend on it never finish registering (`pulumi up`
        // stops there too), so the run does not wait for them.
        const disconnected = pulumi.runtime.disconnect();
        await (failed ? Promise.race([disconnected, new Promise((resolve) => setTimeout(resolve, 100))]) : disconnected);
    }
    return {
        resources: declared,
        outputs,
        ofType: (type) => declared.filter((resource) => resource.type === type),
        one: (type, suffix = "") => {
            const matches = declared.filter((resource) => resource.type === type && resource.name.endsWith(suffix));
            if (matches.length !== 1) {
                throw new Error(`expected one ${type}${suffix ? ` named *${suffix}` : ""}, found ${matches.map((r) => r.name).join(", ") || "none"}`);
            }
            return matches[0];
        },
    };
}

/** The stack-created VPC's public subnets by zone, as the `awsx.ec2.Vpc` answered. */
export function subnetsByZone(run: ProgramRun): Record<string, string> {
    const vpc = run.one("awsx:ec2:Vpc");
    return Object.fromEntries((vpc.inputs.availabilityZoneNames as string[]).map((zone, index) => [zone, vpc.state.publicSubnetIds[index] as string]));
}

export function outputValue<T>(output: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => output.apply((value) => resolve(value)));
}
