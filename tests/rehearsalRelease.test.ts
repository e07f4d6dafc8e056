import * as assert from "assert";
import { VirtualClock } from "../rehearsal/clock";
import { releaseFigures } from "../rehearsal/figures";
import { ModelledFleet, ModelledInstance } from "../rehearsal/fleet";
import { DEFAULT_MODEL } from "../rehearsal/model";
import { Rehearsal, rehearse } from "../rehearsal/rehearse";
import { Scenario, SCENARIOS } from "../rehearsal/scenarios";

/**
 * The release scenario on AWS's modelled clock, on a small fleet (3 zones × 5: enough that the
 * new instances do not all serve before the deploy's second round) so `npm test` stays quick: the rolled fleet keeps every zone at its count at every modelled step, and ends
 * wholly on the new launch template version. The 30-instance release runs in `npm run bench`.
 */

const SMALL_RELEASE: Scenario = { ...SCENARIOS.release, instancesPerZone: 5, horizonS: 10 * 60 };
const PLACES = SMALL_RELEASE.zones.length * SMALL_RELEASE.instancesPerZone;

function instances(rehearsal: Rehearsal): ModelledInstance[] {
    return [...rehearsal.fleet.instances.values()];
}

/** The version the release rolled out: the one the initial fleet does not run. */
function releasedVersion(rehearsal: Rehearsal): number {
    return Math.max(...instances(rehearsal).map((i) => i.version));
}

function assertNoZoneBelowCount(rehearsal: Rehearsal): void {
    const short = rehearsal.serving.filter((point) => point.serving < rehearsal.scenario.instancesPerZone);
    assert.deepStrictEqual(short, [], "a zone below its count of serving targets");
    assert.strictEqual(rehearsal.figures.servingGapS, 0);
    assert.strictEqual(rehearsal.figures.deadTargetS, 0);
}

function assertEveryPlaceOnTheNewVersion(rehearsal: Rehearsal): void {
    const version = releasedVersion(rehearsal);
    const end = rehearsal.scenario.horizonS;
    const live = instances(rehearsal).filter((i) => ["pending", "running"].includes(rehearsal.fleet.stateAt(i.id, end) as string));
    assert.ok(version > 1, "the release launched the new version");
    assert.deepStrictEqual(live.filter((i) => i.version !== version).map((i) => i.id), [], "instances left on an older version");
    assert.deepStrictEqual(Object.values(rehearsal.figures.finalPerZone), SMALL_RELEASE.zones.map(() => SMALL_RELEASE.instancesPerZone));
    assert.ok(instances(rehearsal).filter((i) => i.initial).every((i) => rehearsal.fleet.stateAt(i.id, end) === "terminated"), "every old instance is gone");
    assert.notStrictEqual(rehearsal.figures.release?.durationS, null);
}

describe("a release's figures", () => {
    /** One zone of one place: the old instance, and its new-version replacement launched at t+10 (running at 28, healthy at 50); the old one drained from `retireAt`. */
    function rolled(retireAt?: number, terminateAfterS = 30) {
        const clock = new VirtualClock(0);
        const fleet = new ModelledFleet(clock, { ...DEFAULT_MODEL, pendingSigma: 0, bootSigma: 0, healthCheckIntervalS: 5, healthyThreshold: 2, deregistrationDelayS: 30 });
        const pool = { zone: "us-east-2a", instanceType: "t3.micro", market: "spot" as const };
        fleet.adopt("i-old", pool, 1);
        clock.now = 10;
        fleet.launch("i-new", pool, 2);
        clock.now = 28;
        fleet.register("i-new");
        if (retireAt !== undefined) {
            clock.now = retireAt;
            fleet.deregister("i-old");
            clock.now = retireAt + terminateAfterS;
            fleet.terminate("i-old");
        }
        return releaseFigures({ fleet, zones: [pool.zone], instancesPerZone: 1, horizonS: 200, invocations: 0, awsCalls: 0, release: { atS: 10, version: 2 } });
    }

    it("lasts until the old instance has terminated, and counts the overlap of running instances as its cost", () => {
        // Drained from 50, shutting down at 80, terminated at 110; both ran from 28 to 80.
        assert.deepStrictEqual(rolled(50), { durationS: 100, launches: 1, instanceSecondsBeyondCount: 52, drainCutS: 0 });
    });

    it("counts the draining an early termination cut off", () => {
        assert.strictEqual(rolled(50, 10).drainCutS, 20);
    });

    it("never ends while an old instance is left", () => {
        assert.strictEqual(rolled().durationS, null);
    });
});

describe("a release on AWS's clock", function () {
    this.timeout(120_000);

    describe("an Auto Scaling group's instance refresh at minimum healthy 100 %", () => {
        let rehearsal: Rehearsal;
        before(async () => {
            rehearsal = await rehearse(SMALL_RELEASE, "asg");
        });

        it("never leaves a zone below its count, and ends with every place on the new version", () => {
            assertNoZoneBelowCount(rehearsal);
            assertEveryPlaceOnTheNewVersion(rehearsal);
        });

        it("launches the whole batch first and retires an old instance only once the batch is healthy and warmed up", () => {
            const fresh = instances(rehearsal).filter((i) => !i.initial);
            const ready = Math.max(...fresh.map((i) => Math.max(rehearsal.fleet.firstHealthyAt(i.id) as number, i.runningAt + rehearsal.model.asgInstanceWarmupS)));
            const retired = rehearsal.fleet.registrations.filter((r) => r.deregisteredAt !== undefined).map((r) => r.deregisteredAt as number);
            assert.strictEqual(fresh.length, PLACES, "one launch per place: maximum healthy 200 % makes one batch");
            assert.ok(retired.length === PLACES && retired.every((at) => at >= ready), `retired at ${retired.join(", ")}; the batch was ready at t+${ready.toFixed(1)}`);
        });

        it("pays for the surge: instances above the count while old and new overlap", () => {
            const figures = rehearsal.figures.release;
            assert.strictEqual(figures?.launches, PLACES);
            assert.ok((figures?.instanceSecondsBeyondCount as number) > 0);
            assert.strictEqual(figures?.drainCutS, 0, "the group terminates only after the deregistration delay");
        });
    });

    describe("the project's deploy archive, invoked as the provider invokes it on the update", () => {
        let rehearsal: Rehearsal;
        before(async () => {
            rehearsal = await rehearse(SMALL_RELEASE, "project");
        });

        it("answers, having promoted the new version to the template's default", () => {
            assert.strictEqual(rehearsal.deploy?.ok, true, rehearsal.deploy?.detail);
            const promoted = rehearsal.calls.filter((call) => call.action === "ModifyLaunchTemplate" && call.status === 200);
            // DefaultVersion travels as SetDefaultVersion on EC2's query protocol.
            assert.deepStrictEqual(promoted.map((call) => call.params.SetDefaultVersion), [String(releasedVersion(rehearsal))]);
        });

        it("never leaves a zone below its count, and ends with every place on the new version", () => {
            assertNoZoneBelowCount(rehearsal);
            assertEveryPlaceOnTheNewVersion(rehearsal);
        });

        it("launches one new instance per place", () => {
            assert.strictEqual(rehearsal.figures.release?.launches, PLACES);
            assert.strictEqual(rehearsal.figures.duplicates, 0);
        });

        it("lets every old instance drain for the whole deregistration delay before terminating it", () => {
            assert.strictEqual(rehearsal.figures.release?.drainCutS, 0);
        });
    });
});
