import * as assert from "assert";
import { instanceCeiling, withinCeiling } from "../handler/ceiling";
import { Action, Observation, ObservedInstance, PlannedAction, TargetState } from "../handler/model";
import { planBatch } from "../handler/planner";
import { reconcile, standalone } from "../handler/reconcile";
import { triage } from "../handler/triage";
import { reportFleet } from "../handler/report";
import { freshWorld, interruptionWarning } from "../rehearsal/world";
import { observedInstance, SCHEDULE_MESSAGE, SETTINGS } from "./support/fixtures";

/**
 * No instance runs forever, and the stack never runs more than a ceiling. A superseded instance
 * retires once the live head of its replacement chain serves, whatever happened to the
 * replacements between: one regression test per chain shape the security review found (an instance
 * outliving its replacement's interruption), each through the schedule's batch as the event path
 * runs it and through the deploy's reconcile. Above the ceiling nothing launches, and it says so.
 */

/** Zones b and c at their count, healthy and released, so only zone a is in play. */
const rest = (version?: number) => [observedInstance("i-b", "b", { version }), observedInstance("i-c", "c", { version })];

function fleet(zoneA: ObservedInstance[], targets: Record<string, TargetState>, releasedVersion?: number): Observation {
    return {
        instances: [...zoneA, ...rest(releasedVersion)],
        targets: { "i-b": "healthy", "i-c": "healthy", ...targets },
        ...(releasedVersion === undefined ? {} : { releasedVersion }),
    };
}

const onSchedule = (observation: Observation) => planBatch(triage([SCHEDULE_MESSAGE], observation).ours, observation, SETTINGS, 0);
const retired = (actions: Action[]) => actions.filter((a) => a.kind === "terminate").map((a) => (a as { instanceId: string }).instanceId);
const launched = (actions: Action[]) => actions.filter((a) => a.kind === "launch");

interface ChainShape {
    shape: string;
    /** Zone a: the instance that must retire, the interrupted middle of its chain, and the live head. */
    chain: ObservedInstance[];
    releasedVersion?: number;
}

const CHAINS: ChainShape[] = [
    {
        shape: "a rebalance recommendation, then the replacement's own interruption",
        chain: [
            observedInstance("i-old", "a", { launchTime: 1 }),
            observedInstance("i-rebalanced", "a", { replaces: "i-old", launchedBy: "handler", state: "terminated", launchTime: 2 }),
            observedInstance("i-head", "a", { replaces: "i-rebalanced", launchedBy: "handler", noticedAt: 3, launchTime: 3 }),
        ],
    },
    {
        shape: "an on-demand fallback whose swap back to spot was interrupted",
        chain: [
            observedInstance("i-old", "a", { market: "on-demand", launchedBy: "handler", launchTime: 1 }),
            observedInstance("i-swap", "a", { replaces: "i-old", launchedBy: "handler", state: "terminated", launchTime: 2 }),
            observedInstance("i-head", "a", { replaces: "i-swap", launchedBy: "handler", launchTime: 3 }),
        ],
    },
    {
        shape: "a release's new instance interrupted, its replacement launched from the released version",
        releasedVersion: 2,
        chain: [
            observedInstance("i-old", "a", { version: 1, launchTime: 1 }),
            observedInstance("i-new", "a", { replaces: "i-old", version: 2, state: "terminated", launchTime: 2 }),
            observedInstance("i-head", "a", { replaces: "i-new", version: 2, launchedBy: "handler", launchTime: 3 }),
        ],
    },
    {
        shape: "a fallback's swap interrupted during a release",
        releasedVersion: 2,
        chain: [
            observedInstance("i-old", "a", { version: 2, market: "on-demand", launchedBy: "handler", launchTime: 1 }),
            observedInstance("i-swap", "a", { replaces: "i-old", version: 2, state: "terminated", launchTime: 2 }),
            observedInstance("i-head", "a", { replaces: "i-swap", version: 2, launchedBy: "handler", launchTime: 3 }),
        ],
    },
];

