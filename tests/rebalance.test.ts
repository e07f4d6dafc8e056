import * as assert from "assert";
import { TAG } from "../handler/tags";
import { Emulator } from "../rehearsal/emulator";
import { freshWorld, rebalanceRecommendation, scheduledEvent, stateChange, tag, World } from "../rehearsal/world";

/** A rebalance recommendation: the replacement first; the old instance goes only once it is healthy. */

describe("a rebalance recommendation", () => {
    let emulator: Emulator;
    async function world(replaceOnRebalance: boolean): Promise<World> {
        const fresh = await freshWorld({ settings: { replaceOnRebalance } });
        emulator = fresh.emulator;
        return fresh.world;
    }

    it("with replaceOnRebalance, launches the replacement in another pool and keeps the old one serving", async () => {
        const w = await world(true);
        const atRisk = w.declared["Prometheus-B"];
        await w.handle(rebalanceRecommendation(atRisk));

        const [replacement] = (await w.instances()).filter((i) => tag(i, TAG.launchedBy) === "handler");
        assert.strictEqual(replacement.Placement?.AvailabilityZone, "us-east-2b");
        assert.strictEqual(replacement.InstanceType, "t3a.micro", "another pool than the at-risk t3.micro");
        assert.strictEqual(tag(replacement, TAG.replaces), atRisk);
        await w.handle(stateChange(replacement.InstanceId as string, "running"));
        const targets = await w.registeredTargets();
        assert.ok(atRisk in targets && (replacement.InstanceId as string) in targets, "both serve");
        assert.deepStrictEqual(emulator.proxy.callsTo("DeregisterTargets"), []);
        assert.deepStrictEqual(emulator.proxy.callsTo("TerminateInstances"), []);
    });

    it("drains and terminates the old instance only once the replacement is healthy", async () => {
        const w = await world(true);
        const atRisk = w.declared["Prometheus-B"];
        await w.handle(rebalanceRecommendation(atRisk));
        const [replacement] = (await w.instances()).filter((i) => tag(i, TAG.launchedBy) === "handler");
        const replacementId = replacement.InstanceId as string;
        await w.handle(stateChange(replacementId, "running"));

        emulator.proxy.targetHealth = { [replacementId]: "initial" };
        await w.handle(scheduledEvent());
        assert.deepStrictEqual(emulator.proxy.callsTo("TerminateInstances"), [], "not while the replacement is still initial");
        assert.ok(atRisk in (await w.registeredTargets()));

        emulator.proxy.targetHealth = { [replacementId]: "healthy" };
        await w.handle(scheduledEvent());
        const actions = emulator.proxy.calls.map((call) => call.action);
        assert.ok(actions.lastIndexOf("DeregisterTargets") < actions.lastIndexOf("TerminateInstances"), "drained before terminated");
        assert.strictEqual(emulator.proxy.callsTo("TerminateInstances")[0].params["InstanceId.1"], atRisk);
        const live = (await w.instances()).map((i) => i.InstanceId);
        assert.ok(!live.includes(atRisk));
        assert.ok(live.includes(replacementId));
        assert.strictEqual(emulator.proxy.callsTo("RunInstances").length, 1, "no launch to refill zone B");
    });

    it("without replaceOnRebalance, does nothing", async () => {
        const w = await world(false);
        await w.handle(rebalanceRecommendation(w.declared["Prometheus-B"]));
        assert.deepStrictEqual(emulator.proxy.writeCalls(), []);
    });
});
