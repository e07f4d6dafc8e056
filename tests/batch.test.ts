import * as assert from "assert";
import { TAG } from "../handler/tags";
import { Emulator } from "../rehearsal/emulator";
import { freshWorld, interruptionWarning, rebalanceRecommendation, scheduledEvent, sqsBatch, stateChange, tag, World } from "../rehearsal/world";

/** One SQS batch, one observation, one plan: what the event source mapping hands the handler, on moto. */

describe("a batch of events", () => {
    let emulator: Emulator;
    let world: World;
    beforeEach(async () => {
        ({ emulator, world } = await freshWorld());
    });

    it("answers mixed events with one observation and one launch per missing place", async () => {
        const doomed = world.declared["Prometheus-B"];
        const lost = world.declared["Prometheus-C"];
        await world.ec2.send(new (await import("@aws-sdk/client-ec2")).TerminateInstancesCommand({ InstanceIds: [lost] }));
        const response = await world.handle(
            interruptionWarning(doomed),
            rebalanceRecommendation(doomed),
            stateChange(lost, "terminated"),
            scheduledEvent(),
            stateChange("i-0123456789abcdef0", "running"),
        );
        assert.deepStrictEqual(response, { batchItemFailures: [] });
        assert.deepStrictEqual(["DescribeInstances", "DescribeTargetHealth", "DescribeSpotPriceHistory"].map((a) => emulator.proxy.callsTo(a).length), [1, 1, 1], "observed once");
        const launched = (await world.instances()).filter((i) => tag(i, TAG.launchedBy) === "handler");
        assert.deepStrictEqual(launched.map((i) => tag(i, TAG.replaces)).sort(), [doomed, lost].sort(), "one replacement for the warned, one refill for the lost");
        assert.ok(world.logs.some((line) => line.instance === "i-0123456789abcdef0" && line.reason === "not an instance of this stack"));
    });

    it("acknowledges a junk record and acts on the rest", async () => {
        const response = await world.handler(sqsBatch("{\"truncated\":", interruptionWarning(world.declared["Prometheus-A"])));
        assert.deepStrictEqual(response, { batchItemFailures: [] }, "junk is logged, never retried");
        assert.strictEqual(emulator.proxy.callsTo("RunInstances").length, 1);
        assert.deepStrictEqual(world.logs.find((line) => line.message === "m1"), { message: "m1", action: "none", result: "ignored", reason: "message body is not JSON", ms: world.logs.find((line) => line.message === "m1")?.ms });
    });

    it("reports only the message whose launch failed", async () => {
        // Room for one instance in the whole region, on spot only: of two warnings, one is answered.
        emulator.proxy.capacityFaults = [{ market: "spot", code: "InsufficientInstanceCapacity", room: 1 }];
        const warned = [world.declared["Prometheus-A"], world.declared["Prometheus-B"]];
        const response = await world.reconfigured({ onDemandFallback: false })(...warned.map((id) => interruptionWarning(id)));
        const launched = (await world.instances()).filter((i) => tag(i, TAG.launchedBy) === "handler");
        assert.strictEqual(launched.length, 1);
        const answered = warned.indexOf(tag(launched[0], TAG.replaces) as string);
        assert.deepStrictEqual(response.batchItemFailures, [{ itemIdentifier: `m${2 - answered}` }], "the other warning's message, and only it");
    });

    it("never throws, even for a payload that is not a batch", async () => {
        assert.deepStrictEqual(await world.handler({ hello: "world" }), { batchItemFailures: [] });
        assert.deepStrictEqual(emulator.proxy.calls, []);
    });
});