describe("a replacement chain whose middle was interrupted", () => {
    for (const { shape, chain, releasedVersion } of CHAINS) {
        describe(shape, () => {
            it("retires the first instance once the head serves, on the schedule and in the deploy, and launches nothing", () => {
                const observation = fleet(chain, { "i-old": "healthy", "i-head": "healthy" }, releasedVersion);
                for (const actions of [onSchedule(observation), reconcile(observation, SETTINGS, standalone(releasedVersion))]) {
                    assert.deepStrictEqual(retired(actions), ["i-old"]);
                    assert.deepStrictEqual(launched(actions), []);
                }
            });

            it("keeps the first instance serving while the head has not passed its health check", () => {
                const observation = fleet(chain, { "i-old": "healthy", "i-head": "initial" }, releasedVersion);
                assert.deepStrictEqual(retired(onSchedule(observation)), []);
            });
        });
    }
});

describe("the ceiling", () => {
    const launch = (key: string): PlannedAction => ({ kind: "launch", key, attempts: [], reason: "test", messageIds: [] });
    const drain: PlannedAction = { kind: "drain", instanceId: "i-x", reason: "test", messageIds: [] };
    const running = (count: number): Observation => ({
        instances: Array.from({ length: count }, (_, n) => observedInstance(`i-${n}`, "abc"[n % 3])),
        targets: {},
    });

    it("is twice the fleet and one per zone: 9 for three zones of one", () => {
        assert.strictEqual(instanceCeiling(SETTINGS), 9);
        assert.strictEqual(instanceCeiling({ ...SETTINGS, instancesPerZone: 10 }), 63);
    });

    for (const [live, allowed] of [[3, 2], [8, 1], [9, 0], [12, 0]] as const) {
        it(`lets ${allowed} of two launches through with ${live} instances live, and every other action`, () => {
            const plan = withinCeiling([launch("first"), drain, launch("second")], running(live), SETTINGS);
            const expected = ["first", "drain", "second"].filter((name) => name === "drain" || ["first", "second"].indexOf(name) < allowed);
            assert.deepStrictEqual(plan.actions.map((a) => (a.kind === "launch" ? a.key : a.kind)), expected);
            assert.deepStrictEqual(plan.refused.map((a) => (a as { key: string }).key), ["first", "second"].slice(allowed));
        });
    }

    it("holds back a warning's replacement when leaks already fill it, logs why, counts it for the alarm, and does not fail the message", async () => {
        const { emulator, world } = await freshWorld();
        for (const zone of ["us-east-2a", "us-east-2b", "us-east-2c", "us-east-2a", "us-east-2b", "us-east-2c"]) {
            await world.launchOwned(zone, "handler");
        }
        emulator.proxy.reset();
        assert.deepStrictEqual(await world.handle(interruptionWarning(world.declared["Prometheus-B"])), { batchItemFailures: [] });
        assert.deepStrictEqual(emulator.proxy.callsTo("RunInstances"), []);
        const refused = world.logs.find((line) => line.result === "refused");
        assert.strictEqual(refused?.why, "the stack runs 9 instances, its ceiling is 9");
        assert.strictEqual(world.metrics.find((m) => "LaunchesRefused" in m)?.LaunchesRefused, 1);
    });
});

describe("InstancesInZone", () => {
    it("counts every live instance in the zone, a superseded one still running included, so a leak shows as a zone above its count", () => {
        const observation = fleet([
            observedInstance("i-old", "a"),
            observedInstance("i-replacement", "a", { replaces: "i-old", launchedBy: "handler", launchTime: 5 }),
            observedInstance("i-gone", "a", { state: "terminated" }),
        ], { "i-old": "healthy", "i-replacement": "initial" });
        const points: Record<string, unknown>[] = [];
        reportFleet(observation, SETTINGS, { log: () => undefined, metric: (values, dimensions) => points.push({ ...values, ...dimensions }) });
        assert.deepStrictEqual(Object.fromEntries(points.map((p) => [p.Zone, p.InstancesInZone])), { "us-east-2a": 2, "us-east-2b": 1, "us-east-2c": 1 });
    });
});
