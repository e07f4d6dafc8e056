import { ceilingFor } from "../handler/ceiling";
import { ModelledFleet, ModelledInstance } from "./fleet";

/**
 * What a rehearsal measured, read off the modelled fleet once the scenario has run. "Notice" is
 * the first signal AWS gave about an instance: its rebalance recommendation or its warning.
 */

export interface Figures {
    /** Each notice to its replacement serving (healthy): paired in order, first notice with first replacement to serve. */
    noticeToInServiceS: { p50: number | null; p95: number | null; max: number | null };
    /** First notice to the launch of the last replacement; null when a notice was never answered. */
    lastLaunchS: number | null;
    /** Seconds, summed over zones, while a zone's serving targets (healthy, not draining) were below its count. */
    servingGapS: number;
    /** Seconds a shutting-down or terminated instance stayed registered and not draining: requests sent there fail. */
    deadTargetS: number;
    invocations: number;
    awsCalls: number;
    /**
     * Instances above the count after the first notice, until the first trim of an instance no
     * notice concerned. In a release, whose surge is meant, the most new-version instances a zone
     * held above its count at once: two launched for one place.
     */
    duplicates: number;
    /** Pending or running instances per zone when the scenario ends. */
    finalPerZone: Record<string, number>;
    /** The most pending or running instances at once, and the handler's ceiling on them (handler/ceiling.ts): it never launches above it. */
    liveInstances: { peak: number; ceiling: number };
    /** A scenario with a release: how rolling the fleet to the new version went. */
    release?: ReleaseFigures;
}

export interface ReleaseFigures {
    /** From the start of the release until every place runs the new version and no older instance is left (terminated); null if that never happened. */
    durationS: number | null;
    /** Instances launched from the start of the release on. */
    launches: number;
    /** Running instances above the count, integrated over the scenario from the release on: what launching before terminating costs. */
    instanceSecondsBeyondCount: number;
    /** Seconds of deregistration delay cut short, summed: an instance shut down while still draining drops the requests in flight. */
    drainCutS: number;
}

export interface FigureInputs {
    fleet: ModelledFleet;
    zones: string[];
    instancesPerZone: number;
    horizonS: number;
    invocations: number;
    awsCalls: number;
    /** The release the scenario rolled out, if any: when it started and the version it released. */
    release?: { atS: number; version: number };
}

const round = (seconds: number) => Math.round(seconds * 10) / 10;

/** Nearest-rank percentile; null when it falls on a notice never answered. */
function percentile(sorted: number[], p: number): number | null {
    if (sorted.length === 0) {
        return null;
    }
    const value = sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
    return Number.isFinite(value) ? round(value) : null;
}

function isLive(fleet: ModelledFleet, instance: ModelledInstance, at: number): boolean {
    const state = fleet.stateAt(instance.id, at);
    return state === "pending" || state === "running";
}

/** Of the fleet's change points (sorted), those in [from, to], with `from` and `to` themselves. */
function pointsWithin(changes: number[], from: number, to: number): number[] {
    return [from, ...changes.filter((t) => t > from && t < to), to];
}

/** Seconds in [from, to] during which `holds` is true. */
function secondsWhile(changes: number[], from: number, to: number, holds: (at: number) => boolean): number {
    return secondsWeighted(changes, from, to, (at) => (holds(at) ? 1 : 0));
}

/**
 * The release's figures. Done once each zone holds its count of live new-version instances and
 * every older instance has terminated; running (billed) instances above the count are the
 * surge's cost.
 */
export function releaseFigures({ fleet, zones, instancesPerZone, horizonS, release }: FigureInputs & { release: { atS: number; version: number } }): ReleaseFigures {
    const instances = [...fleet.instances.values()];
    const older = instances.filter((i) => i.version < release.version);
    // When each zone's count of the new version that is still there at the end first served.
    const zoneServedAt = zones.map((zone) => instances
        .filter((i) => i.zone === zone && i.version === release.version && isLive(fleet, i, horizonS))
        .map((i) => fleet.firstHealthyAt(i.id) ?? Infinity)
        .sort((a, b) => a - b)[instancesPerZone - 1] ?? Infinity);
    const doneAt = Math.max(...zoneServedAt, ...older.map((i) => i.terminatedAt ?? Infinity));
    const running = (at: number) => instances.filter((i) => fleet.stateAt(i.id, at) === "running").length;
    const desired = zones.length * instancesPerZone;
    return {
        durationS: doneAt <= horizonS ? round(doneAt - release.atS) : null,
        launches: instances.filter((i) => !i.initial && i.launchedAt >= release.atS).length,
        instanceSecondsBeyondCount: round(secondsWeighted(fleet.changePoints(), release.atS, horizonS, (at) => Math.max(0, running(at) - desired))),
        drainCutS: round(drainCut(fleet, release.atS)),
    };
}

