import * as assert from "assert";
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand, waitUntilInstanceRunning } from "@aws-sdk/client-ec2";
import { ElasticLoadBalancingV2Client, RegisterTargetsCommand } from "@aws-sdk/client-elastic-load-balancing-v2";
import { Activity, advance, VirtualClock } from "../rehearsal/clock";
import { ClockProxy } from "../rehearsal/clockProxy";
import { AsyncDelivery, FunctionModel } from "../rehearsal/delivery";
import { CREDENTIALS } from "../rehearsal/emulator";
import { Ec2Signal, ModelledFleet } from "../rehearsal/fleet";
import { asyncRetryDelay, DEFAULT_MODEL, Model } from "../rehearsal/model";
import { freshWorld, World } from "../rehearsal/world";

/**
 * The pieces of the model of AWS's clock, each against what AWS documents: ALB health checks,
 * Lambda's asynchronous back-off, the interruption two minutes after the warning, and a pool
 * without capacity answering as EC2 does.
 */

/** The model without spread: every pending and boot time is its median. */
const EXACT: Model = { ...DEFAULT_MODEL, pendingSigma: 0, bootSigma: 0, healthCheckIntervalS: 5, healthyThreshold: 2, unhealthyThreshold: 2, deregistrationDelayS: 30 };

function stage(model = EXACT) {
    const clock = new VirtualClock(Date.parse("2026-01-05T09:00:00Z"));
    const activity = new Activity();
    const fleet = new ModelledFleet(clock, model);
    return { clock, activity, fleet };
}

/** Runs the clock until `work` settles, and answers what it answered. */
async function onClock<T>(clock: VirtualClock, activity: Activity, work: Promise<T>): Promise<T> {
    let done = false;
    const settled = work.finally(() => (done = true));
    await advance(clock, activity, { until: Infinity, while: () => !done });
    return settled;
}

const POOL = { zone: "us-east-2b", instanceType: "t3.micro", market: "spot" as const };

