import * as assert from "assert";
import { DescribeInstancesCommand, EC2Client, Instance, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { fleetNames, shortfall } from "../handler/deploy";
import { answeredFleet, canonicalJson, checkDesired, desiredFleet, parseDeployRequest } from "../handler/deployRequest";
import { TAG } from "../handler/tags";
import { FUNCTION_TIMEOUT_SECONDS } from "../infra/interruptionHandling";
import { Emulator } from "../rehearsal/emulator";
import { MotoStack } from "../rehearsal/materialize";
import { ProgramRun, runProgram } from "../rehearsal/program";
import { tag } from "../rehearsal/world";
import { observedInstance, SETTINGS } from "./support/fixtures";
import { emulatorClients, freshStack } from "./support/emulator";

/**
 * The fleet's one owner at `pulumi up` and `pulumi destroy`: the deploy invocation, run as the
 * provider runs it (create, update when its input changed, delete) against the dev stack
 * materialised in moto, with the deploy function's archive as `pulumi up` would upload it.
 */

const STACK = "spot-availability/dev";
const ZONES = ["us-east-2a", "us-east-2b", "us-east-2c"];
/** Resources that would put an instance in Pulumi's state. */
const INSTANCE_TYPES = ["aws:ec2/instance:Instance", "aws:lb/targetGroupAttachment:TargetGroupAttachment", "pulumi-nodejs:dynamic:Resource"];

describe("pulumi up and pulumi destroy, with the deploy invocation owning the fleet", () => {
    let emulator: Emulator;
    let ec2: EC2Client;
    let elb: ElasticLoadBalancingV2Client;
    let stack: MotoStack;

    before(async () => {
        ({ emulator, ec2, elb } = await emulatorClients());
    });
    beforeEach(async () => {
        stack = await freshStack(emulator);
    });

    const up = (config: Record<string, unknown> = {}) => stack.up({ config });

    async function instancesOf(stackTag: string, states = ["pending", "running"]): Promise<Instance[]> {
        const result = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAG.stack}`, Values: [stackTag] }, { Name: "instance-state-name", Values: states }] }));
        return (result.Reservations ?? []).flatMap((r) => r.Instances ?? []);
    }

    async function registered(run: ProgramRun): Promise<string[]> {
        const health = await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: run.outputs.targetGroupArn }));
        return (health.TargetHealthDescriptions ?? []).map((d) => d.Target?.Id as string).sort();
    }

    /** Live instances per zone, in ZONES order. */
    async function perZone(): Promise<number[]> {
        const live = await instancesOf(STACK);
        return ZONES.map((zone) => live.filter((i) => i.Placement?.AvailabilityZone === zone).length);
    }

    const deployActions = () => stack.deployLogs().filter((line) => line.result === "started").map((line) => line.action);

    describe("pulumi up", () => {
        it("launches one spot instance per zone through the handler's launch path, registered, and answers with them as the instances output", async () => {
            const run = await up();
            const live = await instancesOf(STACK);
            assert.deepStrictEqual(Object.keys(run.outputs.instances).sort(), ["Prometheus-A", "Prometheus-B", "Prometheus-C"]);
            assert.deepStrictEqual(live.map((i) => i.InstanceId).sort(), Object.values(run.outputs.instances).sort(), "the output is what runs");
            for (const [index, zone] of ZONES.entries()) {
                const instance = live.find((i) => i.InstanceId === run.outputs.instances[`Prometheus-${"ABC"[index]}`]) as Instance;
                assert.strictEqual(instance.Placement?.AvailabilityZone, zone);
                assert.strictEqual(instance.InstanceLifecycle, "spot");
                assert.strictEqual(instance.InstanceType, "t3.micro");
                assert.deepStrictEqual([tag(instance, "Name"), tag(instance, TAG.stack), tag(instance, TAG.zone), tag(instance, TAG.launchedBy)], [`Prometheus-${"ABC"[index]}`, STACK, zone, "pulumi"]);
            }
            assert.deepStrictEqual(await registered(run), live.map((i) => i.InstanceId as string).sort());
            assert.deepStrictEqual(deployActions(), ["create"]);
            for (const type of INSTANCE_TYPES) {
                assert.deepStrictEqual(run.ofType(type), [], `no ${type} in Pulumi's state`);
            }
        });

        it("completes when the preferred type has no spot capacity in one zone: that zone gets a fallback type", async () => {
            emulator.proxy.capacityFaults = [{ zone: "us-east-2b", instanceType: "t3.micro", market: "spot", code: "InsufficientInstanceCapacity" }];
            const run = await up();
            assert.deepStrictEqual(await perZone(), [1, 1, 1]);
            const live = await instancesOf(STACK);
            const zoneB = live.find((i) => i.Placement?.AvailabilityZone === "us-east-2b") as Instance;
            assert.deepStrictEqual([zoneB.InstanceType, zoneB.InstanceLifecycle, zoneB.InstanceId], ["t3a.micro", "spot", run.outputs.instances["Prometheus-B"]]);
            assert.ok(live.filter((i) => i !== zoneB).every((i) => i.InstanceType === "t3.micro"), "the other zones keep the preferred type");
            assert.deepStrictEqual(await registered(run), live.map((i) => i.InstanceId as string).sort());
        });

        it("fails, naming the zones and pools, when no pool has capacity", async () => {
            emulator.proxy.capacityFaults = [{ code: "InsufficientInstanceCapacity" }];
            await assert.rejects(up(), /spot-handler-deploy failed: could not reconcile spot-availability\/dev to its settings: launch .*no capacity .*us-east-2b\/t3\.micro\/spot: InsufficientInstanceCapacity/);
        });

        it("fails with the command that creates the spot service-linked role when the account has none", async () => {
            emulator.proxy.spotRoleMissing = true;
            await assert.rejects(up(), (error: Error) => {
                assert.match(error.message, /AuthFailure\.ServiceLinkedRoleCreationNotPermitted/);
                assert.match(error.message, /aws iam create-service-linked-role --aws-service-name spot\.amazonaws\.com/);
                return true;
            });
            assert.deepStrictEqual(await instancesOf(STACK), [], "no on-demand stand-ins: the fix is the role");
        });
    });

    describe("a config edit, then pulumi up", () => {
        it("converges instanceTypes, zones and instancesPerZone through the update invocation; no resource represents an instance", async () => {
            const first = await up();
            const before = Object.values(first.outputs.instances as Record<string, string>);
            const edited = await up({
                "spot-availability:instanceTypes": ["t3a.micro", "t2.micro"],
                "spot-availability:zones": ["a", "b"],
                "spot-availability:instancesPerZone": 2,
            });
            assert.deepStrictEqual(deployActions(), ["create", "update"]);
            assert.deepStrictEqual(await perZone(), [2, 2, 0], "zone c is no longer configured");
            const live = await instancesOf(STACK);
            assert.ok(live.every((i) => ["t3a.micro", "t2.micro"].includes(i.InstanceType as string)), `types: ${live.map((i) => i.InstanceType).join(", ")}`);
            assert.ok(live.every((i) => i.InstanceLifecycle === "spot"));
            assert.deepStrictEqual(Object.keys(edited.outputs.instances).sort(), ["Prometheus-A", "Prometheus-A-2", "Prometheus-B", "Prometheus-B-2"]);
            assert.deepStrictEqual(Object.values(edited.outputs.instances).sort(), live.map((i) => i.InstanceId).sort());
            assert.deepStrictEqual(await registered(edited), live.map((i) => i.InstanceId as string).sort(), "every live instance serves, nothing else is registered");
            const gone = await instancesOf(STACK, ["terminated"]);
            assert.deepStrictEqual(gone.map((i) => i.InstanceId).sort(), [...before].sort(), "the t3.micro instances, and zone c's, are terminated (not stopped) by the deploy");
            for (const run of [first, edited]) {
                for (const type of INSTANCE_TYPES) {
                    assert.deepStrictEqual(run.ofType(type), [], `no ${type} to update or replace`);
                }
            }
        });

        it("keeps every instance when only instancesPerZone grows, and adds one per zone", async () => {
            const first = await up();
            const edited = await up({ "spot-availability:instancesPerZone": 2 });
            assert.deepStrictEqual(await perZone(), [2, 2, 2]);
            const kept = Object.values(first.outputs.instances as Record<string, string>).filter((id) => Object.values(edited.outputs.instances).includes(id));
            assert.deepStrictEqual(kept, Object.values(first.outputs.instances), "the first deploy's instances all stay in the fleet");
        });

        it("does not invoke the deploy when the desired fleet did not change", async () => {
            await up();
            await up({ "spot-availability:logRetentionDays": 30 });
            assert.deepStrictEqual(deployActions(), ["create"]);
        });
    });

    describe("pulumi destroy", () => {
        it("terminates every instance of the stack and waits until they are gone; other stacks' and untagged instances keep running", async () => {
            const run = await up();
            const replacement = (await ec2.send(new RunInstancesCommand({
                MinCount: 1,
                MaxCount: 1,
                ImageId: "ami-12c6146b",
                TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: TAG.stack, Value: STACK }, { Key: TAG.launchedBy, Value: "handler" }] }],
            }))).Instances?.[0].InstanceId as string;
            const otherStack = (await ec2.send(new RunInstancesCommand({
                MinCount: 1,
                MaxCount: 1,
                ImageId: "ami-12c6146b",
                TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: TAG.stack, Value: "spot-availability/prod" }] }],
            }))).Instances?.[0].InstanceId as string;
            const untagged = (await ec2.send(new RunInstancesCommand({ MinCount: 1, MaxCount: 1, ImageId: "ami-12c6146b" }))).Instances?.[0].InstanceId as string;

            const [deployAnswer, answer] = (await stack.destroy({ guardQuietSeconds: 0 })) as [unknown, { terminated: string[] }];

            assert.deepStrictEqual(deployAnswer, { unchanged: "the teardown guard terminates the fleet" }, "the deploy's own delete leaves the fleet to the guard");
            const ours = [...Object.values(run.outputs.instances as Record<string, string>), replacement].sort();
            assert.deepStrictEqual([...answer.terminated].sort(), ours);
            assert.deepStrictEqual((await instancesOf(STACK, ["terminated"])).map((i) => i.InstanceId).sort(), ours, "terminated, not just shutting down");
            const others = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [otherStack, untagged] }));
            assert.deepStrictEqual((others.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.State?.Name), ["running", "running"]);
            assert.deepStrictEqual(deployActions(), ["create", "delete"]);
            assert.ok(stack.deployLogs().some((line) => line.action === "delete" && line.result === "terminated"), "the guard's teardown");
        });
    });
});

