import * as assert from "assert";
import { ModelledInstance } from "../rehearsal/fleet";
import { Rehearsal, rehearse } from "../rehearsal/rehearse";

/**
 * Scenarios on AWS's modelled clock, short enough for `npm test`: the project's own archive
 * through the event path the program declares, and each baseline held to the behaviour its
 * documentation describes. The long scenarios run in `npm run bench`.
 */

function warned(rehearsal: Rehearsal): ModelledInstance[] {
    return [...rehearsal.fleet.instances.values()].filter((i) => i.warnedAt !== undefined);
}

function launchedDuring(rehearsal: Rehearsal): ModelledInstance[] {
    return [...rehearsal.fleet.instances.values()].filter((i) => !i.initial);
}

describe("a rehearsal on AWS's clock", function () {
    this.timeout(120_000);

    describe("the project's archive, delivered as the program declares, in single-warning", () => {
        let rehearsal: Rehearsal;
        before(async () => {
            rehearsal = await rehearse("single-warning", "project");
        });

        it("runs the uploaded code: its own log lines are on the timeline", () => {
            const lines = rehearsal.timeline.map((entry) => entry.text);
            assert.ok(lines.some((line) => /^project: launch i-\S+ \(us-east-2b .*\): launched, interruption warning/.test(line)), lines.join("\n"));
        });

        it("replaces the warned instance in its zone, serving within the two minutes, and ends with every zone at its count", () => {
            const [doomed] = warned(rehearsal);
            const [replacement] = launchedDuring(rehearsal);
            assert.strictEqual(launchedDuring(rehearsal).length, 1, "one replacement, no duplicate");
            assert.strictEqual(replacement.zone, doomed.zone);
            const { noticeToInServiceS, finalPerZone, duplicates } = rehearsal.figures;
            assert.ok((noticeToInServiceS.p50 as number) > 30 && (noticeToInServiceS.p50 as number) < 120, `notice to InService ${noticeToInServiceS.p50} s`);
            assert.deepStrictEqual(Object.values(finalPerZone), [1, 1, 1]);
            assert.strictEqual(duplicates, 0);
            assert.deepStrictEqual(rehearsal.figures.liveInstances, { peak: 4, ceiling: 9 }, "the fleet and the one replacement");
        });

        it("keeps the warned instance serving until its replacement is healthy, then drains it well before the interruption", () => {
            const [doomed] = warned(rehearsal);
            const [replacement] = launchedDuring(rehearsal);
            const drained = rehearsal.fleet.registrations.find((r) => r.instanceId === doomed.id)?.deregisteredAt as number;
            const healthy = rehearsal.fleet.firstHealthyAt(replacement.id) as number;
            assert.ok(drained >= healthy, `drained at t+${drained}, replacement healthy at t+${healthy}`);
            assert.ok(drained + rehearsal.model.deregistrationDelayS <= (doomed.shuttingDownAt as number), "draining ends before the interruption");
            assert.strictEqual(rehearsal.figures.servingGapS, 0);
            assert.strictEqual(rehearsal.figures.deadTargetS, 0);
        });

        it("counts the function's invocations and every AWS call the policy made", () => {
            assert.ok(rehearsal.figures.invocations >= 3, "notices, state changes, timers, schedule: batched");
            assert.strictEqual(rehearsal.figures.awsCalls, rehearsal.calls.length);
            assert.ok(rehearsal.calls.some((call) => call.action === "RunInstances" && call.status === 200));
        });
    });

    it("asg launches nothing before EC2 reports the warned instance terminated", async () => {
        const rehearsal = await rehearse("single-warning", "asg");
        const [doomed] = warned(rehearsal);
        const launched = launchedDuring(rehearsal);
        assert.strictEqual(launched.length, 1);
        assert.ok(launched[0].launchedAt >= (doomed.terminatedAt as number), `launched at t+${launched[0].launchedAt}, terminated at t+${doomed.terminatedAt}`);
        assert.strictEqual(rehearsal.figures.invocations, 0);
        assert.strictEqual(rehearsal.figures.awsCalls, 0, "an Auto Scaling group's calls are AWS's own");
    });

    it("asg-cr launches on the recommendation and retires the at-risk instance only once its replacement serves", async () => {
        const rehearsal = await rehearse("rebalance-first", "asg-cr");
        const [doomed] = warned(rehearsal);
        const [replacement] = launchedDuring(rehearsal);
        assert.ok(replacement.launchedAt - (doomed.noticedAt as number) < 5, "launched on the recommendation");
        const retired = rehearsal.fleet.registrations.find((r) => r.instanceId === doomed.id)?.deregisteredAt as number;
        assert.ok(retired >= (rehearsal.fleet.firstHealthyAt(replacement.id) as number), "drained after the replacement passed its health check");
        assert.ok(retired < (doomed.warnedAt as number), "and before the warning ever came");
        assert.strictEqual(rehearsal.figures.servingGapS, 0);
    });

    it("seed never drains: the interrupted instances stay registered, dead", async () => {
        const rehearsal = await rehearse("zone-outage-1", "seed");
        assert.deepStrictEqual(rehearsal.calls.filter((call) => call.action === "DeregisterTargets"), []);
        assert.ok(rehearsal.figures.deadTargetS > 0);
        assert.ok(rehearsal.calls.some((call) => call.action === "DescribeSpotPriceHistory"), "it looks up the spot price it bids");
    });
});