describe("the model of AWS's clock", () => {
    describe("the target group", () => {
        it("turns a target healthy exactly healthy threshold × interval after the application answers", () => {
            const { clock, fleet } = stage();
            fleet.launch("i-00000000000000001", POOL);
            const instance = fleet.instances.get("i-00000000000000001");
            assert.deepStrictEqual([instance?.runningAt, instance?.answersAt], [18, 30]);
            clock.now = 18;
            fleet.register("i-00000000000000001");
            assert.strictEqual(fleet.targetStateAt("i-00000000000000001", 39.99), "initial");
            assert.strictEqual(fleet.targetStateAt("i-00000000000000001", 40), "healthy");
            assert.strictEqual(fleet.firstHealthyAt("i-00000000000000001"), 40);
        });

        it("counts from the registration when the application already answers, and drains for the deregistration delay", () => {
            const { clock, fleet } = stage();
            fleet.launch("i-00000000000000001", POOL);
            clock.now = 100;
            fleet.register("i-00000000000000001");
            assert.strictEqual(fleet.targetStateAt("i-00000000000000001", 109.9), "initial");
            assert.strictEqual(fleet.targetStateAt("i-00000000000000001", 110), "healthy");
            clock.now = 200;
            fleet.deregister("i-00000000000000001");
            assert.strictEqual(fleet.targetStateAt("i-00000000000000001", 229.9), "draining");
            assert.strictEqual(fleet.targetStateAt("i-00000000000000001", 230), undefined);
        });
    });

    describe("the interruption", () => {
        it("shuts the instance down 120 s after the warning, terminates it after the modelled shutdown, and says so in events", () => {
            const { clock, fleet } = stage();
            fleet.adopt("i-00000000000000001", POOL);
            const signals: string[] = [];
            fleet.onSignal((signal: Ec2Signal) => signals.push(`${clock.now} ${signal.kind}${signal.kind === "state-change" ? ` ${signal.state}` : ""}`));
            clock.at(10, () => fleet.warn("i-00000000000000001"));
            while (clock.step()) {
                // Runs every entry: the warning, the interruption, the termination.
            }
            assert.deepStrictEqual(signals, ["10 rebalance-recommendation", "10 interruption-warning", "130 state-change shutting-down", "160 state-change terminated"]);
            assert.strictEqual(fleet.stateAt("i-00000000000000001", 129.9), "running");
            assert.strictEqual(fleet.targetStateAt("i-00000000000000001", 139.9), "healthy");
            assert.strictEqual(fleet.targetStateAt("i-00000000000000001", 140), "unhealthy", "two failed checks after the application stopped");
            assert.strictEqual(fleet.targetStateAt("i-00000000000000001", 160), "unused", "a terminated instance stays registered, unused");
        });

        it("empties the reclaimed pool from the warning until the interruption", () => {
            const { clock, fleet } = stage();
            fleet.adopt("i-00000000000000001", POOL);
            clock.now = 10;
            fleet.warn("i-00000000000000001");
            assert.strictEqual(fleet.hasCapacity(POOL, 10), false);
            assert.strictEqual(fleet.hasCapacity({ ...POOL, instanceType: "t3a.micro" }, 10), true);
            assert.strictEqual(fleet.hasCapacity({ ...POOL, market: "on-demand" }, 10), true);
            assert.strictEqual(fleet.hasCapacity(POOL, 130), true);
        });
    });

    describe("Lambda's asynchronous invocation", () => {
        it("retries a throttled event after 1 s, doubling to 5 minutes", () => {
            assert.deepStrictEqual(Array.from({ length: 11 }, (_, i) => asyncRetryDelay(EXACT, i + 1)), [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        });

        it("starts an event that arrived during a 100 s invocation only at its next retry, 127 s later", async () => {
            const { clock, activity } = stage();
            const fn = new FunctionModel(clock, EXACT, activity, () => clock.sleep(100), { timeoutS: 900, concurrency: 1 });
            const delivery = new AsyncDelivery(clock, EXACT, fn);
            delivery.enqueue({ id: "first" });
            delivery.enqueue({ id: "second" });
            await advance(clock, activity, { until: 1000 });
            // Throttled at 0, retried at 1, 3, 7, 15, 31, 63 (busy until 100.5: a cold start, then 100 s), then 127.
            assert.deepStrictEqual(fn.invocations.map((i) => i.startedAt), [0, 127]);
            assert.strictEqual(delivery.throttles, 7);
        });

        it("fails an invocation that outlives the function's timeout and retries it after one minute, then two", async () => {
            const { clock, activity } = stage();
            const fn = new FunctionModel(clock, EXACT, activity, () => clock.sleep(100), { timeoutS: 30, concurrency: 1 });
            const delivery = new AsyncDelivery(clock, EXACT, fn);
            delivery.enqueue({ id: "slow" });
            await advance(clock, activity, { until: 1000 });
            // Timed out at 30.5 (after a cold start), retried at 90.5; timed out at 120.5, retried at 240.5.
            assert.deepStrictEqual(fn.invocations.map((i) => [i.startedAt, i.ok]), [[0, false], [90.5, false], [240.5, false]]);
            assert.strictEqual(delivery.deadLettered, 1);
        });
    });

    describe("EC2 and the target group behind the clock-driven proxy", () => {
        let world: World;
        let clock: VirtualClock;
        let activity: Activity;
        let fleet: ModelledFleet;
        let proxy: ClockProxy;
        let ec2: EC2Client;
        let elb: ElasticLoadBalancingV2Client;
        beforeEach(async () => {
            const fresh = await freshWorld();
            world = fresh.world;
            ({ clock, activity, fleet } = stage());
            proxy = new ClockProxy(fresh.emulator.motoEndpoint, clock, fleet, activity);
            const endpoint = await proxy.listen();
            proxy.subnetZones = Object.fromEntries(Object.entries(world.settings.subnetsByZone).map(([zone, id]) => [id, zone]));
            proxy.targetGroupArn = world.settings.targetGroupArn;
            // One attempt: these tests read the proxy's answers, not the SDK's retries of them.
            const connection = { region: world.settings.region, endpoint, credentials: CREDENTIALS, maxAttempts: 1 };
            ec2 = new EC2Client(connection);
            elb = new ElasticLoadBalancingV2Client(connection);
        });
        afterEach(() => proxy.close());

        const launch = (instanceType: string) => ec2.send(new RunInstancesCommand({
            MinCount: 1,
            MaxCount: 1,
            LaunchTemplate: { LaunchTemplateId: world.settings.launchTemplateId },
            InstanceType: instanceType as "t3.micro",
            SubnetId: world.settings.subnetsByZone["us-east-2b"],
            InstanceMarketOptions: { MarketType: "spot" },
        }));

        it("answers a launch into an empty pool with EC2's capacity error, after the modelled latency", async () => {
            fleet.outages.push({ zone: "us-east-2b", market: "spot", instanceType: "t3.micro", from: 0, to: 600 });
            await assert.rejects(onClock(clock, activity, launch("t3.micro")), { name: "InsufficientInstanceCapacity" });
            assert.strictEqual(clock.now, EXACT.runInstancesLatencyS);
            assert.strictEqual(fleet.instances.size, 0);
            const launched = await onClock(clock, activity, launch("t3a.micro"));
            assert.ok(fleet.instances.has(launched.Instances?.[0].InstanceId as string), "another pool launches, and the model knows the instance");
        });

        it("reports a launched instance pending until its modelled running time, and refuses to register it before", async () => {
            const id = (await onClock(clock, activity, launch("t3.micro"))).Instances?.[0].InstanceId as string;
            const state = async () => (await onClock(clock, activity, ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })))).Reservations?.[0].Instances?.[0].State?.Name;
            assert.strictEqual(await state(), "pending", "moto says running; the model says pending");
            await assert.rejects(onClock(clock, activity, elb.send(new RegisterTargetsCommand({ TargetGroupArn: world.settings.targetGroupArn, Targets: [{ Id: id }] }))), { name: "InvalidTargetException" });
            clock.now = 20;
            assert.strictEqual(await state(), "running");
        });

        it("puts the SDK's waiter on the modelled clock: it returns once the instance runs, in modelled, not real, time", async () => {
            const id = (await onClock(clock, activity, launch("t3.micro"))).Instances?.[0].InstanceId as string;
            const uninstall = clock.install(1);
            const started = performance.now();
            try {
                await onClock(clock, activity, waitUntilInstanceRunning({ client: ec2, maxWaitTime: 90, minDelay: 2, maxDelay: 5 }, { InstanceIds: [id] }));
            } finally {
                uninstall();
            }
            assert.ok(clock.now >= 18 && clock.now < 30, `the waiter saw running at t+${clock.now} s (the model: 18 s after a 1.5 s launch)`);
            assert.ok(performance.now() - started < 10_000, "without sleeping for real");
        });
    });
});
