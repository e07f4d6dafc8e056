import * as assert from "assert";
import { HandlerEvent, QueuedEvent } from "../handler/events";
import { Observation, PlannedAction } from "../handler/model";
import { countByZone } from "../handler/places";
import { drainDeadline, planBatch as planOurs } from "../handler/planner";
import { chooseZones, launchAttempts } from "../handler/pools";
import { reconcile } from "../handler/reconcile";
import { HandlerSettings } from "../handler/settings";
import { triage } from "../handler/triage";
import { observedInstance, SETTINGS } from "./support/fixtures";

/** The planner on plain data: every decision for a batch, without AWS. */

const settings = SETTINGS;
const instance = observedInstance;

const fleet = [instance("i-a", "a"), instance("i-b", "b"), instance("i-c", "c")];
const healthy = { "i-a": "healthy", "i-b": "healthy", "i-c": "healthy" } as const;
const WARNED_AT = Date.parse("2026-11-24T10:00:00Z");
const SECOND = 1000;

let sequence = 0;
function message(event: HandlerEvent): QueuedEvent {
    return { messageId: `m${++sequence}`, event };
}
const identity = (time = WARNED_AT) => ({ id: `e${++sequence}`, time: new Date(time).toISOString() });
const warning = (instanceId: string, time?: number) => message({ kind: "interruption-warning", ...identity(time), instanceId });
const recommendation = (instanceId: string) => message({ kind: "rebalance-recommendation", ...identity(), instanceId });
const stateChange = (instanceId: string, state: "running" | "shutting-down" | "terminated") => message({ kind: "state-change", ...identity(), instanceId, state });
const schedule = () => message({ kind: "schedule", ...identity() });
const drainCheck = (instanceId: string, cause: "deadline" | "replacement-healthy", replacementId?: string) => message({ kind: "drain-check", ...identity(), instanceId, cause, replacementId });

/** The event path's plan for a batch as the handler makes it: triaged against the observation first. */
function planBatch(messages: QueuedEvent[], observation: Observation, config: HandlerSettings, now: number): PlannedAction[] {
    return planOurs(triage(messages, observation).ours, observation, config, now);
}

/** Actions as one line each: `launch replace/i-b b/t3a.micro/spot…`, `timer deadline i-b 70 s`, `drain i-b`. */
function summary(actions: PlannedAction[]): string[] {
    return actions.map((a) => {
        switch (a.kind) {
            case "launch":
                return `launch ${a.key} from ${a.attempts[0].zone.slice(-1)}/${a.attempts[0].instanceType}/${a.attempts[0].market}`;
            case "timer":
                return `timer ${a.timer.cause} ${a.timer.instanceId} ${a.timer.delaySeconds} s`;
            case "promote":
                return `promote ${a.version}`;
            case "request-reconcile":
                return a.kind;
            default:
                return `${a.kind} ${a.instanceId}`;
        }
    });
}

describe("chooseZones", () => {
    it("orders zones by fewest instances, then lowest price, then name", () => {
        assert.deepStrictEqual(chooseZones({ "us-east-2a": 1, "us-east-2b": 0, "us-east-2c": 1 }, undefined), ["us-east-2b", "us-east-2a", "us-east-2c"]);
        assert.deepStrictEqual(chooseZones({ "us-east-2a": 1, "us-east-2b": 0, "us-east-2c": 1 }, { "us-east-2a": 0.02, "us-east-2c": 0.01 }), ["us-east-2b", "us-east-2c", "us-east-2a"]);
    });
});

describe("countByZone", () => {
    it("counts live instances that hold a place: not leaving, not draining, not superseded", () => {
        const observation: Observation = {
            instances: [
                ...fleet,
                instance("i-b2", "b", { launchedBy: "handler", replaces: "i-b", state: "pending" }),
                instance("i-old", "c", { state: "terminated" }),
                instance("i-drain", "a", { launchedBy: "handler" }),
            ],
            targets: { "i-drain": "draining" },
        };
        assert.deepStrictEqual(countByZone(observation, settings, new Set(["i-a"])), { "us-east-2a": 0, "us-east-2b": 1, "us-east-2c": 1 });
    });
});