describe("the order pulumi destroy deletes in, under mocks", () => {
    let run: ProgramRun;
    before(async () => {
        run = await runProgram();
    });
    const invocation = () => run.one("aws:lambda/invocation:Invocation", "-deploy");

    it("declares the deploy as an invocation with lifecycle scope CRUD whose input is the desired fleet", () => {
        assert.strictEqual(invocation().inputs.lifecycleScope, "CRUD");
        assert.strictEqual(invocation().inputs.functionName, run.one("aws:lambda/function:Function", "-deploy").state.name);
        assert.deepStrictEqual(JSON.parse(invocation().inputs.input), {
            desired: {
                instanceName: "Prometheus",
                zones: ZONES,
                instancesPerZone: 1,
                instanceTypes: ["t3.micro", "t3a.micro", "t2.micro"],
                launchTemplateId: run.one("aws:ec2/launchTemplate:LaunchTemplate").id,
                launchTemplateVersion: run.one("aws:ec2/launchTemplate:LaunchTemplate").state.latestVersion,
                targetGroupArn: run.one("aws:lb/targetGroup:TargetGroup").state.arn,
                securityGroupIds: [run.one("aws:ec2/securityGroup:SecurityGroup", "-instances-instance").id],
                release: { batchPercent: 100, healthTimeoutSeconds: 300 },
            },
        });
    });

    const guard = () => run.one("aws:lambda/invocation:Invocation", "-teardown-guard");

    it("declares the teardown guard as an invocation with lifecycle scope CRUD of the same function, quiet for the event function's timeout", () => {
        assert.strictEqual(guard().inputs.lifecycleScope, "CRUD");
        assert.strictEqual(guard().inputs.functionName, invocation().inputs.functionName);
        assert.deepStrictEqual(JSON.parse(guard().inputs.input), { teardownGuard: { quietSeconds: FUNCTION_TIMEOUT_SECONDS } });
        assert.deepStrictEqual([guard().inputs.triggers, guard().inputs.qualifier], [undefined, undefined], "nothing but the function's name could replace it");
    });

    it("deletes the rules and the event source mapping first: they depend on the deploy, which depends on the guard", () => {
        const launchers = [...run.ofType("aws:cloudwatch/eventRule:EventRule"), run.one("aws:lambda/eventSourceMapping:EventSourceMapping")];
        assert.strictEqual(launchers.length, 5);
        for (const resource of launchers) {
            assert.ok(resource.dependsOn.includes(invocation().name), `${resource.name} depends on the invocation: ${resource.dependsOn.join(", ")}`);
        }
        assert.ok(invocation().dependsOn.includes(guard().name), "the guard is created before the deploy and deleted after it");
    });

    it("deletes the network, security groups, template, target group and the role's policy after the guard: it depends on them", () => {
        const mustOutlive = [
            run.one("awsx:ec2:Vpc").name,
            run.one("aws:ec2/securityGroup:SecurityGroup", "-instance").name,
            run.one("aws:ec2/securityGroup:SecurityGroup", "-alb").name,
            run.one("aws:ec2/launchTemplate:LaunchTemplate").name,
            run.one("aws:lb/targetGroup:TargetGroup").name,
            run.one("aws:iam/rolePolicy:RolePolicy").name,
            run.one("aws:lambda/function:Function", "-deploy").name,
        ];
        for (const resource of [invocation(), guard()]) {
            for (const name of mustOutlive) {
                assert.ok(resource.dependsOn.includes(name), `${resource.name} depends on ${name}: ${resource.dependsOn.join(", ")}`);
            }
        }
    });
});

