import * as assert from "assert";
import { outdated, stalledRelease, summarize } from "../handler/deploy";
import { Action, Observation, ObservedInstance, TargetState } from "../handler/model";
import { planBatch } from "../handler/planner";
import { reconcile, releaseBatch, standalone } from "../handler/reconcile";
import { triage } from "../handler/triage";
import { observedInstance, SCHEDULE_MESSAGE, SETTINGS } from "./support/fixtures";

/**
 * A release on plain data: a new launch template version rolls each zone as an Auto Scaling
 * group's instance refresh at minimum healthy 100 % does — new instances first, a batch at a time,
 * the old ones retired only once their replacements serve — and a version that never serves stops.
 */

const V1 = 1;
const V2 = 2;
const three = { ...SETTINGS, instancesPerZone: 3 };
const onVersion = (version: number, extra: Partial<ObservedInstance> = {}) => (id: string, zone: string) => observedInstance(id, zone, { version, ...extra });

/** Zone a of three instances on version 1, all healthy. */
function zoneA(): { instances: ObservedInstance[]; targets: Record<string, TargetState> } {
    const instances = ["i-a1", "i-a2", "i-a3"].map((id, n) => onVersion(V1, { launchTime: n })(id, "a"));
    return { instances, targets: Object.fromEntries(instances.map((i) => [i.id, "healthy" as const])) };
}

/** The other zones at their count on version 2, so only zone a is in play. */
function restOn(version: number, count: number): ObservedInstance[] {
    return ["b", "c"].flatMap((zone) => Array.from({ length: count }, (_, n) => onVersion(version)(`i-${zone}${n + 1}`, zone)));
}

function healthyAll(instances: ObservedInstance[]): Record<string, TargetState> {
    return Object.fromEntries(instances.map((i) => [i.id, "healthy" as const]));
}

const launches = (actions: Action[]) => actions.filter((a): a is Extract<Action, { kind: "launch" }> => a.kind === "launch");
const kinds = (actions: Action[]) => actions.map((a) => `${a.kind} ${"instanceId" in a ? a.instanceId : a.kind === "launch" ? a.key : a.kind === "promote" ? a.version : ""}`);