/** From `from` on, the part of each target's draining that its instance's shutdown cut off. */
function drainCut(fleet: ModelledFleet, from: number): number {
    return fleet.registrations
        .filter((r) => r.deregisteredAt !== undefined && r.deregisteredAt >= from)
        .reduce((sum, r) => {
            const drainedAt = (r.deregisteredAt as number) + fleet.model.deregistrationDelayS;
            const stoppedAt = fleet.instances.get(r.instanceId)?.shuttingDownAt ?? Infinity;
            return sum + Math.max(0, drainedAt - Math.max(stoppedAt, r.deregisteredAt as number));
        }, 0);
}

/** The most new-version instances a zone held above its count at once, from the release on. */
function releaseDuplicates({ fleet, zones, instancesPerZone, horizonS, release }: FigureInputs & { release: { atS: number; version: number } }, changes: number[]): number {
    const released = [...fleet.instances.values()].filter((i) => i.version === release.version);
    const aboveCount = (zone: string, at: number) => released.filter((i) => i.zone === zone && isLive(fleet, i, at)).length - instancesPerZone;
    return Math.max(0, ...pointsWithin(changes, release.atS, horizonS).flatMap((at) => zones.map((zone) => aboveCount(zone, at))));
}

/** The integral of `value` over [from, to]; it can only change at the fleet's change points. */
function secondsWeighted(changes: number[], from: number, to: number, value: (at: number) => number): number {
    const points = pointsWithin(changes, from, to);
    let total = 0;
    for (let i = 0; i + 1 < points.length; i++) {
        total += value((points[i] + points[i + 1]) / 2) * (points[i + 1] - points[i]);
    }
    return total;
}

export function computeFigures(inputs: FigureInputs): Figures {
    const { fleet, zones, instancesPerZone, horizonS, invocations, awsCalls, release } = inputs;
    const instances = [...fleet.instances.values()];
    const changes = fleet.changePoints();
    const notices = instances.filter((i) => i.noticedAt !== undefined && i.noticedAt <= horizonS).map((i) => i.noticedAt as number).sort((a, b) => a - b);
    const firstNotice = notices[0] ?? horizonS;
    const replacements = instances
        .filter((i) => !i.initial && i.launchedAt >= firstNotice)
        .map((i) => ({ launchedAt: i.launchedAt, servingAt: fleet.firstHealthyAt(i.id) }))
        .filter((r): r is { launchedAt: number; servingAt: number } => r.servingAt !== undefined && r.servingAt <= horizonS)
        .sort((a, b) => a.servingAt - b.servingAt);
    const answered = notices.map((noticeAt, index) => (index < replacements.length ? { ...replacements[index], noticeAt } : undefined));
    const delays = answered.map((pair) => (pair === undefined ? Infinity : Math.max(0, pair.servingAt - pair.noticeAt))).sort((a, b) => a - b);
    const lastLaunch = answered.every((pair) => pair !== undefined) && answered.length > 0
        ? round(Math.max(...answered.map((pair) => (pair as { launchedAt: number }).launchedAt)) - firstNotice)
        : null;

    const servingGapS = zones.reduce((sum, zone) => sum + secondsWhile(changes, 0, horizonS, (at) => fleet.servingIn(zone, at) < instancesPerZone), 0);

    const deadTargetS = instances
        .filter((i) => i.shuttingDownAt !== undefined && i.shuttingDownAt < horizonS)
        .reduce((sum, i) => sum + secondsWhile(changes, i.shuttingDownAt as number, horizonS, (at) => {
            const state = fleet.targetStateAt(i.id, at);
            return state !== undefined && state !== "draining";
        }), 0);

    // A trim: a policy terminating an instance no notice concerned. Extras counted before the first one.
    const firstTrim = Math.min(horizonS, ...instances.filter((i) => i.terminatedByPolicy && i.noticedAt === undefined && (i.shuttingDownAt as number) > firstNotice).map((i) => i.shuttingDownAt as number));
    const unnoticedLive = (at: number) => instances.filter((i) => (i.noticedAt === undefined || i.noticedAt > at) && isLive(fleet, i, at)).length;
    const desired = zones.length * instancesPerZone;
    const duplicates = release !== undefined
        ? releaseDuplicates({ ...inputs, release }, changes)
        : notices.length === 0
            ? 0
            : Math.max(0, ...pointsWithin(changes, firstNotice, firstTrim).filter((at) => at < firstTrim).map((at) => unnoticedLive(at) - desired));

    const finalPerZone = Object.fromEntries(zones.map((zone) => [zone, instances.filter((i) => i.zone === zone && isLive(fleet, i, horizonS)).length]));
    const peak = Math.max(0, ...pointsWithin(changes, 0, horizonS).map((at) => instances.filter((i) => isLive(fleet, i, at)).length));

    return {
        noticeToInServiceS: { p50: percentile(delays, 50), p95: percentile(delays, 95), max: percentile(delays, 100) },
        lastLaunchS: lastLaunch,
        servingGapS: round(servingGapS),
        deadTargetS: round(deadTargetS),
        invocations,
        awsCalls,
        duplicates,
        finalPerZone,
        liveInstances: { peak, ceiling: ceilingFor(zones.length, instancesPerZone) },
        ...(release === undefined ? {} : { release: releaseFigures({ ...inputs, release }) }),
    };
}
