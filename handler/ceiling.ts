import { Action, isLive, Observation } from "./model";
import { HandlerSettings } from "./settings";

/**
 * A ceiling on what the stack may run, whatever the planner decides: a bug, a forged message or a
 * replacement chain nobody retires can then cost at most a bounded number of instances, and the
 * alarm on `LaunchesRefused` says so. Pure; the event path and the deploy both apply it to their plan.
 */

/**
 * The most live (pending or running) instances the stack may hold: twice the fleet, as a release
 * at 100 % runs the old and the new side by side, and one more per zone, for a warning answered
 * during such a release.
 */
export function ceilingFor(zoneCount: number, instancesPerZone: number): number {
    return zoneCount * (2 * instancesPerZone + 1);
}

export function instanceCeiling(settings: HandlerSettings): number {
    return ceilingFor(Object.keys(settings.subnetsByZone).length, settings.instancesPerZone);
}

export interface CappedPlan<A extends Action> {
    actions: A[];
    /** Launches held back, in plan order: they would have taken the stack above its ceiling. */
    refused: A[];
    live: number;
    ceiling: number;
}

/** The plan with every launch beyond the ceiling held back; the first launches planned go first. */
export function withinCeiling<A extends Action>(actions: A[], observation: Observation, settings: HandlerSettings): CappedPlan<A> {
    const ceiling = instanceCeiling(settings);
    const live = observation.instances.filter(isLive).length;
    let room = Math.max(0, ceiling - live);
    const refused: A[] = [];
    const allowed = actions.filter((action) => {
        if (action.kind !== "launch") {
            return true;
        }
        if (room > 0) {
            room -= 1;
            return true;
        }
        refused.push(action);
        return false;
    });
    return { actions: allowed, refused, live, ceiling };
}
