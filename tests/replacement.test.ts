import * as assert from "assert";
import { TAG } from "../handler/tags";
import { Emulator } from "../rehearsal/emulator";
import { freshWorld, interruptionWarning, rebalanceRecommendation, sentMessages, stateChange, tag, World } from "../rehearsal/world";

const handlerLaunched = async (world: World) => (await world.instances()).filter((i) => tag(i, TAG.launchedBy) === "handler");

/** The interruption warning, against moto: the replacement, its idempotency, its zone, and the deferred drain. */

describe("an interruption warning for zone B's instance", () => {
    let emulator: Emulator;
    let world: World;
    beforeEach(async () => {
        ({ emulator, world } = await freshWorld());
    });

    it("launches exactly one replacement in zone B, tagged, spot, from the template, and returns without waiting", async () => {
        const doomed = world.declared["Prometheus-B"];
        const response = await world.handle(interruptionWarning(doomed));
        assert.deepStrictEqual(response, { batchItemFailures: [] });

        const calls = emulator.proxy.calls.map((call) => call.action);
        assert.strictEqual(calls.filter((a) => a === "RunInstances").length, 1);
        assert.ok(!calls.includes("RequestSpotInstances"));
        assert.ok(!calls.includes("CreateTags"), "tags go in TagSpecifications");
        assert.ok(!calls.includes("RegisterTargets") && !calls.includes("DescribeInstanceStatus"), `no waiting for the instance: ${calls.join(", ")}`);
        assert.ok(!calls.includes("DeregisterTargets"), "the warned instance keeps serving until its replacement is healthy");

        const [replacement, ...others] = await handlerLaunched(world);
        assert.strictEqual(others.length, 0);
        assert.strictEqual(replacement.Placement?.AvailabilityZone, "us-east-2b");
        assert.strictEqual(tag(replacement, "Name"), "Prometheus-B");
        assert.strictEqual(tag(replacement, TAG.stack), "spot-availability/test");
        assert.strictEqual(tag(replacement, TAG.zone), "us-east-2b");
        assert.strictEqual(tag(replacement, TAG.replaces), doomed);
        assert.ok(!Number.isNaN(Date.parse(tag(replacement, TAG.noticedAt) ?? "")), "the notice's time, for NoticeToRegisteredMs");
        assert.strictEqual(replacement.InstanceLifecycle, "spot");
        // The warned pool (t3.micro in B) goes last: another type of the zone first.
        assert.strictEqual(replacement.InstanceType, "t3a.micro");
        assert.strictEqual(tag(replacement, "aws:ec2launchtemplate:id"), world.settings.launchTemplateId);
        assert.strictEqual(replacement.SubnetId, world.settings.subnetsByZone["us-east-2b"]);
        const [run] = emulator.proxy.callsTo("RunInstances");
        assert.match(run.params.ClientToken, /^[0-9a-f]{64}$/);
        assert.strictEqual(run.params["InstanceMarketOptions.MarketType"], "spot");
        assert.strictEqual(run.params["InstanceMarketOptions.SpotOptions.MaxPrice"], undefined);
    });

    it("sets the drain deadline as a delayed message on its own queue", async () => {
        const doomed = world.declared["Prometheus-B"];
        await world.handle(interruptionWarning(doomed));
        const [timer, ...more] = sentMessages(emulator.proxy);
        assert.strictEqual(more.length, 0);
        assert.strictEqual(emulator.proxy.callsTo("SendMessageBatch")[0].params.QueueUrl, world.settings.queueUrl);
        // Warning + 120 s − 30 s deregistration delay − 10 s margin, less the moment the handler took.
        assert.ok(timer.delaySeconds > 75 && timer.delaySeconds <= 80, `delay ${timer.delaySeconds} s`);
        assert.deepStrictEqual({ source: timer.body.source, type: timer.body["detail-type"], detail: timer.body.detail }, {
            source: "spot-availability",
            type: "Drain Check",
            detail: { "instance-id": doomed, cause: "deadline" },
        });
    });

    it("registers the replacement on its running event, and drains the warned instance once the replacement is healthy", async () => {
        const doomed = world.declared["Prometheus-B"];
        await world.handle(interruptionWarning(doomed));
        const [replacement] = await handlerLaunched(world);
        const replacementId = replacement.InstanceId as string;

        await world.handle(stateChange(replacementId, "running"));
        assert.ok(replacementId in (await world.registeredTargets()), "registered by the running event");
        const check = sentMessages(emulator.proxy).at(-1) as { delaySeconds: number; body: Record<string, any> };
        assert.deepStrictEqual(check.body.detail, { "instance-id": doomed, cause: "replacement-healthy", "replacement-id": replacementId });
        assert.strictEqual(check.delaySeconds, 10, "two passing checks, 5 s apart: the earliest it can be healthy");

        emulator.proxy.targetHealth = { [replacementId]: "initial" };
        await world.handle(check.body);
        assert.ok(doomed in (await world.registeredTargets()), "still serving while the replacement is initial");
        const again = sentMessages(emulator.proxy).at(-1) as { delaySeconds: number; body: Record<string, any> };
        assert.deepStrictEqual([again.delaySeconds, again.body.detail.cause], [5, "replacement-healthy"]);

        emulator.proxy.targetHealth = { [replacementId]: "healthy" };
        await world.handle(again.body);
        assert.ok(!(doomed in (await world.registeredTargets())), "drained once the replacement is healthy");
    });

    it("drains the warned instance at the deadline when the replacement is not healthy by then", async () => {
        const doomed = world.declared["Prometheus-B"];
        await world.handle(interruptionWarning(doomed));
        const [deadline] = sentMessages(emulator.proxy);
        await world.handle(deadline.body);
        assert.ok(!(doomed in (await world.registeredTargets())));
        assert.strictEqual(world.logs.find((line) => line.action === "drain")?.reason, "the drain deadline");
    });

    it("drains at once with drainWhen: warning", async () => {
        const doomed = world.declared["Prometheus-B"];
        await world.reconfigured({ drainWhen: "warning" })(interruptionWarning(doomed));
        assert.ok(!(doomed in (await world.registeredTargets())));
        assert.deepStrictEqual(sentMessages(emulator.proxy), []);
    });

    it("launches one replacement when the same warning arrives three times in sequence", async () => {
        const warning = interruptionWarning(world.declared["Prometheus-B"]);
        for (let delivery = 0; delivery < 3; delivery++) {
            await world.handle(warning);
        }
        assert.strictEqual((await handlerLaunched(world)).length, 1);
        assert.strictEqual(emulator.proxy.callsTo("RunInstances").length, 1, "later deliveries see the replacement and launch nothing");
    });

    it("launches one replacement when the warning and the recommendation reach two batches at once", async () => {
        const doomed = world.declared["Prometheus-B"];
        await Promise.all([world.handle(interruptionWarning(doomed)), world.handle(rebalanceRecommendation(doomed)), world.handle(interruptionWarning(doomed))]);
        // Each batch observed no replacement and asked; the place's ClientToken made AWS launch once.
        const runs = emulator.proxy.callsTo("RunInstances");
        assert.strictEqual(runs.length, 3);
        assert.strictEqual(new Set(runs.map((run) => run.params.ClientToken)).size, 1);
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
        assert.strictEqual(world.logs.find((line) => line.action === "launch")?.price, 0.0032);
    });

    it("gives the same tie to zone A when A is the cheaper, and asks itself to reconcile zone B at once", async () => {
        emulator.proxy.capacityFaults = [{ zone: "us-east-2b", code: "InsufficientInstanceCapacity" }];
        emulator.proxy.spotPrices = { "us-east-2a": 0.0031, "us-east-2b": 0.001, "us-east-2c": 0.0052 };
        await world.handle(interruptionWarning(world.declared["Prometheus-B"]));
        const [replacement] = await handlerLaunched(world);
        assert.strictEqual(replacement.Placement?.AvailabilityZone, "us-east-2a");
        assert.ok(sentMessages(emulator.proxy).some((m) => m.body["detail-type"] === "Reconcile Request" && m.delaySeconds === 0));
    });

    it("reaches RunInstances in at most 5 AWS calls and logs one JSON line per decision", async () => {
        await world.handle(interruptionWarning(world.declared["Prometheus-B"]));
        const actions = emulator.proxy.calls.map((call) => call.action);
        assert.ok(actions.indexOf("RunInstances") + 1 <= 5, actions.join(", "));
        assert.deepStrictEqual(world.logs.map((line) => `${line.action}:${line.result}`).sort(), ["launch:launched", "timer:set"]);
        for (const line of world.logs) {
            assert.strictEqual(typeof line.ms, "number");
        }
        const launch = world.logs.find((line) => line.action === "launch");
        assert.deepStrictEqual([launch?.zone, launch?.market, launch?.reason], ["us-east-2b", "spot", "interruption warning"]);
    });
});
