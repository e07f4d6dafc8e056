import * as assert from "assert";
import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import { TAG } from "../handler/tags";
import { Emulator, useEmulator } from "./support/emulator";
import { buildWorld, interruptionWarning, tag, World } from "./support/world";

/** Scenario 1: the interruption warning, end to end against moto. */

describe("an interruption warning for zone B's instance", () => {
    let emulator: Emulator;
    let world: World;
    before(async () => {
        emulator = await useEmulator();
    });
    beforeEach(async () => {
        await emulator.reset();
        world = await buildWorld(emulator);
    });

    it("drains it, then launches exactly one replacement in zone B, tagged, spot, from the template, registered", async () => {
        const doomed = world.declared["Prometheus-B"];
        await world.handle(interruptionWarning(doomed));

        const calls = emulator.proxy.calls.map((call) => call.action);
        assert.strictEqual(calls.filter((a) => a === "DeregisterTargets").length, 1);
        assert.ok(calls.indexOf("DeregisterTargets") < calls.indexOf("RunInstances"), `drain comes first: ${calls.join(", ")}`);
        assert.strictEqual(calls.filter((a) => a === "RunInstances").length, 1);
        assert.ok(!calls.includes("RequestSpotInstances"));
        assert.ok(!calls.includes("CreateTags"), "tags go in TagSpecifications");

        const replacements = (await world.instances()).filter((i) => tag(i, TAG.launchedBy) === "handler");
        assert.strictEqual(replacements.length, 1);
        const [replacement] = replacements;
        assert.strictEqual(replacement.Placement?.AvailabilityZone, "us-east-2b");
        assert.strictEqual(tag(replacement, "Name"), "Prometheus-B");
        assert.strictEqual(tag(replacement, TAG.stack), "spot-availability/test");
        assert.strictEqual(tag(replacement, TAG.zone), "us-east-2b");
        assert.strictEqual(tag(replacement, TAG.replaces), doomed);
        assert.strictEqual(replacement.InstanceLifecycle, "spot");
        assert.strictEqual(replacement.InstanceType, "t3.micro");
        assert.strictEqual(tag(replacement, "aws:ec2launchtemplate:id"), world.settings.launchTemplateId);
        assert.strictEqual(replacement.SubnetId, world.settings.subnetsByZone["us-east-2b"]);

        const targets = await world.registeredTargets();
        assert.ok(replacement.InstanceId && replacement.InstanceId in targets, "replacement registered");
        assert.ok(!(doomed in targets), "doomed instance drained");
        const [run] = emulator.proxy.callsTo("RunInstances");
        assert.match(run.params.ClientToken, /^[0-9a-f]{64}$/);
        assert.strictEqual(run.params["InstanceMarketOptions.MarketType"], "spot");
        assert.strictEqual(run.params["InstanceMarketOptions.SpotOptions.MaxPrice"], undefined);
    });
});
