import * as assert from "assert";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { METRIC_NAMESPACE, metricLine } from "../handler/metrics";
import { Emulator } from "../rehearsal/emulator";
import { freshWorld, interruptionWarning, scheduledEvent, stateChange, World } from "../rehearsal/world";

/** What the handler tells CloudWatch, in the embedded metric format. */

describe("metricLine", () => {
    it("writes an EMF document CloudWatch Logs turns into metrics", () => {
        const document = JSON.parse(metricLine("p/s", { InstancesInZone: 2 }, { Zone: "us-east-2a" }, {}, 1_700_000_000_000));
        assert.deepStrictEqual(document, {
            _aws: {
                Timestamp: 1_700_000_000_000,
                CloudWatchMetrics: [{ Namespace: METRIC_NAMESPACE, Dimensions: [["Stack", "Zone"]], Metrics: [{ Name: "InstancesInZone", Unit: "Count" }] }],
            },
            Stack: "p/s",
            Zone: "us-east-2a",
            InstancesInZone: 2,
        });
    });
});

describe("the handler's metrics", () => {
    let emulator: Emulator;
    let world: World;
    beforeEach(async () => {
        ({ emulator, world } = await freshWorld());
    });

    it("counts a warning and a replacement, with the time from notice to registration and the price", async () => {
        emulator.proxy.spotPrices = { "us-east-2a": 0.004, "us-east-2b": 0.0031, "us-east-2c": 0.005 };
        await world.handle(interruptionWarning(world.declared["Prometheus-B"]));
        const [warned, replaced] = world.metrics;
        assert.strictEqual(warned.InterruptionWarnings, 1);
        assert.strictEqual(replaced.Replacements, 1);
        assert.strictEqual(replaced.zone, "us-east-2b");
        assert.strictEqual(replaced.price, 0.0031);
        assert.strictEqual(replaced.Stack, world.settings.stack);

        // Registered on its running event, in another invocation: the notice's time travels in a tag.
        await world.handle(stateChange(replaced.launched, "running"));
        const registered = world.metrics.find((m) => "NoticeToRegisteredMs" in m) ?? {};
        assert.ok(registered.NoticeToRegisteredMs >= 0 && registered.NoticeToRegisteredMs < 60_000, JSON.stringify(registered));
        assert.ok(!world.metrics.some((m) => "RefillToRegisteredMs" in m));
    });

    it("logs the spot price of the type it launched, when the type it tried first had no capacity", async () => {
        emulator.proxy.spotPrices = { "us-east-2b": { "t3.micro": 0.0031, "t3a.micro": 0.0029, "t2.micro": 0.0035 } };
        emulator.proxy.capacityFaults = [{ zone: "us-east-2b", instanceType: "t3a.micro", code: "InsufficientInstanceCapacity" }];
        await world.handle(interruptionWarning(world.declared["Prometheus-B"]));
        const launch = world.logs.find((line) => line.action === "launch" && line.result === "launched");
        assert.deepStrictEqual([launch?.instanceType, launch?.price], ["t2.micro", 0.0035]);
        assert.strictEqual(world.metrics.find((m) => m.Replacements === 1)?.price, 0.0035);
    });

    it("reports every zone's count at each reconcile, so an alarm can see a zone stay short", async () => {
        emulator.proxy.capacityFaults = [{ zone: "us-east-2a", code: "InsufficientInstanceCapacity" }];
        await world.ec2.send(new TerminateInstancesCommand({ InstanceIds: [world.declared["Prometheus-A"]] }));
        await world.handle(scheduledEvent());
        const counts = Object.fromEntries(world.metrics.filter((m) => "InstancesInZone" in m).map((m) => [m.Zone, m.InstancesInZone]));
        assert.deepStrictEqual(counts, { "us-east-2a": 0, "us-east-2b": 1, "us-east-2c": 1 });
    });

    it("counts a replacement that found no capacity anywhere", async () => {
        emulator.proxy.capacityFaults = [{ code: "InsufficientInstanceCapacity" }];
        assert.deepStrictEqual(await world.handle(interruptionWarning(world.declared["Prometheus-B"])), { batchItemFailures: [{ itemIdentifier: "m1" }] });
        assert.strictEqual(world.metrics.filter((m) => m.ReplacementFailures === 1).length, 1);
    });
});