describe("launchAttempts", () => {
    const pools = (attempts: ReturnType<typeof launchAttempts>) => attempts.map((a) => `${a.zone.slice(-1)}/${a.instanceType}/${a.market}`);

    it("tries every type in each zone on spot, then on-demand", () => {
        assert.deepStrictEqual(pools(launchAttempts(["us-east-2b", "us-east-2a"], settings)), [
            "b/t3.micro/spot", "b/t3a.micro/spot", "a/t3.micro/spot", "a/t3a.micro/spot",
            "b/t3.micro/on-demand", "b/t3a.micro/on-demand", "a/t3.micro/on-demand", "a/t3a.micro/on-demand",
        ]);
    });

    const cases: { name: string; preferences: Parameters<typeof launchAttempts>[2]; expected: string[] }[] = [
        { name: "an avoided pool goes last in its zone", preferences: { avoid: new Set(["us-east-2b/t3.micro/spot"]), spotOnly: true }, expected: ["b/t3a.micro/spot", "b/t3.micro/spot"] },
        { name: "an unavailable pool is not tried", preferences: { unavailable: new Set(["us-east-2b/t3.micro/spot"]), spotOnly: true }, expected: ["b/t3a.micro/spot"] },
        { name: "on-demand pools are never avoided", preferences: { avoid: new Set(["us-east-2b/t3.micro/spot"]) }, expected: ["b/t3a.micro/spot", "b/t3.micro/spot", "b/t3.micro/on-demand", "b/t3a.micro/on-demand"] },
    ];
    for (const { name, preferences, expected } of cases) {
        it(name, () => assert.deepStrictEqual(pools(launchAttempts(["us-east-2b"], settings, preferences)), expected));
    }

    it("never goes on-demand when onDemandFallback is off", () => {
        assert.ok(launchAttempts(["us-east-2a"], { ...settings, onDemandFallback: false }).every((a) => a.market === "spot"));
    });
});

describe("planBatch: a warning", () => {
    const observed: Observation = { instances: fleet, targets: healthy };

    it("launches the replacement in the warned zone, another type first, and sets the drain deadline", () => {
        const now = WARNED_AT + 2 * SECOND;
        const actions = planBatch([warning("i-b")], observed, settings, now);
        // Deadline: warning + 120 s − 30 s deregistration delay − 10 s margin = 80 s after the warning.
        assert.strictEqual(drainDeadline(WARNED_AT, settings), WARNED_AT + 80 * SECOND);
        assert.deepStrictEqual(summary(actions), ["timer deadline i-b 78 s", "launch replace/i-b from b/t3a.micro/spot"]);
        const launch = actions[1];
        assert.ok(launch.kind === "launch" && launch.replaces === "i-b" && launch.noticedAt === WARNED_AT);
    });

    const drainsAtOnce: { name: string; batch: () => QueuedEvent[]; observation: Observation; config?: Partial<HandlerSettings> }[] = [
        { name: "drainWhen: warning", batch: () => [warning("i-b")], observation: observed, config: { drainWhen: "warning" } },
        { name: "a warning that arrives after its deadline", batch: () => [warning("i-b", WARNED_AT - 100 * SECOND)], observation: observed },
        {
            name: "a warning whose replacement (from an earlier recommendation) already serves",
            batch: () => [warning("i-b")],
            observation: { instances: [...fleet, instance("i-b2", "b", { launchedBy: "handler", replaces: "i-b" })], targets: { ...healthy, "i-b2": "healthy" } },
        },
    ];
    for (const { name, batch, observation, config } of drainsAtOnce) {
        it(`drains at once for ${name}`, () => {
            const actions = planBatch(batch(), observation, { ...settings, ...config }, WARNED_AT);
            assert.ok(summary(actions).includes("drain i-b"), summary(actions).join("; "));
            assert.ok(!actions.some((a) => a.kind === "timer"));
        });
    }

    it("answers a warning and its recommendation with one launch that both messages wait on", () => {
        const batch = [warning("i-b"), recommendation("i-b")];
        const launches = planBatch(batch, observed, settings, WARNED_AT).filter((a) => a.kind === "launch");
        assert.strictEqual(launches.length, 1);
        assert.deepStrictEqual(launches[0].messageIds, batch.map((m) => m.messageId));
    });

    it("skips a pool warned twice in one batch, for every launch of the batch", () => {
        const two = { ...settings, instancesPerZone: 2 };
        const instances = [instance("i-a", "a"), instance("i-a2", "a"), instance("i-b", "b"), instance("i-b2", "b"), instance("i-c", "c"), instance("i-c2", "c")];
        const launches = planBatch([warning("i-b"), warning("i-b2")], { instances, targets: {} }, two, WARNED_AT).filter((a) => a.kind === "launch");
        assert.strictEqual(launches.length, 2);
        for (const launch of launches) {
            assert.ok(launch.kind === "launch" && !launch.attempts.some((a) => a.zone === "us-east-2b" && a.instanceType === "t3.micro" && a.market === "spot"));
        }
    });

    it("only sets the deadline for a warned instance that already has a replacement", () => {
        const instances = [...fleet, instance("i-b2", "b", { launchedBy: "handler", replaces: "i-b", state: "pending" })];
        assert.deepStrictEqual(summary(planBatch([warning("i-b")], { instances, targets: healthy }, settings, WARNED_AT)), ["timer deadline i-b 80 s"]);
    });

    it("does nothing for an instance it does not own", () => {
        assert.deepStrictEqual(planBatch([warning("i-0stranger")], observed, settings, WARNED_AT), []);
    });
});

