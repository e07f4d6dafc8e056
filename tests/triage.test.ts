import * as assert from "assert";
import { HandlerEvent } from "../handler/events";
import { Observation } from "../handler/model";
import { isScheduled, mayLaunch, triage } from "../handler/triage";
import { observedInstance } from "./support/fixtures";

/** The event path decides once per message whether it is ignored, foreign or ours, and whether the batch may launch. */

const identity = { id: "e1", time: "2026-12-02T10:00:00Z" };
const observation: Observation = { instances: [observedInstance("i-0000000000000000a", "a")], targets: {} };
const message = (event: HandlerEvent, messageId = "m1") => ({ messageId, event });

describe("triage", () => {
    const cases: [string, HandlerEvent, "ignored" | "foreign" | "ours"][] = [
        ["a malformed message", { kind: "ignored", reason: "message body is not JSON" }, "ignored"],
        ["a warning for another stack's instance", { kind: "interruption-warning", ...identity, instanceId: "i-0000000000000000f" }, "foreign"],
        ["a state change of another stack's instance", { kind: "state-change", ...identity, instanceId: "i-0000000000000000f", state: "running" }, "foreign"],
        ["a warning for ours", { kind: "interruption-warning", ...identity, instanceId: "i-0000000000000000a" }, "ours"],
        ["a drain check for ours", { kind: "drain-check", ...identity, instanceId: "i-0000000000000000a", cause: "deadline" }, "ours"],
        ["the schedule", { kind: "schedule", ...identity }, "ours"],
        ["a reconcile request", { kind: "reconcile-request", ...identity }, "ours"],
    ];
    for (const [name, event, verdict] of cases) {
        it(`calls ${name} ${verdict}`, () => {
            const triaged = triage([message(event)], observation);
            assert.deepStrictEqual([triaged.ignored.length, triaged.foreign.length, triaged.ours.length], [verdict === "ignored", verdict === "foreign", verdict === "ours"].map(Number));
        });
    }

    it("hands the planner each of ours with the instance as observed", () => {
        const [ours] = triage([message({ kind: "interruption-warning", ...identity, instanceId: "i-0000000000000000a" })], observation).ours;
        assert.strictEqual(ours.instance, observation.instances[0]);
    });

    const launching: [string, HandlerEvent, boolean][] = [
        ["a warning", { kind: "interruption-warning", ...identity, instanceId: "i-0000000000000000a" }, true],
        ["a terminated state change", { kind: "state-change", ...identity, instanceId: "i-0000000000000000a", state: "terminated" }, true],
        ["a running state change", { kind: "state-change", ...identity, instanceId: "i-0000000000000000a", state: "running" }, false],
        ["a drain check", { kind: "drain-check", ...identity, instanceId: "i-0000000000000000a", cause: "deadline" }, false],
        ["an ignored message", { kind: "ignored", reason: "x" }, false],
    ];
    for (const [name, event, launches] of launching) {
        it(`${launches ? "reads prices for" : "reads no prices for"} ${name}`, () => assert.strictEqual(mayLaunch([message(event)]), launches));
    }

    it("reports the fleet per zone and reads the released version only for the schedule", () => {
        assert.strictEqual(isScheduled([message({ kind: "schedule", ...identity })]), true);
        assert.strictEqual(isScheduled([message({ kind: "reconcile-request", ...identity })]), false);
    });
});
