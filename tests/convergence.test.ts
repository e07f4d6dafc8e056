import * as assert from "assert";
import { TAG } from "../handler/tags";
import { Emulator } from "../rehearsal/emulator";
import { freshWorld, scheduledEvent, stateChange, tag, World } from "../rehearsal/world";

/**
 * `pulumi config set` + `pulumi up`: the program bakes new settings into the handler, and its
 * reconcile converges every instance of the stack, whoever launched it (the deploy invocation
 * runs the same reconcile; tests/deploy.test.ts).
 */

describe("after a config edit, the schedule", () => {
    let emulator: Emulator;
    let world: World;
    beforeEach(async () => {
        ({ emulator, world } = await freshWorld());
    });

    const perZone = async () => {
        const live = await world.instances();
        return ["a", "b", "c"].map((letter) => live.filter((i) => i.Placement?.AvailabilityZone === `us-east-2${letter}`).length);
    };

    it("drains and terminates every instance in a zone no longer configured", async () => {
        const stray = await world.launchOwned("us-east-2c", "handler");
        const { "us-east-2c": _dropped, ...subnetsByZone } = world.settings.subnetsByZone;
        await world.reconfigured({ subnetsByZone })(scheduledEvent());
        const calls = emulator.proxy.calls.map((call) => `${call.action} ${call.params["InstanceId.1"] ?? call.params["Targets.member.1.Id"] ?? ""}`.trim());
        for (const id of [stray, world.declared["Prometheus-C"]]) {
            assert.ok(calls.includes(`DeregisterTargets ${id}`) && calls.includes(`TerminateInstances ${id}`), `${id} drained and terminated: ${calls.join(", ")}`);
        }
        assert.deepStrictEqual(await perZone(), [1, 1, 0]);
        assert.deepStrictEqual(emulator.proxy.callsTo("RunInstances"), []);
    });

    it("replaces every instance whose type is no longer listed: each new one first, then retires the old", async () => {
        const old = Object.values(world.declared);
        const handle = world.reconfigured({ instanceTypes: ["t3a.micro", "t2.micro"] });
        await handle(scheduledEvent());
        const replacements = (await world.instances()).filter((i) => old.includes(tag(i, TAG.replaces) as string));
        assert.strictEqual(replacements.length, 3, "one replacement of a listed type per zone");
        assert.ok(replacements.every((i) => i.InstanceType === "t3a.micro" && i.InstanceLifecycle === "spot"));
        assert.deepStrictEqual(await perZone(), [2, 2, 2], "the old ones serve until the new ones are healthy");

        await handle(...replacements.map((i) => stateChange(i.InstanceId as string, "running")));
        await handle(scheduledEvent());
        assert.deepStrictEqual((await world.instances()).map((i) => i.InstanceId).sort(), replacements.map((i) => i.InstanceId).sort(), "retired once the replacements are healthy");
    });

    it("adds instances when instancesPerZone grows", async () => {
        await world.reconfigured({ instancesPerZone: 2 })(scheduledEvent());
        assert.deepStrictEqual(await perZone(), [2, 2, 2]);
    });

    it("trims the newest instances when instancesPerZone shrinks", async () => {
        const newest = [await world.launchOwned("us-east-2a", "handler"), await world.launchOwned("us-east-2b", "handler")];
        await world.handle(scheduledEvent());
        assert.deepStrictEqual(await perZone(), [1, 1, 1]);
        const live = (await world.instances()).map((i) => i.InstanceId);
        assert.deepStrictEqual(live.sort(), Object.values(world.declared).sort(), `${newest.join(", ")} trimmed`);
    });
});