describe("the deploy request", () => {
    it("accepts the provider's create, update and delete", () => {
        for (const action of ["create", "update", "delete"]) {
            assert.strictEqual(parseDeployRequest({ desired: { zones: [] }, tf: { action, prev_input: null } }).action, action);
        }
    });

    for (const [payload, why] of [
        [{ desired: { zones: [] } }, /tf\.action is undefined/],
        [{ desired: { zones: [] }, tf: { action: "refresh" } }, /tf\.action is "refresh"; expected one of create, update, delete/],
        [{ tf: { action: "create" } }, /neither a desired fleet nor a teardown guard/],
        [{ teardownGuard: { quietSeconds: "60" }, tf: { action: "delete" } }, /not a teardown guard: teardownGuard is \{"quietSeconds":"60"\}; expected \{ "quietSeconds": a number of seconds, 0 or more \}/],
        [null, /tf\.action is undefined/],
    ] as const) {
        it(`refuses ${JSON.stringify(payload)}`, () => {
            assert.throws(() => parseDeployRequest(payload), (error: Error) => error.name === "DeployError" && why.test(error.message));
        });
    }

    it("reads the teardown guard's input", () => {
        assert.deepStrictEqual(parseDeployRequest({ teardownGuard: { quietSeconds: 60 }, tf: { action: "delete", prev_input: { teardownGuard: { quietSeconds: 60 } } } }), { action: "delete", teardownGuard: { quietSeconds: 60 } });
    });

    it("compares the desired fleet whatever order the provider sent its keys in (Go's json.Marshal sorts them)", () => {
        const sorted = JSON.parse(canonicalJson(desiredFleet(SETTINGS)));
        assert.notStrictEqual(JSON.stringify(sorted), JSON.stringify(desiredFleet(SETTINGS)), "the fixture's keys are not already sorted");
        assert.doesNotThrow(() => checkDesired(sorted, SETTINGS));
    });

    it("refuses to converge to settings other than those the program declared", () => {
        assert.doesNotThrow(() => checkDesired(desiredFleet(SETTINGS), SETTINGS));
        assert.throws(() => checkDesired({ ...desiredFleet(SETTINGS), instancesPerZone: 2 }, SETTINGS), /the deploy function runs .*"instancesPerZone":1.* but pulumi up declared .*"instancesPerZone":2/);
    });
});