describe("a release, planned", () => {
    it("replaces a batch of a zone's outdated instances at a time, from the new version, in the same zone", () => {
        const { instances, targets } = zoneA();
        const rest = restOn(V2, 3);
        const observation: Observation = { instances: [...instances, ...rest], targets: { ...targets, ...healthyAll(rest) }, releasedVersion: V1 };
        const settings = { ...three, release: { ...three.release, batchPercent: 34 } };
        assert.strictEqual(releaseBatch(settings), 2, "34 % of 3, rounded up");
        const planned = launches(reconcile(observation, settings, standalone(V2)));
        assert.deepStrictEqual(planned.map((a) => [a.key, a.replaces, a.version, a.attempts[0].zone]), [
            ["release/2/i-a1", "i-a1", V2, "us-east-2a"],
            ["release/2/i-a2", "i-a2", V2, "us-east-2a"],
        ]);
        assert.ok(planned.every((a) => a.attempts.every((pool) => pool.zone === "us-east-2a")), "a zone's count is its own");
    });

    it("launches the next batch only once the last one serves, and retires the old ones it replaced then", () => {
        const { instances, targets } = zoneA();
        const rest = restOn(V2, 3);
        const joining = onVersion(V2, { replaces: "i-a1", launchTime: 10 })("i-new1", "a");
        // Zones b and c already run version 2, which is therefore released: zone a continues.
        const base = { instances: [...instances, joining, ...rest], releasedVersion: V2 };
        const settings = { ...three, release: { ...three.release, batchPercent: 1 } };

        const waiting = reconcile({ ...base, targets: { ...targets, ...healthyAll(rest), "i-new1": "initial" } }, settings, standalone(V2));
        assert.deepStrictEqual(kinds(waiting), [], "nothing while the batch is not healthy: the old one keeps serving");

        const served = reconcile({ ...base, targets: { ...targets, ...healthyAll(rest), "i-new1": "healthy" } }, settings, standalone(V2));
        assert.deepStrictEqual(kinds(served), ["drain i-a1", "terminate i-a1", "launch release/2/i-a2"]);
    });

    it("never counts a zone below its count: what is replaced still holds its place until its replacement serves", () => {
        const { instances, targets } = zoneA();
        const rest = restOn(V2, 3);
        const observation: Observation = { instances: [...instances, ...rest], targets: { ...targets, ...healthyAll(rest) }, releasedVersion: V1 };
        const planned = reconcile(observation, three, standalone(V2));
        assert.deepStrictEqual(planned.filter((a) => a.kind === "drain" || a.kind === "terminate"), [], "no old instance leaves before a new one serves");
        assert.strictEqual(launches(planned).length, 3, "batch 100 %: the zone's three at once");
    });

    it("promotes the new version only once one of its instances is healthy, and only on the path that releases it", () => {
        const fleet = ["a", "b", "c"].map((zone) => onVersion(V1)(`i-${zone}`, zone));
        const fresh = onVersion(V2, { replaces: "i-a" })("i-a2", "a");
        const before = { instances: [...fleet, fresh], targets: { ...healthyAll(fleet), "i-a2": "initial" as const }, releasedVersion: V1 };
        assert.ok(!kinds(reconcile(before, SETTINGS, standalone(V2))).includes("promote 2"));
        const after = { ...before, targets: { ...before.targets, "i-a2": "healthy" as const } };
        assert.ok(kinds(reconcile(after, SETTINGS, standalone(V2))).includes("promote 2"));
        assert.ok(!kinds(reconcile(after, SETTINGS, standalone(V1))).includes("promote 2"), "the schedule runs the released version: it never promotes");
    });

    it("waits for capacity first: no release while a zone is below its count", () => {
        const fleet = ["a", "b"].map((zone) => onVersion(V1)(`i-${zone}`, zone));
        const planned = reconcile({ instances: fleet, targets: healthyAll(fleet), releasedVersion: V1 }, SETTINGS, standalone(V2));
        assert.deepStrictEqual(launches(planned).map((a) => [a.key.split("/")[0], a.version]), [["refill", V2]], "zone c refilled from the version being released");
    });

    it("on the schedule, replaces what runs another version than the released one, and never an instance of the released one", () => {
        const fleet = [onVersion(V1)("i-a", "a"), onVersion(V2)("i-b", "b"), onVersion(V2)("i-c", "c")];
        const observation: Observation = { instances: fleet, targets: healthyAll(fleet), releasedVersion: V2 };
        const planned = launches(planBatch(triage([SCHEDULE_MESSAGE], observation).ours, observation, SETTINGS, 0));
        assert.deepStrictEqual(planned.map((a) => [a.key, a.version]), [["release/2/i-a", V2]]);
        const failedRelease = { ...observation, instances: [onVersion(3)("i-a", "a"), ...fleet.slice(1)] };
        assert.deepStrictEqual(launches(planBatch(triage([SCHEDULE_MESSAGE], failedRelease).ours, failedRelease, SETTINGS, 0)).map((a) => a.key), ["release/2/i-a"], "a version never released is replaced by the released one, not retried");
    });

    it("answers a warning during a release with exactly one replacement, which the release then treats as outdated", () => {
        const fleet = ["a", "b", "c"].map((zone) => onVersion(V1)(`i-${zone}`, zone));
        const warnedAt = Date.parse("2026-12-02T10:00:00Z");
        const warning = { messageId: "w1", event: { kind: "interruption-warning" as const, id: "e1", time: new Date(warnedAt).toISOString(), instanceId: "i-b" } };
        const observed: Observation = { instances: fleet, targets: healthyAll(fleet), releasedVersion: V1 };
        const answered = launches(planBatch(triage([warning], observed).ours, observed, SETTINGS, warnedAt));
        assert.deepStrictEqual(answered.map((a) => [a.key, a.version]), [["replace/i-b", undefined]], "one replacement, from the released (default) version");

        // The deploy's next round sees that replacement pending on version 1 in i-b's place.
        const replacement = onVersion(V1, { replaces: "i-b", launchedBy: "handler", state: "pending", launchTime: 5 })("i-b2", "b");
        const during: Observation = { ...observed, instances: [...fleet, replacement] };
        const round = launches(reconcile(during, SETTINGS, standalone(V2)));
        assert.deepStrictEqual(round.map((a) => a.key).sort(), ["release/2/i-a", "release/2/i-b2", "release/2/i-c"], "nothing else for i-b's place: its replacement is what the release replaces");
    });
});

