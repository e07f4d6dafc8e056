import * as assert from "assert";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { TAG } from "../handler/tags";
import { Emulator } from "../rehearsal/emulator";
import { freshWorld, interruptionWarning, scheduledEvent, stateChange, tag, World } from "../rehearsal/world";

/** The schedule puts every zone back to its count, and trims only what the handler launched. */

describe("the reconcile schedule", () => {
    let emulator: Emulator;
    let world: World;
    beforeEach(async () => {
        ({ emulator, world } = await freshWorld());
    });

    const zonesOf = async () => (await world.instances()).map((i) => i.Placement?.AvailabilityZone).sort();

    it("refills a zone that a lost instance left empty, in the lost instance's place", async () => {
        const lost = world.declared["Prometheus-A"];
        await world.ec2.send(new TerminateInstancesCommand({ InstanceIds: [lost] }));
        await world.handle(scheduledEvent());
        assert.deepStrictEqual(await zonesOf(), ["us-east-2a", "us-east-2b", "us-east-2c"]);
        const [refill] = (await world.instances()).filter((i) => tag(i, TAG.launchedBy) === "handler");
        assert.strictEqual(tag(refill, "Name"), "Prometheus-A");
        assert.strictEqual(tag(refill, TAG.replaces), lost, "the place's key: a warning's launch for it would be the same one");
        assert.strictEqual(tag(refill, TAG.noticedAt), undefined, "no notice: its registration counts as a refill");

        await world.handle(stateChange(refill.InstanceId as string, "running"));
        assert.ok((refill.InstanceId as string) in (await world.registeredTargets()));
        assert.ok(world.metrics.some((m) => m.RefillToRegisteredMs >= 0 && m.instance === refill.InstanceId));
        assert.ok(!world.metrics.some((m) => "NoticeToRegisteredMs" in m));
    });

    it("refills a zone when an instance's terminated event arrives", async () => {
        const lost = world.declared["Prometheus-C"];
        await world.ec2.send(new TerminateInstancesCommand({ InstanceIds: [lost] }));
        await world.handle(stateChange(lost, "terminated"));
        assert.deepStrictEqual(await zonesOf(), ["us-east-2a", "us-east-2b", "us-east-2c"]);
    });

    it("terminates the extras, the deploy's as well as the handler's", async () => {
        const handlerExtra = await world.launchOwned("us-east-2c", "handler");
        const deployExtra = await world.launchOwned("us-east-2a", "pulumi");
        await world.handle(scheduledEvent());
        const live = (await world.instances()).map((i) => i.InstanceId as string);
        assert.ok(!live.includes(handlerExtra), "the handler's extra is gone");
        // Launched in the same second as the first (EC2's launch times have one-second resolution), either of zone a's two may go.
        const zoneA = [world.declared["Prometheus-A"], deployExtra];
        assert.strictEqual(zoneA.filter((id) => live.includes(id)).length, 1, "zone a is back at one: the handler owns the deploy's instances too");
        assert.deepStrictEqual(live.filter((id) => !zoneA.includes(id)).sort(), [world.declared["Prometheus-B"], world.declared["Prometheus-C"]].sort());
        assert.strictEqual(emulator.proxy.callsTo("TerminateInstances").length, 2);
    });

    it("swaps an on-demand fallback back to spot once spot has capacity, then retires it when the spot one is healthy", async () => {
        emulator.proxy.capacityFaults = [{ market: "spot", code: "InsufficientInstanceCapacity" }];
        await world.handle(interruptionWarning(world.declared["Prometheus-B"]));
        await world.ec2.send(new TerminateInstancesCommand({ InstanceIds: [world.declared["Prometheus-B"]] }));
        const [fallback] = (await world.instances()).filter((i) => tag(i, TAG.launchedBy) === "handler");
        assert.strictEqual(fallback.InstanceLifecycle, undefined);

        emulator.proxy.capacityFaults = [];
        await world.handle(scheduledEvent());
        const spot = (await world.instances()).find((i) => tag(i, TAG.replaces) === fallback.InstanceId);
        assert.ok(spot, "a spot instance replaces the fallback");
        assert.strictEqual(spot.InstanceLifecycle, "spot");
        assert.strictEqual(spot.Placement?.AvailabilityZone, "us-east-2b");

        await world.handle(stateChange(spot.InstanceId as string, "running"));
        await world.handle(scheduledEvent());
        const live = (await world.instances()).map((i) => i.InstanceId);
        assert.ok(!live.includes(fallback.InstanceId), "the on-demand fallback is retired");
        assert.deepStrictEqual(await zonesOf(), ["us-east-2a", "us-east-2b", "us-east-2c"]);
    });

    it("does nothing when every zone holds its count", async () => {
        await world.handle(scheduledEvent());
        assert.deepStrictEqual(emulator.proxy.writeCalls(), []);
    });
});