describe("planBatch: state changes and drain checks", () => {
    const replacement = instance("i-b2", "b", { launchedBy: "handler", replaces: "i-b", noticedAt: WARNED_AT, launchTime: WARNED_AT + SECOND });

    it("registers a running replacement, and checks its predecessor once it can be healthy", () => {
        const actions = planBatch([stateChange("i-b2", "running")], { instances: [...fleet, replacement], targets: healthy }, settings, WARNED_AT);
        assert.deepStrictEqual(summary(actions), ["register i-b2", "timer replacement-healthy i-b 10 s"]);
        assert.deepStrictEqual(actions[0].kind === "register" && actions[0].clock, { kind: "notice", since: WARNED_AT });
    });

    it("does not register an instance twice", () => {
        assert.deepStrictEqual(planBatch([stateChange("i-c", "running")], { instances: fleet, targets: healthy }, settings, WARNED_AT), []);
    });

    const checks: { name: string; check: () => QueuedEvent; targets: Observation["targets"]; expected: string[] }[] = [
        { name: "drains at the deadline", check: () => drainCheck("i-b", "deadline"), targets: healthy, expected: ["drain i-b"] },
        { name: "drains once the replacement is healthy", check: () => drainCheck("i-b", "replacement-healthy", "i-b2"), targets: { ...healthy, "i-b2": "healthy" }, expected: ["drain i-b"] },
        { name: "looks again a health check later while the replacement is initial", check: () => drainCheck("i-b", "replacement-healthy", "i-b2"), targets: { ...healthy, "i-b2": "initial" }, expected: ["timer replacement-healthy i-b 5 s"] },
        { name: "does nothing for an instance already draining", check: () => drainCheck("i-b", "deadline"), targets: { ...healthy, "i-b": "draining" }, expected: [] },
    ];
    for (const { name, check, targets, expected } of checks) {
        it(name, () => assert.deepStrictEqual(summary(planBatch([check()], { instances: [...fleet, replacement], targets }, settings, WARNED_AT)), expected));
    }

    it("drains a stopped instance and refills its place under its own key", () => {
        const instances = [instance("i-a", "a"), instance("i-b", "b", { state: "shutting-down" }), instance("i-c", "c")];
        assert.deepStrictEqual(summary(planBatch([stateChange("i-b", "shutting-down")], { instances, targets: healthy }, settings, WARNED_AT)), [
            "drain i-b",
            "launch replace/i-b from b/t3.micro/spot",
        ]);
    });

    it("plans one launch for a place whether a warning or the schedule finds it first", () => {
        const warned = planBatch([warning("i-b")], { instances: fleet, targets: healthy }, settings, WARNED_AT).filter((a) => a.kind === "launch");
        const lost = [instance("i-a", "a"), instance("i-b", "b", { state: "terminated" }), instance("i-c", "c")];
        const scheduled = planBatch([schedule()], { instances: lost, targets: {} }, settings, WARNED_AT).filter((a) => a.kind === "launch");
        assert.deepStrictEqual([warned, scheduled].map((actions) => actions.map((a) => a.kind === "launch" && a.key)), [["replace/i-b"], ["replace/i-b"]]);
    });

    it("counts the batch's own replacements when it also reconciles", () => {
        const actions = planBatch([warning("i-b"), schedule()], { instances: fleet, targets: healthy }, settings, WARNED_AT);
        assert.deepStrictEqual(actions.filter((a) => a.kind === "launch").map((a) => a.kind === "launch" && a.key), ["replace/i-b"]);
    });
});

