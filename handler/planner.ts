import { HandlerEvent } from "./events";
import { Action, isLive, LaunchAttempt, Observation, ObservedInstance } from "./model";
import { HandlerSettings } from "./settings";

/**
 * The handler's decisions, as a pure function of the event, what was observed and the stack's
 * settings. No AWS here: every rule of the SPEC's handler table is testable on plain data.
 */

/** Instances that a live instance was launched to replace: their place is taken. */
export function supersededIds(instances: ObservedInstance[]): Set<string> {
    return new Set(instances.filter((i) => isLive(i) && i.replaces !== undefined && i.replaces !== i.id).map((i) => i.replaces as string));
}

/**
 * Live instances per zone that hold a place: pending or running, not draining, not superseded
 * by a replacement, and not the instances the event says are going away.
 */
export function placesByZone(observation: Observation, settings: HandlerSettings, leaving: Set<string>): Record<string, ObservedInstance[]> {
    const superseded = supersededIds(observation.instances);
    const places: Record<string, ObservedInstance[]> = Object.fromEntries(Object.keys(settings.subnetsByZone).map((zone) => [zone, []]));
    for (const instance of observation.instances) {
        if (isLive(instance) && !superseded.has(instance.id) && !leaving.has(instance.id) && observation.targets?.[instance.id] !== "draining" && instance.zone in places) {
            places[instance.zone].push(instance);
        }
    }
    return places;
}

export function countByZone(observation: Observation, settings: HandlerSettings, leaving: Set<string>): Record<string, number> {
    return Object.fromEntries(Object.entries(placesByZone(observation, settings, leaving)).map(([zone, instances]) => [zone, instances.length]));
}

/** Zones in launch order: fewest instances first, ties to the lowest spot price, then by name. */
export function chooseZones(counts: Record<string, number>, prices: Record<string, number> | undefined): string[] {
    const price = (zone: string) => prices?.[zone] ?? Number.POSITIVE_INFINITY;
    return Object.keys(counts).sort((a, b) => counts[a] - counts[b] || price(a) - price(b) || a.localeCompare(b));
}

/**
 * Every pool to try, in order: each zone with each instance type on spot, then, when allowed,
 * the same on demand. `avoid` (the pool AWS flagged) goes last among its zone's spot pools.
 */
export function launchAttempts(zones: string[], settings: HandlerSettings, options: { avoid?: { zone: string; instanceType: string }; spotOnly?: boolean } = {}): LaunchAttempt[] {
    const typesFor = (zone: string) => {
        const avoid = options.avoid;
        if (avoid === undefined || avoid.zone !== zone || !settings.instanceTypes.includes(avoid.instanceType)) {
            return settings.instanceTypes;
        }
        return [...settings.instanceTypes.filter((type) => type !== avoid.instanceType), avoid.instanceType];
    };
    const spot = zones.flatMap((zone) => typesFor(zone).map((instanceType): LaunchAttempt => ({ zone, instanceType, market: "spot" })));
    if (options.spotOnly || !settings.onDemandFallback) {
        return spot;
    }
    const onDemand = zones.flatMap((zone) => settings.instanceTypes.map((instanceType): LaunchAttempt => ({ zone, instanceType, market: "on-demand" })));
    return [...spot, ...onDemand];
}

function replacementFor(instance: ObservedInstance, observation: Observation, settings: HandlerSettings, eventId: string, reason: string, avoidPool: boolean): Action {
    const zones = chooseZones(countByZone(observation, settings, new Set([instance.id])), observation.prices);
    return {
        kind: "launch",
        attempts: launchAttempts(zones, settings, avoidPool ? { avoid: { zone: instance.zone, instanceType: instance.instanceType } } : {}),
        replaces: instance.id,
        idempotencyKey: `${eventId}/replace/${instance.id}`,
        reason,
    };
}

/**
 * Reconcile: register what runs unregistered, retire what a healthy replacement superseded, refill
 * zones below their count, terminate handler-launched extras and strays in zones no longer
 * configured (never the instances Pulumi declared), and replace on-demand fallbacks and instances
 * of types no longer listed with spot instances of a listed type.
 */
