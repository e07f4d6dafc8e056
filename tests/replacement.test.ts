import * as assert from "assert";
import { TAG } from "../handler/tags";
import { Emulator } from "../rehearsal/emulator";
import { freshWorld, interruptionWarning, tag, World } from "../rehearsal/world";

const handlerLaunched = async (world: World) => (await world.instances()).filter((i) => tag(i, TAG.launchedBy) === "handler");

/** The interruption warning, against moto: the replacement, its idempotency, and its zone. */

describe("an interruption warning for zone B's instance", () => {
    let emulator: Emulator;
    let world: World;
    beforeEach(async () => {
        ({ emulator, world } = await freshWorld());
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

    it("launches one replacement when the same warning arrives three times in sequence", async () => {
        const warning = interruptionWarning(world.declared["Prometheus-B"]);
        for (let delivery = 0; delivery < 3; delivery++) {
            await world.handle(warning);
        }
        assert.strictEqual((await handlerLaunched(world)).length, 1);
        assert.strictEqual(emulator.proxy.callsTo("RunInstances").length, 1, "later deliveries see the replacement and launch nothing");
    });

    it("launches one replacement when the same warning arrives three times at once", async () => {
        const warning = interruptionWarning(world.declared["Prometheus-B"]);
        await Promise.all([world.handle(warning), world.handle(warning), world.handle(warning)]);
        // All three observed no replacement and asked; the ClientToken made AWS answer with one reservation.
        const runs = emulator.proxy.callsTo("RunInstances");
        assert.strictEqual(runs.length, 3);
        assert.strictEqual(new Set(runs.map((run) => run.params.ClientToken)).size, 1);
        assert.strictEqual((await handlerLaunched(world)).length, 1);
    });

    it("launches again for a different warning about the same instance only if the first replacement is gone", async () => {
        const doomed = world.declared["Prometheus-B"];
        await world.handle(interruptionWarning(doomed));
        await world.handle(interruptionWarning(doomed));
        assert.strictEqual((await handlerLaunched(world)).length, 1);
    });

    it("gives a tie between zones to the lowest spot price", async () => {
        // Zone B has no capacity at all: A and C hold one instance each, a tie.
        emulator.proxy.capacityFaults = [{ zone: "us-east-2b", code: "InsufficientInstanceCapacity" }];
        emulator.proxy.spotPrices = { "us-east-2a": 0.0051, "us-east-2b": 0.001, "us-east-2c": 0.0032 };
        await world.handle(interruptionWarning(world.declared["Prometheus-B"]));
        const [replacement] = await handlerLaunched(world);
        assert.strictEqual(replacement.Placement?.AvailabilityZone, "us-east-2c");
        assert.strictEqual(tag(replacement, "Name"), "Prometheus-C");
        const launch = world.logs.find((line) => line.action === "launch");
        assert.strictEqual(launch?.price, 0.0032);
    });

    it("gives the same tie to zone A when A is the cheaper", async () => {
        emulator.proxy.capacityFaults = [{ zone: "us-east-2b", code: "InsufficientInstanceCapacity" }];
        emulator.proxy.spotPrices = { "us-east-2a": 0.0031, "us-east-2b": 0.001, "us-east-2c": 0.0052 };
        await world.handle(interruptionWarning(world.declared["Prometheus-B"]));
        const [replacement] = await handlerLaunched(world);
        assert.strictEqual(replacement.Placement?.AvailabilityZone, "us-east-2a");
    });

    it("reaches RunInstances in at most 5 AWS calls and logs one JSON line per decision", async () => {
        await world.handle(interruptionWarning(world.declared["Prometheus-B"]));
        const actions = emulator.proxy.calls.map((call) => call.action);
        assert.ok(actions.indexOf("RunInstances") + 1 <= 5, actions.join(", "));
        assert.deepStrictEqual(world.logs.map((line) => `${line.action}:${line.result}`), ["drain:drained", "launch:launched", "register:registered"]);
        for (const line of world.logs) {
            assert.strictEqual(line.event, "interruption-warning");
            assert.strictEqual(typeof line.ms, "number");
        }
        assert.strictEqual(world.logs[1].zone, "us-east-2b");
        assert.strictEqual(world.logs[1].market, "spot");
    });
});
