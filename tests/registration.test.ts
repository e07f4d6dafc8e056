import * as assert from "assert";
import { TAG } from "../handler/tags";
import { Emulator } from "../rehearsal/emulator";
import { freshWorld, interruptionWarning, scheduledEvent, stateChange, tag, World } from "../rehearsal/world";

/** A replacement whose registration failed: its running message comes back, and the schedule registers it too. */

describe("a replacement whose RegisterTargets failed", () => {
    let emulator: Emulator;
    let world: World;
    let replacementId: string;
    beforeEach(async () => {
        ({ emulator, world } = await freshWorld());
        await world.handle(interruptionWarning(world.declared["Prometheus-B"]));
        const [replacement] = (await world.instances()).filter((i) => tag(i, TAG.launchedBy) === "handler");
        replacementId = replacement.InstanceId as string;
        emulator.proxy.failingRegistrations = 1;
        const response = await world.handle(stateChange(replacementId, "running"));
        assert.deepStrictEqual(response, { batchItemFailures: [{ itemIdentifier: "m1" }] }, "the running message fails, so SQS delivers it again");
        assert.ok(!(replacementId in (await world.registeredTargets())), "not registered after the failure");
        assert.strictEqual(world.logs.find((line) => line.action === "register")?.result, "failed");
    });

    it("is registered when SQS delivers the running event again", async () => {
        await world.handle(stateChange(replacementId, "running"));
        assert.ok(replacementId in (await world.registeredTargets()));
        assert.strictEqual(emulator.proxy.callsTo("RunInstances").length, 1, "no second launch");
    });

    it("is registered by the schedule", async () => {
        await world.handle(scheduledEvent());
        assert.ok(replacementId in (await world.registeredTargets()));
    });

    it("is not registered twice", async () => {
        await world.handle(stateChange(replacementId, "running"));
        const before = emulator.proxy.callsTo("RegisterTargets").length;
        await world.handle(stateChange(replacementId, "running"));
        await world.handle(scheduledEvent());
        assert.strictEqual(emulator.proxy.callsTo("RegisterTargets").length, before);
    });
});