describe("the deploy's answer and its goal", () => {
    const fleet = [
        observedInstance("i-a2", "a", { launchTime: 2 }),
        observedInstance("i-a1", "a", { launchTime: 1 }),
        observedInstance("i-b", "b"),
        observedInstance("i-old", "c", { state: "terminated" }),
        observedInstance("i-c", "c", { replaces: "i-old" }),
        observedInstance("i-pending", "c", { state: "pending", launchTime: 5 }),
    ];
    const registered = { "i-a1": "healthy", "i-a2": "initial", "i-b": "healthy", "i-c": "healthy" } as const;

    it("names each zone's places oldest first: web-A, web-A-2 …; only live, unsuperseded instances", () => {
        assert.deepStrictEqual(fleetNames({ instances: fleet, targets: registered }, { ...SETTINGS, instancesPerZone: 2 }), {
            "web-A": "i-a1",
            "web-A-2": "i-a2",
            "web-B": "i-b",
            "web-C": "i-c",
            "web-C-2": "i-pending",
        });
    });

    it("is reached when every zone holds its count running and registered", () => {
        assert.deepStrictEqual(shortfall({ instances: fleet, targets: registered }, SETTINGS), []);
        assert.deepStrictEqual(shortfall({ instances: fleet, targets: registered }, { ...SETTINGS, instancesPerZone: 2 }), ["us-east-2b holds 1 of 2 registered", "us-east-2c holds 1 of 2 registered"]);
        assert.deepStrictEqual(shortfall({ instances: fleet, targets: { "i-a1": "healthy" } }, SETTINGS), ["us-east-2b holds 0 of 1 registered", "us-east-2c holds 0 of 1 registered"]);
    });
});