describe("whose release it is", () => {
    const old = onVersion(V1)("i-a", "a");
    const fresh = onVersion(V2, { replaces: "i-a", launchedBy: "pulumi", launchTime: 5 })("i-a2", "a");
    const rest = restOn(V1, 1);
    const aboutOld = (action: string) => / i-a$/.test(action);
    const during = (releasedVersion: number): Observation => ({ instances: [old, fresh, ...rest], targets: { ...healthyAll(rest), "i-a2": "healthy" }, releasedVersion });

    it("leaves an unreleased version's replacement and what it replaces to the deploy releasing it: the schedule retires nothing of it", () => {
        // After an appPort edit, i-a serves through the previous target group until the listeners move.
        const observation = during(V1);
        assert.deepStrictEqual(kinds(planBatch(triage([SCHEDULE_MESSAGE], observation).ours, observation, SETTINGS, 0)).filter(aboutOld), []);
    });

    it("leaves it to the deploy too on a loss between schedules, where the released version is not read", () => {
        const lost = onVersion(V1, { state: "terminated" })("i-gone", "b");
        const observation: Observation = { ...during(V1), instances: [...during(V1).instances, lost], releasedVersion: undefined };
        const terminated = { messageId: "m2", event: { kind: "state-change" as const, id: "e2", time: new Date(0).toISOString(), instanceId: "i-gone", state: "terminated" as const } };
        assert.deepStrictEqual(kinds(planBatch(triage([terminated], observation).ours, observation, SETTINGS, 0)).filter(aboutOld), []);
    });

    it("retires it on the schedule once that version is released", () => {
        const observation = during(V2);
        assert.deepStrictEqual(kinds(planBatch(triage([SCHEDULE_MESSAGE], observation).ours, observation, SETTINGS, 0)).filter(aboutOld), ["terminate i-a"]);
    });

    it("holds the promotion back while the previous target group serves the old fleet", () => {
        const observation = during(V1);
        assert.ok(!kinds(reconcile(observation, SETTINGS, standalone(V2, new Set(["i-a"])))).includes("promote 2"));
        assert.ok(kinds(reconcile(observation, SETTINGS, standalone(V2))).includes("promote 2"));
    });
});

describe("a replacement chain", () => {
    it("retires an old instance whose replacement was interrupted once the replacement's replacement serves", () => {
        const old = onVersion(V1)("i-x", "a");
        const interrupted = onVersion(V2, { replaces: "i-x", state: "terminated", launchTime: 5 })("i-r", "a");
        const head = onVersion(V1, { replaces: "i-r", launchedBy: "handler", launchTime: 9 })("i-w", "a");
        const rest = restOn(V1, 1);
        const observation: Observation = { instances: [old, interrupted, head, ...rest], targets: { "i-x": "healthy", "i-w": "healthy", ...healthyAll(rest) } };
        assert.deepStrictEqual(kinds(reconcile(observation, SETTINGS)), ["drain i-x", "terminate i-x"]);
    });
});

describe("a release, judged", () => {
    const NOW = 1_000_000;
    it("stops when an instance of the new version is not healthy within the time limit", () => {
        const late = onVersion(V2, { launchTime: NOW - 301_000 })("i-late", "a");
        const fresh = onVersion(V2, { launchTime: NOW - 10_000 })("i-fresh", "b");
        const served = onVersion(V2, { launchTime: NOW - 900_000 })("i-served", "c");
        const observation: Observation = { instances: [late, fresh, served], targets: { "i-late": "unhealthy", "i-fresh": "initial", "i-served": "healthy" } };
        assert.deepStrictEqual(stalledRelease(observation, SETTINGS, V2, NOW).map((i) => i.id), ["i-late"]);
        assert.deepStrictEqual(stalledRelease(observation, SETTINGS, 3, NOW), [], "another version's instances are not this release's");
        const warned = { ...observation, targets: { ...observation.targets, "i-late": "draining" as const } };
        assert.deepStrictEqual(stalledRelease(warned, SETTINGS, V2, NOW), [], "draining after a warning is the interruption's doing, not the version's");
    });

    it("lists what still runs another version, by place", () => {
        const fleet = [onVersion(V1)("i-a", "a"), onVersion(V2)("i-b", "b"), onVersion(V2, { replaces: "i-a", state: "pending" })("i-a2", "a")];
        assert.deepStrictEqual(outdated({ instances: fleet, targets: {} }, SETTINGS, V2).map((i) => i.id), [], "i-a's place is taken by its replacement");
        assert.deepStrictEqual(outdated({ instances: fleet.slice(0, 2), targets: {} }, SETTINGS, V2).map((i) => i.id), ["i-a"]);
    });

    it("summarizes each distinct error once, with the first action it failed and how many more", () => {
        const launch = (key: string) => ({ kind: "launch" as const, attempts: [], key, reason: "r", messageIds: [] });
        assert.strictEqual(summarize([
            { status: "skipped", action: launch("release/2/i-a"), ms: 0, why: "no-capacity", tried: ["us-east-2a/t3.micro/spot: InsufficientInstanceCapacity"] },
            { status: "skipped", action: launch("release/2/i-b"), ms: 0, why: "no-capacity", tried: ["us-east-2a/t3.micro/spot: InsufficientInstanceCapacity"] },
            { status: "failed", action: { kind: "terminate", instanceId: "i-c", reason: "r", messageIds: [] }, ms: 0, error: "UnauthorizedOperation: no", tried: [] },
        ]), "launch release/2/i-a (and 1 more): no-capacity (us-east-2a/t3.micro/spot: InsufficientInstanceCapacity); terminate i-c: UnauthorizedOperation: no");
    });
});
