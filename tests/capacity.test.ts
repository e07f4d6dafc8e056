import * as assert from "assert";
import { TAG } from "../handler/tags";
import { Emulator } from "../rehearsal/emulator";
import { freshWorld, interruptionWarning, tag, World } from "../rehearsal/world";

/** When a pool has no capacity: next type, then next zone, then on-demand; else fail loudly. */

describe("a replacement when capacity is short", () => {
    let emulator: Emulator;
    async function world(onDemandFallback = true): Promise<World> {
        const fresh = await freshWorld({ settings: { onDemandFallback } });
        emulator = fresh.emulator;
        return fresh.world;
    }

    async function replacement(world: World) {
        const launched = (await world.instances()).filter((i) => tag(i, TAG.launchedBy) === "handler");
        assert.strictEqual(launched.length, 1, "exactly one replacement");
        return launched[0];
    }

    it("takes the next instance type when the first it tries has no spot capacity in the zone", async () => {
        const w = await world();
        // The warned pool (t3.micro) goes last, so t3a.micro is the first tried.
        emulator.proxy.capacityFaults = [{ zone: "us-east-2b", instanceType: "t3a.micro", code: "InsufficientCapacity" }];
        await w.handle(interruptionWarning(w.declared["Prometheus-B"]));
        const instance = await replacement(w);
        assert.strictEqual(instance.Placement?.AvailabilityZone, "us-east-2b");
        assert.strictEqual(instance.InstanceType, "t2.micro");
        assert.strictEqual(instance.InstanceLifecycle, "spot");
        // A capacity error moves on at once: the SDK does not retry it.
        assert.strictEqual(emulator.proxy.callsTo("RunInstances").length, 2);
    });

    it("takes another zone when no type has capacity in the zone", async () => {
        const w = await world();
        emulator.proxy.capacityFaults = [{ zone: "us-east-2b", code: "InsufficientInstanceCapacity" }];
        await w.handle(interruptionWarning(w.declared["Prometheus-B"]));
        const instance = await replacement(w);
        assert.notStrictEqual(instance.Placement?.AvailabilityZone, "us-east-2b");
        assert.strictEqual(instance.InstanceType, "t3.micro");
        assert.strictEqual(tag(instance, "Name"), `Prometheus-${instance.Placement?.AvailabilityZone?.slice(-1).toUpperCase()}`);
        assert.strictEqual(instance.InstanceLifecycle, "spot");
    });

    it("falls back to on-demand in the zone when no spot pool anywhere has capacity", async () => {
        const w = await world();
        emulator.proxy.capacityFaults = [
            { market: "spot", code: "InsufficientInstanceCapacity" },
        ];
        await w.handle(interruptionWarning(w.declared["Prometheus-B"]));
        const instance = await replacement(w);
        assert.strictEqual(instance.Placement?.AvailabilityZone, "us-east-2b");
        assert.strictEqual(instance.InstanceLifecycle, undefined, "on-demand");
        assert.strictEqual(emulator.proxy.callsTo("RunInstances").length, 3 * 3 + 1, "every spot pool, then on-demand");
    });

    it("fails, naming the zones and types it tried, when nothing has capacity and on-demand is off", async () => {
        const w = await world(false);
        emulator.proxy.capacityFaults = [
            { zone: "us-east-2b", instanceType: "t3.micro", code: "SpotMaxPriceTooLow" },
            { code: "UnfulfillableCapacity" },
        ];
        const response = await w.handle(interruptionWarning(w.declared["Prometheus-B"]));
        // Only this message fails: SQS retries it, then dead-letters it.
        assert.deepStrictEqual(response, { batchItemFailures: [{ itemIdentifier: "m1" }] });
        const failure = w.logs.find((line) => line.action === "launch" && line.result === "failed");
        assert.match(failure?.error, /^CapacityError: .*tried zones us-east-2b, us-east-2a, us-east-2c and types t3a.micro, t2.micro, t3.micro/);
        assert.match(failure?.error, /us-east-2b\/t3.micro\/spot: SpotMaxPriceTooLow/);
        assert.strictEqual((await w.instances()).filter((i) => tag(i, TAG.launchedBy) === "handler").length, 0);
        assert.ok(!emulator.proxy.callsTo("RunInstances").some((call) => call.params["InstanceMarketOptions.MarketType"] === undefined), "never on-demand");
        assert.strictEqual(w.logs.find((line) => line.action === "timer")?.result, "set", "the doomed instance still leaves rotation by its deadline");
    });

    it("rides out a throttled DescribeInstances through the SDK's retries", async () => {
        const w = await world();
        emulator.proxy.throttles = { DescribeInstances: 2 };
        await w.handle(interruptionWarning(w.declared["Prometheus-B"]));
        const describes = emulator.proxy.callsTo("DescribeInstances");
        assert.deepStrictEqual(describes.slice(0, 3).map((call) => call.injected), ["RequestLimitExceeded", "RequestLimitExceeded", undefined]);
        const instance = await replacement(w);
        assert.strictEqual(instance.Placement?.AvailabilityZone, "us-east-2b");
    });
});