describe("the instances output, from the deploy's result", () => {
    const input = JSON.stringify({ desired: desiredFleet(SETTINGS) });
    const fleet = { "web-A": "i-a" };
    const answered = JSON.stringify({ instances: fleet, desired: JSON.parse(canonicalJson(desiredFleet(SETTINGS))) });

    for (const [result, expected, what] of [
        [answered, fleet, "an answer to this input, its keys sorted"],
        [JSON.stringify({ instances: fleet, desired: { ...desiredFleet(SETTINGS), instancesPerZone: 2 } }), undefined, "an answer to an earlier input, left by a failed update"],
        [JSON.stringify({ instances: fleet }), undefined, "an answer that names no desired fleet (before this version)"],
        ["", undefined, "an empty result"],
        [undefined, undefined, "no result"],
        ["{not json", undefined, "a result that is not JSON"],
        [JSON.stringify({ errorMessage: "boom", errorType: "DeployError" }), undefined, "an error"],
        [JSON.stringify({ instances: null, desired: desiredFleet(SETTINGS) }), undefined, "no instances"],
    ] as const) {
        it(`is ${expected === undefined ? "no fleet" : "the fleet"} for ${what}`, () => {
            assert.deepStrictEqual(answeredFleet(result, input), expected);
        });
    }
});
