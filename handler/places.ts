import { isLive, Observation, ObservedInstance } from "./model";
import { HandlerSettings } from "./settings";

/**
 * How the fleet's places are counted: which live instance holds which zone's place. Shared by the
 * planner, the deploy's answer and the batch's metrics; no decisions here.
 */

/**
 * Instances whose place a live instance took, each with that live instance: the one it replaces,
 * and on down the chain (a replacement that moved back to its zone supersedes the fallback, which
 * superseded the warned instance, whether or not the fallback still runs). The live head is what
 * decides when a superseded instance may retire: once it serves.
 */
export function supersedingHeads(instances: ObservedInstance[]): Map<string, ObservedInstance> {
    const replacedBy = new Map(instances.filter((i) => i.replaces !== undefined && i.replaces !== i.id).map((i) => [i.id, i.replaces as string]));
    const heads = new Map<string, ObservedInstance>();
    for (const live of instances.filter(isLive).sort((a, b) => b.launchTime - a.launchTime)) {
        for (let id = replacedBy.get(live.id); id !== undefined && !heads.has(id); id = replacedBy.get(id)) {
            heads.set(id, live);
        }
    }
    return heads;
}

export function supersededIds(instances: ObservedInstance[]): Set<string> {
    return new Set(supersedingHeads(instances).keys());
}

/**
 * Live instances per configured zone that hold a place: pending or running, not draining, not
 * superseded by a replacement, and not the instances the batch says are going away.
 */
export function placesByZone(observation: Observation, settings: HandlerSettings, leaving: ReadonlySet<string>): Record<string, ObservedInstance[]> {
    const superseded = supersededIds(observation.instances);
    const places: Record<string, ObservedInstance[]> = Object.fromEntries(Object.keys(settings.subnetsByZone).map((zone) => [zone, []]));
    for (const instance of observation.instances) {
        if (isLive(instance) && !superseded.has(instance.id) && !leaving.has(instance.id) && observation.targets[instance.id] !== "draining" && instance.zone in places) {
            places[instance.zone].push(instance);
        }
    }
    return places;
}

export function countByZone(observation: Observation, settings: HandlerSettings, leaving: ReadonlySet<string>): Record<string, number> {
    return Object.fromEntries(Object.entries(placesByZone(observation, settings, leaving)).map(([zone, instances]) => [zone, instances.length]));
}