describe("reconcile", () => {
    it("launches into every zone below its count before swapping or trimming", () => {
        const instances = [instance("i-a", "a"), instance("i-od", "b", { launchedBy: "handler", market: "on-demand" }), instance("i-x", "b", { launchedBy: "handler" })];
        const actions = reconcile({ instances, targets: { "i-a": "healthy", "i-od": "healthy", "i-x": "healthy" } }, settings);
        assert.deepStrictEqual(actions.map((a) => a.kind === "launch" ? `launch ${a.attempts[0].zone}` : a.kind), ["launch us-east-2c"]);
    });

    it("trims an on-demand extra first, then the newest, whoever launched it", () => {
        const instances = [...fleet, instance("i-od", "b", { launchedBy: "handler", market: "on-demand", launchTime: 1 }), instance("i-c2", "c", { launchTime: 2 })];
        const actions = reconcile({ instances, targets: { ...healthy, "i-od": "healthy", "i-c2": "healthy" } }, settings);
        assert.deepStrictEqual(actions.map((a) => `${a.kind} ${"instanceId" in a ? a.instanceId : ""}`), ["drain i-od", "terminate i-od", "drain i-c2", "terminate i-c2"]);
    });

    it("during a zone outage tries only the empty zone, never growing the fleet elsewhere", () => {
        const perZone = { ...settings, instancesPerZone: 2 };
        const instances = [
            instance("i-a1", "a"), instance("i-a2", "a"), instance("i-a3", "a", { launchedBy: "handler" }),
            instance("i-c1", "c"), instance("i-c2", "c"), instance("i-c3", "c", { launchedBy: "handler" }),
        ];
        const targets = Object.fromEntries(instances.map((i) => [i.id, "healthy" as const]));
        const actions = reconcile({ instances, targets }, perZone);
        assert.deepStrictEqual(actions.map((a) => a.kind === "launch" ? `${a.bestEffort ? "try" : "launch"} ${[...new Set(a.attempts.map((t) => t.zone))].join("+")} for ${a.replaces}` : a.kind), [
            "try us-east-2b for i-a3", "try us-east-2b for i-c3",
        ], "each takes over the place of an extra elsewhere, which is retired once it serves");
    });

    it("keeps a warned instance superseded while its replacement's own replacement runs, though the first replacement is gone", () => {
        const instances = [
            instance("i-a", "a"), instance("i-c", "c"),
            instance("i-b", "b"),
            instance("i-fallback", "a", { launchedBy: "handler", replaces: "i-b", state: "terminated" }),
            instance("i-back", "b", { launchedBy: "handler", replaces: "i-fallback", market: "on-demand" }),
        ];
        assert.deepStrictEqual(countByZone({ instances, targets: {} }, settings, new Set()), { "us-east-2a": 1, "us-east-2b": 1, "us-east-2c": 1 });
        assert.ok(!reconcile({ instances, targets: { "i-a": "healthy", "i-c": "healthy", "i-b": "healthy", "i-back": "healthy" } }, settings).some((a) => a.kind === "terminate" && a.instanceId === "i-back"));
    });
});