export function reconcile(observation: Observation, settings: HandlerSettings, eventId: string, leaving: Set<string> = new Set()): Action[] {
    const actions: Action[] = [];
    const live = observation.instances.filter((i) => isLive(i) && !leaving.has(i.id));
    const superseded = supersededIds(observation.instances);
    const targets = observation.targets ?? {};

    for (const instance of live) {
        if (instance.state === "running" && !superseded.has(instance.id) && targets[instance.id] === undefined) {
            actions.push({ kind: "register", instanceId: instance.id, reason: "running but not registered" });
        }
    }

    for (const old of live.filter((i) => superseded.has(i.id))) {
        const replacement = live.find((i) => i.replaces === old.id);
        if (replacement !== undefined && targets[replacement.id] === "healthy") {
            if (targets[old.id] !== undefined && targets[old.id] !== "draining") {
                actions.push({ kind: "drain", instanceId: old.id, reason: `replacement ${replacement.id} is healthy` });
            }
            actions.push({ kind: "terminate", instanceId: old.id, reason: `replacement ${replacement.id} is healthy` });
        }
    }

    const counts = countByZone(observation, settings, leaving);
    const below = Object.values(counts).reduce((sum, count) => sum + Math.max(0, settings.instancesPerZone - count), 0);
    const above = Object.values(counts).reduce((sum, count) => sum + Math.max(0, count - settings.instancesPerZone), 0);
    // Capacity lost outright: launch wherever there is room, fewest-first.
    for (let slot = 0; slot < below - Math.min(below, above); slot++) {
        const zones = chooseZones(counts, observation.prices);
        actions.push({
            kind: "launch",
            attempts: launchAttempts(zones, settings),
            idempotencyKey: `${eventId}/refill/${slot}`,
            reason: `${zones[0]} has ${counts[zones[0]]} of ${settings.instancesPerZone}`,
        });
        counts[zones[0]] += 1;
    }
    // Capacity held in another zone (after an outage, say): try the short zone itself, and only it,
    // so a zone that still has no capacity never makes the fleet grow elsewhere.
    for (let slot = 0; slot < Math.min(below, above); slot++) {
        const [zone] = chooseZones(counts, observation.prices);
        actions.push({
            kind: "launch",
            attempts: launchAttempts([zone], settings),
            idempotencyKey: `${eventId}/rebalance/${slot}`,
            reason: `${zone} has ${counts[zone]} of ${settings.instancesPerZone}; the rest of the fleet covers it`,
            bestEffort: true,
        });
        counts[zone] += 1;
    }
    if (below > 0) {
        // Capacity first: swaps and trims wait until every zone holds its count.
        return actions;
    }

    const trimmed = new Set<string>();
    for (const [zone, count] of Object.entries(counts)) {
        const extras = live
            .filter((i) => i.zone === zone && i.launchedBy === "handler" && !superseded.has(i.id) && targets[i.id] !== "draining")
            // On-demand first (it costs most), then the newest.
            .sort((a, b) => Number(b.market === "on-demand") - Number(a.market === "on-demand") || b.launchTime - a.launchTime)
            .slice(0, Math.max(0, count - settings.instancesPerZone));
        for (const extra of extras) {
            trimmed.add(extra.id);
            if (targets[extra.id] !== undefined) {
                actions.push({ kind: "drain", instanceId: extra.id, reason: `${zone} holds ${count} of ${settings.instancesPerZone}` });
            }
            actions.push({ kind: "terminate", instanceId: extra.id, reason: `${zone} holds ${count} of ${settings.instancesPerZone}` });
        }
    }

    // After `pulumi config set zones ...`: what the handler launched in a zone no longer configured goes.
    // (Pulumi removes its own instances there.)
    for (const stray of live.filter((i) => i.launchedBy === "handler" && !(i.zone in counts) && !superseded.has(i.id))) {
        if (targets[stray.id] !== undefined) {
            actions.push({ kind: "drain", instanceId: stray.id, reason: `${stray.zone} is no longer configured` });
        }
        actions.push({ kind: "terminate", instanceId: stray.id, reason: `${stray.zone} is no longer configured` });
    }

    // On-demand fallbacks go back to spot, and instances of a type no longer listed are replaced by
    // one that is: the new one first, on spot, in the same zone; reconcile retires the old one once
    // the new one is healthy. Best effort: the old one holds the place meanwhile.
    const outdated = live.filter((i) => i.launchedBy === "handler" && i.zone in counts && !superseded.has(i.id) && !trimmed.has(i.id));
    for (const instance of outdated) {
        const unlisted = !settings.instanceTypes.includes(instance.instanceType);
        if (instance.market === "on-demand" || unlisted) {
            actions.push({
                kind: "launch",
                attempts: launchAttempts([instance.zone], settings, { spotOnly: true }),
                replaces: instance.id,
                idempotencyKey: `${eventId}/${unlisted ? "retype" : "to-spot"}/${instance.id}`,
                reason: unlisted ? `${instance.instanceType} is no longer in instanceTypes` : `on-demand fallback ${instance.id} back to spot`,
                bestEffort: true,
            });
        }
    }
    return actions;
}

/** The actions for one event. Drains come first: a doomed instance leaves rotation at once. */
export function plan(event: HandlerEvent, observation: Observation, settings: HandlerSettings): Action[] {
    if (event.kind === "ignored") {
        return [];
    }
    if (event.kind === "schedule") {
        return reconcile(observation, settings, event.id);
    }
    const instance = observation.instances.find((i) => i.id === event.instanceId);
    if (instance === undefined) {
        // Not this stack's: every event of the account arrives here.
        return [];
    }
    const superseded = supersededIds(observation.instances).has(instance.id);
    switch (event.kind) {
        case "interruption-warning": {
            const drain: Action = { kind: "drain", instanceId: instance.id, reason: "interruption warning" };
            return superseded ? [drain] : [drain, replacementFor(instance, observation, settings, event.id, "interruption warning", false)];
        }
        case "rebalance-recommendation":
            if (!settings.replaceOnRebalance || superseded || !isLive(instance)) {
                return [];
            }
            // The old instance keeps serving until the replacement is healthy; reconcile retires it.
            return [replacementFor(instance, observation, settings, event.id, "rebalance recommendation", true)];
        case "state-change":
            if (event.state === "running") {
                return reconcile(observation, settings, event.id).filter((action) => action.kind === "register" && action.instanceId === instance.id);
            }
            if (event.state === "pending") {
                return [];
            }
            return [
                ...(observation.targets?.[instance.id] !== undefined ? [{ kind: "drain" as const, instanceId: instance.id, reason: `instance ${event.state}` }] : []),
                ...reconcile(observation, settings, event.id, new Set([instance.id])),
            ];
    }
}
