import * as assert from "assert";
import { DescribeInstancesCommand, EC2Client, Instance, RunInstancesCommand, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { createClients, StackFleet } from "../handler/aws";
import { desiredFleet } from "../handler/deployRequest";
import { launchAttempts } from "../handler/pools";
import { TAG } from "../handler/tags";
import { CREDENTIALS, Emulator } from "../rehearsal/emulator";
import { POLICY_NOT_PROPAGATED, PROFILE_NOT_PROPAGATED } from "../rehearsal/faultProxy";
import { MotoStack } from "../rehearsal/materialize";
import { freshWorld, scheduledEvent, sqsBatch } from "../rehearsal/world";
import { emulatorClients, emulatorDeployHandler, freshStack } from "./support/emulator";

/**
 * The fault table of the README's "When pulumi up fails": each way a `pulumi up` can fail, run as
 * the engine runs it on the dev stack materialised in moto (a failed create is not in the state,
 * a failed update keeps its new input), with the real deploy archive. For each: what the user
 * sees, that `pulumi destroy` right after leaves no instance of the stack, and that a later
 * `pulumi up` is not stuck.
 */

const STACK = "spot-availability/dev";
const INVOCATION = "aws:lambda/invocation:Invocation";
/** The guard's quiet period in these tests, for the event function's 60 s timeout: short enough for `npm test`. */
const QUIET_SECONDS = 2;
/** Long enough for a launch two seconds into the teardown to land inside it. */
const LATE_LAUNCH_QUIET_SECONDS = 4;
const LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"];
/** What EC2 answers for an instance with termination protection (someone set it by hand). */
const TERMINATION_PROTECTED = { status: 400, code: "OperationNotPermitted", message: "The instance may not be terminated. Modify its 'disableApiTermination' instance attribute and try again." };

interface FaultRow {
    fault: string;
    /** The deploy's function timeout as its context reports it, when the row compresses Lambda's 15 minutes. */
    deployTimeoutSeconds?: number;
    arrange(emulator: Emulator): void;
    /** What the failed `pulumi up` says. */
    error: RegExp;
}

/** Scheduled reconciles that may pass before a failed update's edit is finished: fill, retire the stand-in. */
const RECONCILES_TO_CONVERGE = 3;

/** Ways a first `pulumi up` fails after the deploy already launched instances. */
const FAILED_CREATES: FaultRow[] = [
    {
        fault: "no capacity in one zone, in any pool",
        arrange: (emulator) => void (emulator.proxy.capacityFaults = [{ zone: "us-east-2c", code: "InsufficientInstanceCapacity" }]),
        error: /spot-handler-deploy failed: spot-availability\/dev did not reach its settings: us-east-2c holds 0 of 1 registered \(launch .*us-east-2c\/t3\.micro\/spot: InsufficientInstanceCapacity/,
    },
    {
        fault: "the function fails midway (RegisterTargets refused after the launches)",
        arrange: (emulator) => void (emulator.proxy.failingRegistrations = 1_000),
        error: /spot-handler-deploy failed: could not reconcile .*register i-[0-9a-f]+ \(and 2 more\): .*InvalidConfigurationRequest/,
    },
    {
        fault: "the time limit (a fleet too slow for the deploy's 15 minutes)",
        // One round, then less than the hand-off margin is left: the deploy stops itself before Lambda does.
        deployTimeoutSeconds: 60,
        arrange: () => undefined,
        error: /spot-handler-deploy failed: spot-availability\/dev did not reach its settings: us-east-2a holds 0 of 1 registered/,
    },
];

describe("what a failed, retried or cut-short pulumi up leaves, and pulumi destroy after it", () => {
    let emulator: Emulator;
    let ec2: EC2Client;
    let stack: MotoStack;

    before(async () => {
        ({ emulator, ec2 } = await emulatorClients());
    });

    async function stackInstances(states: string[]): Promise<Instance[]> {
        const result = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAG.stack}`, Values: [STACK] }, { Name: "instance-state-name", Values: states }] }));
        return (result.Reservations ?? []).flatMap((r) => r.Instances ?? []);
    }

    const ids = async (states: string[]) => (await stackInstances(states)).map((i) => i.InstanceId as string);

    /** `pulumi destroy` as the engine runs it, then what it left: every instance of the stack that is not terminated. */
    async function leftAfterDestroy(): Promise<string[]> {
        await stack.destroy({ guardQuietSeconds: QUIET_SECONDS });
        return ids(LIVE);
    }

    async function perZone(): Promise<Record<string, number>> {
        const counts: Record<string, number> = {};
        for (const instance of await stackInstances(["pending", "running"])) {
            const zone = instance.Placement?.AvailabilityZone as string;
            counts[zone] = (counts[zone] ?? 0) + 1;
        }
        return counts;
    }

    const deployStarts = () => stack.deployLogs().filter((line) => line.result === "started").map((line) => line.action);

    for (const row of FAILED_CREATES) {
        describe(`a first pulumi up fails on ${row.fault}`, () => {
            beforeEach(async () => {
                stack = await freshStack(emulator, { deployTimeoutSeconds: row.deployTimeoutSeconds });
                row.arrange(emulator);
                await assert.rejects(stack.up(), row.error);
                assert.ok((await ids(["pending", "running"])).length > 0, "the deploy had launched instances before it failed");
            });

            it("leaves the deploy out of the state, the guard in it; pulumi destroy then leaves no instance of the stack", async () => {
                assert.ok(!stack.holds(INVOCATION, "spot-handler-deploy"), "a failed create is not in the state (invocation.go sets the id only after a successful invoke)");
                assert.ok(stack.holds(INVOCATION, "spot-handler-deploy-teardown-guard"), "the guard was created before the deploy could launch");
                assert.deepStrictEqual(await leftAfterDestroy(), []);
            });

            it("is finished by the next pulumi up once the fault is gone, which creates the deploy again and adopts what it launched", async () => {
                const launched = await ids(["pending", "running"]);
                emulator.proxy.capacityFaults = [];
                emulator.proxy.failingRegistrations = 0;
                const rerun = await stack.up();
                assert.deepStrictEqual(deployStarts(), ["create", "create"]);
                assert.deepStrictEqual(Object.keys(rerun.outputs.instances).sort(), ["Prometheus-A", "Prometheus-B", "Prometheus-C"]);
                const kept = Object.values(rerun.outputs.instances as Record<string, string>).filter((id) => launched.includes(id));
                assert.ok(kept.length > 0, "what the failed run launched is part of the fleet, not launched again");
                assert.deepStrictEqual(await leftAfterDestroy(), []);
            });
        });
    }

    describe("an edit whose update fails", () => {
        beforeEach(async () => {
            stack = await freshStack(emulator);
        });

        it("keeps the new input: the next pulumi up neither invokes the deploy nor claims a fleet; the schedule's reconcile finishes the edit", async () => {
            await stack.up();
            emulator.proxy.capacityFaults = [{ zone: "us-east-2b", code: "InsufficientInstanceCapacity" }];
            await assert.rejects(stack.up({ config: { "spot-availability:instancesPerZone": 2 } }), /spot-handler-deploy failed: .*us-east-2b/);

            emulator.proxy.capacityFaults = [];
            const rerun = await stack.up({ config: { "spot-availability:instancesPerZone": 2 } });
            const deploySteps = stack.steps.filter((step) => step.type === INVOCATION && step.name === "spot-handler-deploy").map((step) => step.step);
            assert.deepStrictEqual(deploySteps, ["create", "update"], "no diff: the failed update stored its input");
            assert.deepStrictEqual(rerun.outputs.instances, {}, "the stored result answers the previous input: no fleet is claimed");

            // The event path runs the new settings already: its scheduled reconciles fill zone b, then
            // retire the stand-in the deploy had placed in another zone for it.
            const passes: Record<string, number>[] = [];
            for (let pass = 1; pass <= RECONCILES_TO_CONVERGE; pass++) {
                await stack.invoke("-handler", sqsBatch(scheduledEvent()));
                passes.push(await perZone());
            }
            assert.deepStrictEqual(passes.at(-1), { "us-east-2a": 2, "us-east-2b": 2, "us-east-2c": 2 }, `per zone after each reconcile: ${JSON.stringify(passes)}`);
            assert.deepStrictEqual(await leftAfterDestroy(), []);
        });
    });

    describe("the teardown", () => {
        beforeEach(async () => {
            stack = await freshStack(emulator);
        });

        it("terminates an instance launched after its first sweep, by a batch that began before the event source mapping went", async () => {
            const run = await stack.up();
            const subnet = run.one("awsx:ec2:Vpc").state.publicSubnetIds[0] as string;
            let late: Promise<string> | undefined;
            emulator.proxy.beforeWrite = async (call) => {
                if (call.action === "TerminateInstances" && late === undefined) {
                    // Two seconds into the teardown, the event path's last batch launches a replacement.
                    late = new Promise((resolve) => setTimeout(resolve, 2_000)).then(async () => (await ec2.send(new RunInstancesCommand({
                        MinCount: 1, MaxCount: 1, ImageId: "ami-12c6146b", SubnetId: subnet,
                        TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: TAG.stack, Value: STACK }] }],
                    }))).Instances?.[0].InstanceId as string);
                }
            };
            const answers = await stack.destroy({ guardQuietSeconds: LATE_LAUNCH_QUIET_SECONDS });
            const lateId = await (late as Promise<string>);
            const teardown = answers.find((answer) => "terminated" in (answer as object)) as { terminated: string[] };
            assert.ok(teardown.terminated.includes(lateId), `the late launch ${lateId} was swept: ${teardown.terminated.join(", ")}`);
            assert.deepStrictEqual(await ids(LIVE), []);
        });

        it("fails when an instance cannot be terminated, keeping the guard in the state: the next pulumi destroy finishes", async () => {
            await stack.up();
            emulator.proxy.scriptedErrors = [{ action: "TerminateInstances", ...TERMINATION_PROTECTED, times: 1 }];
            await assert.rejects(stack.destroy({ guardQuietSeconds: QUIET_SECONDS }), /OperationNotPermitted/);
            assert.ok(stack.holds(INVOCATION, "spot-handler-deploy-teardown-guard"), "a failed delete stays in the state");
            assert.ok((await ids(LIVE)).length > 0, "the fleet is still there");
            assert.deepStrictEqual(await leftAfterDestroy(), []);
        });

        it("tolerates a read that still shows a terminated instance as pending, and sweeps again", async () => {
            await stack.up();
            emulator.proxy.staleReads = 1;
            assert.deepStrictEqual(await leftAfterDestroy(), []);
            assert.ok(stack.deployLogs().some((line) => line.action === "wait-terminated" && line.result === "not yet"), "the SDK's waiter gave up on the stale read");
        });
    });

    describe("a first pulumi up racing IAM", () => {
        beforeEach(async () => {
            stack = await freshStack(emulator);
        });

        it("retries RunInstances while a new instance profile or a fresh policy is refused, and says so in the log", async () => {
            emulator.proxy.scriptedErrors = [PROFILE_NOT_PROPAGATED, POLICY_NOT_PROPAGATED].map((answer) => ({ action: "RunInstances", ...answer, times: 1 }));
            const run = await stack.up();
            assert.deepStrictEqual(Object.keys(run.outputs.instances).sort(), ["Prometheus-A", "Prometheus-B", "Prometheus-C"]);
            const retries = stack.deployLogs().filter((line) => line.action === "retry");
            assert.deepStrictEqual(retries.map((line) => line.error.split(":")[0]), ["InvalidParameterValue", "UnauthorizedOperation"]);
            assert.ok(retries.every((line) => line.reason === "IAM has not propagated yet"));
        });
    });
});

describe("a refusal IAM propagation explains, when it does not pass", () => {
    it("fails the launch after the bounded retries with a message that names IAM", async () => {
        const { emulator, world } = await freshWorld();
        emulator.proxy.scriptedErrors = [{ action: "RunInstances", ...PROFILE_NOT_PROPAGATED, times: 1_000 }];
        const retries: number[] = [];
        const clients = createClients(world.settings.region, {
            endpoint: emulator.endpoint,
            credentials: CREDENTIALS,
            propagation: { delaySeconds: 0.1, maxSeconds: 0.35, onRetry: ({ attempt }) => retries.push(attempt) },
        });
        const fleet = new StackFleet(clients, world.settings);
        await assert.rejects(fleet.launch({ key: "iam", attempts: launchAttempts(["us-east-2a"], world.settings) }, new Set()), (error: Error) => {
            assert.strictEqual(error.name, "InvalidParameterValue");
            assert.match(error.message, /Invalid IAM Instance Profile ARN \(still refused after 0\.3 s of retries: IAM had not propagated the instance profile or the role's policy, or the role really lacks the permission\)/);
            return true;
        });
        assert.deepStrictEqual(retries, [1, 2, 3]);
        assert.strictEqual(emulator.proxy.callsTo("RunInstances").length, 4, "the first pool only: the refusal is the role's, not the pool's");
    });
});

describe("the deploy and the event path at the same time", () => {
    it("launch one instance for a missing place, whichever asks first", async () => {
        const { emulator, world } = await freshWorld();
        await world.ec2.send(new TerminateInstancesCommand({ InstanceIds: [world.declared["Prometheus-B"]] }));
        const deploy = emulatorDeployHandler(emulator, world.settings);
        const desired = desiredFleet(world.settings);
        // Both must ask before either is answered: the first RunInstances waits for the second.
        let asked = 0;
        let bothAsked: () => void = () => undefined;
        const barrier = new Promise<void>((resolve) => (bothAsked = resolve));
        emulator.proxy.beforeWrite = async (call) => {
            if (call.action === "RunInstances" && ++asked === 2) {
                bothAsked();
            }
            await (call.action === "RunInstances" ? barrier : undefined);
        };

        await Promise.all([
            deploy({ desired, tf: { action: "update", prev_input: { desired } } }, { getRemainingTimeInMillis: () => 900_000 }),
            world.handle(scheduledEvent()),
        ]);

        const zoneB = (await world.instances()).filter((i) => i.Placement?.AvailabilityZone === "us-east-2b");
        assert.strictEqual(zoneB.length, 1, `zone b holds ${zoneB.map((i) => i.InstanceId).join(", ")}`);
        assert.strictEqual(asked, 2, "both asked for the place");
    });
});

describe("a teardown that runs out of Lambda's time", () => {
    it("fails before Lambda would cut it off, naming what is still there, so that pulumi destroy can be run again", async () => {
        const { emulator, world } = await freshWorld();
        const guard = emulatorDeployHandler(emulator, world.settings);
        const payload = { teardownGuard: { quietSeconds: 60 }, tf: { action: "delete", prev_input: { teardownGuard: { quietSeconds: 60 } } } };
        await assert.rejects(guard(payload, { getRemainingTimeInMillis: () => 20_000 }), (error: Error) => {
            assert.strictEqual(error.name, "DeployError");
            assert.match(error.message, /^teardown of spot-availability\/test ran out of time with (i-[0-9a-f]+, ){2}i-[0-9a-f]+ still there; run pulumi destroy again$/);
            return true;
        });
        assert.deepStrictEqual(await world.instances(), [], "it terminated what it found before failing: the next destroy waits for less");
    });
});
