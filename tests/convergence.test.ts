import * as assert from "assert";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { TAG } from "../handler/tags";
import { Emulator } from "../rehearsal/emulator";
import { freshWorld, interruptionWarning, scheduledEvent, stateChange, tag, World } from "../rehearsal/world";

/**
 * `pulumi config set` + `pulumi up`: the program bakes new settings into the handler, Pulumi
 * converges its own instances, and the reconcile schedule converges the handler's.
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

    it("drains and terminates handler-launched instances in a zone no longer configured", async () => {
        const stray = await world.launchOwned("us-east-2c", "handler");
        const { "us-east-2c": _dropped, ...subnetsByZone } = world.settings.subnetsByZone;
        await world.reconfigured({ subnetsByZone })(scheduledEvent());
        const calls = emulator.proxy.calls.map((call) => `${call.action} ${call.params["InstanceId.1"] ?? call.params["Targets.member.1.Id"] ?? ""}`.trim());
        assert.ok(calls.indexOf(`DeregisterTargets ${stray}`) >= 0 && calls.indexOf(`DeregisterTargets ${stray}`) < calls.indexOf(`TerminateInstances ${stray}`), calls.join(", "));
        const live = (await world.instances()).map((i) => i.InstanceId);
        assert.ok(!live.includes(stray));
        assert.ok(live.includes(world.declared["Prometheus-C"]), "Pulumi removes its own instance there");
        assert.deepStrictEqual(emulator.proxy.callsTo("RunInstances"), []);
    });

    it("replaces an instance whose type is no longer listed: the new one first, then retires the old", async () => {
        const old = await world.launchOwned("us-east-2b", "handler");
        await world.ec2.send(new TerminateInstancesCommand({ InstanceIds: [world.declared["Prometheus-B"]] }));
        const handle = world.reconfigured({ instanceTypes: ["t3a.micro", "t2.micro"] });
        await handle(scheduledEvent());
        const replacement = (await world.instances()).find((i) => tag(i, TAG.replaces) === old);
        assert.ok(replacement, "a replacement of a listed type");
        assert.strictEqual(replacement.InstanceType, "t3a.micro");
        assert.strictEqual(replacement.Placement?.AvailabilityZone, "us-east-2b");
        assert.ok((await world.instances()).some((i) => i.InstanceId === old), "the old one serves until the new one is healthy");

        await handle(stateChange(replacement.InstanceId as string, "running"));
        await handle(scheduledEvent());
        assert.ok(!(await world.instances()).some((i) => i.InstanceId === old), "retired once the replacement is healthy");
        assert.deepStrictEqual(await perZone(), [1, 1, 1]);
    });

    it("adds instances when instancesPerZone grows", async () => {
        await world.reconfigured({ instancesPerZone: 2 })(scheduledEvent());
        assert.deepStrictEqual(await perZone(), [2, 2, 2]);
    });

    it("trims the handler's instances, never Pulumi's, when instancesPerZone shrinks", async () => {
        const handlers = [await world.launchOwned("us-east-2a", "handler"), await world.launchOwned("us-east-2b", "handler")];
        await world.handle(scheduledEvent());
        assert.deepStrictEqual(await perZone(), [1, 1, 1]);
        const live = (await world.instances()).map((i) => i.InstanceId);
        assert.ok(handlers.every((id) => !live.includes(id)));
        assert.ok(Object.values(world.declared).every((id) => live.includes(id)));
    });

    it("retires the handler's stand-in once `pulumi up --refresh` re-creates the Pulumi instance it stood in for", async () => {
        const interrupted = world.declared["Prometheus-B"];
        await world.handle(interruptionWarning(interrupted));
        await world.ec2.send(new TerminateInstancesCommand({ InstanceIds: [interrupted] }));
        const standIn = (await world.instances()).find((i) => tag(i, TAG.replaces) === interrupted)?.InstanceId as string;
        const recreated = await world.launchOwned("us-east-2b", "pulumi");

        await world.handle(scheduledEvent());
        const live = (await world.instances()).map((i) => i.InstanceId);
        assert.ok(!live.includes(standIn), "the stand-in is retired");
        assert.ok(live.includes(recreated));
        assert.deepStrictEqual(await perZone(), [1, 1, 1]);
    });
});
