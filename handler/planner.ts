import { createHash } from "crypto";
import { InstanceState, QueuedEvent } from "./events";
import { Action, isLive, LaunchAttempt, Observation, ObservedInstance, PlannedAction, poolKey, RegistrationClock } from "./model";
import { HandlerSettings } from "./settings";

/**
 * The handler's decisions, as a pure function of a batch of events, what was observed and the
 * stack's settings: one plan for the whole batch. No AWS here: every rule of the SPEC's handler
 * table is testable on plain data.
 */

/** AWS interrupts a spot instance two minutes after its warning: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html */
export const INTERRUPTION_NOTICE_SECONDS = 120;

/** Seconds of slack before draining must start for it to finish before the interruption. */
export const DRAIN_MARGIN_SECONDS = 10;

const STOPPED_STATES: readonly InstanceState[] = ["shutting-down", "stopping", "stopped", "terminated"];

/**
 * Instances whose place a live instance took: the one it replaces, and on down the chain (a
 * replacement that moved back to its zone supersedes the fallback, which superseded the warned
 * instance, whether or not the fallback still runs).
 */
export function supersededIds(instances: ObservedInstance[]): Set<string> {
    const replacedBy = new Map(instances.filter((i) => i.replaces !== undefined && i.replaces !== i.id).map((i) => [i.id, i.replaces as string]));
    const superseded = new Set<string>();
    for (const live of instances.filter(isLive)) {
        for (let id = replacedBy.get(live.id); id !== undefined && !superseded.has(id); id = replacedBy.get(id)) {
            superseded.add(id);
        }
    }
    return superseded;
}

/**
 * Live instances per zone that hold a place: pending or running, not draining, not superseded
 * by a replacement, and not the instances the batch says are going away.
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

/** Zones in launch order: fewest instances first, ties to the lowest spot price, then by name. */
export function chooseZones(counts: Record<string, number>, prices: Record<string, number> | undefined): string[] {
    const price = (zone: string) => prices?.[zone] ?? Number.POSITIVE_INFINITY;
    return Object.keys(counts).sort((a, b) => counts[a] - counts[b] || price(a) - price(b) || a.localeCompare(b));
}

export interface PoolPreferences {
    /** Pools AWS flagged (a warning or a recommendation): tried last among their zone's spot pools. */
    avoid?: ReadonlySet<string>;
    /** Pools known to have no capacity now: not tried at all. */
    unavailable?: ReadonlySet<string>;
    spotOnly?: boolean;
}

/** Every pool to try, in order: each zone with each instance type on spot, then, when allowed, the same on demand. */
export function launchAttempts(zones: string[], settings: HandlerSettings, preferences: PoolPreferences = {}): LaunchAttempt[] {
    const usable = (pool: LaunchAttempt) => !preferences.unavailable?.has(poolKey(pool));
    const avoided = (pool: LaunchAttempt) => preferences.avoid?.has(poolKey(pool)) ?? false;
    const pools = (market: LaunchAttempt["market"]) =>
        zones.flatMap((zone) => {
            const inZone = settings.instanceTypes.map((instanceType): LaunchAttempt => ({ zone, instanceType, market })).filter(usable);
            return [...inZone.filter((pool) => !avoided(pool)), ...inZone.filter(avoided)];
        });
    return preferences.spotOnly || !settings.onDemandFallback ? pools("spot") : [...pools("spot"), ...pools("on-demand")];
}

/** When a warned instance must leave rotation at the latest: its draining then ends before the interruption. */
export function drainDeadline(warnedAt: number, settings: HandlerSettings): number {
    return warnedAt + (INTERRUPTION_NOTICE_SECONDS - settings.targetGroup.deregistrationDelaySeconds - DRAIN_MARGIN_SECONDS) * 1000;
}

/** What a newly registered instance's registration measures: from the notice it answers, or from its launch as a refill. */
function registrationClock(instance: ObservedInstance): RegistrationClock | undefined {
    if (instance.noticedAt !== undefined) {
        return { kind: "notice", since: instance.noticedAt };
    }
    return instance.launchedBy === "handler" ? { kind: "refill", since: instance.launchTime } : undefined;
}

function digest(parts: string[]): string {
    return createHash("sha256").update(parts.join(",")).digest("hex").slice(0, 16);
}

/**
 * The instances above each zone's count that may retire: not superseded, not draining; on-demand
 * first (it costs most), then the newest. EC2's launch times have one-second resolution: within a
 * second, an answer to an event goes before the deploy's baseline.
 */
function extrasByPreference(live: ObservedInstance[], counts: Record<string, number>, settings: HandlerSettings, superseded: ReadonlySet<string>, targets: Observation["targets"]): ObservedInstance[] {
    return Object.entries(counts).flatMap(([zone, count]) =>
        live
            .filter((i) => i.zone === zone && !superseded.has(i.id) && targets[i.id] !== "draining")
            .sort((a, b) =>
                Number(b.market === "on-demand") - Number(a.market === "on-demand") ||
                b.launchTime - a.launchTime ||
                Number(b.launchedBy === "handler") - Number(a.launchedBy === "handler"))
            .slice(0, Math.max(0, count - settings.instancesPerZone)));
}

/** Whether a live replacement of the instance already serves: then it need not join rotation. */
function replacementServes(id: string, observation: Observation): boolean {
    return observation.instances.some((i) => isLive(i) && i.replaces === id && observation.targets[i.id] === "healthy");
}

/** What reconcile must take into account besides the observation: the rest of the batch's plan. */
export interface ReconcileContext {
    /** Instances the batch says are going away. */
    leaving: ReadonlySet<string>;
    /** Instances the batch already replaces, and the zones (first choice) of those replacements. */
    replaced: ReadonlySet<string>;
    planned: Record<string, number>;
    /**
     * Trims, strays and swaps back to spot: on the schedule only. A loss or a zone move asks for
     * capacity; housekeeping on every state change would repeat the same failing swap attempts.
     */
    housekeeping: boolean;
}

/** A reconcile on its own (the schedule's, the deploy's). Built per call: Pulumi's closure serialization cannot carry a Set held in a module constant. */
function nothingElse(): ReconcileContext {
    return { leaving: new Set(), replaced: new Set(), planned: {}, housekeeping: true };
}

/**
 * Instances whose place is empty: gone or going, and never replaced by anything. A refill takes
 * one's place and its key, so every batch that sees the same loss fills it with one launch.
 */
function vacated(observation: Observation, leaving: ReadonlySet<string>): ObservedInstance[] {
    const replacedEver = new Set(observation.instances.map((i) => i.replaces).filter((id): id is string => id !== undefined));
    return observation.instances
        .filter((i) => (!isLive(i) || leaving.has(i.id)) && !replacedEver.has(i.id))
        .sort((a, b) => b.launchTime - a.launchTime);
}

/**
 * Reconcile: register what runs unregistered, retire what a healthy replacement superseded, refill
 * zones below their count, terminate extras and strays in zones no longer configured, and replace
 * on-demand fallbacks and instances of types no longer listed with spot instances of a listed
 * type. The handler owns every instance of the stack, the deploy's as much as its own.
 */
export function reconcile(observation: Observation, settings: HandlerSettings, context: ReconcileContext = nothingElse()): Action[] {
    const actions: Action[] = [];
    const { leaving, replaced } = context;
    const live = observation.instances.filter((i) => isLive(i) && !leaving.has(i.id));
    const superseded = new Set([...supersededIds(observation.instances), ...replaced]);
    const targets = observation.targets;

    for (const instance of live) {
        if (instance.state === "running" && !replacementServes(instance.id, observation) && targets[instance.id] === undefined) {
            actions.push({ kind: "register", instanceId: instance.id, reason: "running but not registered", clock: registrationClock(instance) });
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

    const counts = countByZone(observation, settings, new Set([...leaving, ...replaced]));
    for (const [zone, planned] of Object.entries(context.planned)) {
        counts[zone] = (counts[zone] ?? 0) + planned;
    }
    const snapshot = (zone: string) => digest(live.filter((i) => i.zone === zone).map((i) => i.id).sort());
    const below = Object.values(counts).reduce((sum, count) => sum + Math.max(0, settings.instancesPerZone - count), 0);
    const above = Object.values(counts).reduce((sum, count) => sum + Math.max(0, count - settings.instancesPerZone), 0);
    // Capacity lost outright: launch wherever there is room, fewest-first, each in a lost instance's place.
    const places = vacated(observation, leaving).filter((i) => !replaced.has(i.id));
    for (let slot = 0; slot < below - Math.min(below, above); slot++) {
        const zones = chooseZones(counts, observation.prices);
        const place = places.find((i) => i.zone === zones[0]) ?? places[0];
        places.splice(places.indexOf(place), place === undefined ? 0 : 1);
        actions.push({
            kind: "launch",
            attempts: launchAttempts(zones, settings),
            key: place === undefined ? `refill/${zones[0]}/${snapshot(zones[0])}/${slot}` : `replace/${place.id}`,
            replaces: place?.id,
            reason: `${zones[0]} has ${counts[zones[0]]} of ${settings.instancesPerZone}`,
        });
        counts[zones[0]] += 1;
    }
    // Capacity held in another zone (after an outage, say): try the short zone itself, and only it,
    // so a zone that still has no capacity never makes the fleet grow elsewhere. The new instance
    // takes over the place of an extra elsewhere, which is retired once the new one is healthy:
    // nothing is trimmed in the meantime.
    const movable = extrasByPreference(live, counts, settings, superseded, targets);
    for (let slot = 0; slot < Math.min(below, above); slot++) {
        const [zone] = chooseZones(counts, observation.prices);
        const moved = movable.shift();
        actions.push({
            kind: "launch",
            attempts: launchAttempts([zone], settings),
            key: moved === undefined ? `rebalance/${zone}/${snapshot(zone)}/${slot}` : `move/${moved.id}`,
            replaces: moved?.id,
            reason: `${zone} has ${counts[zone]} of ${settings.instancesPerZone}; the rest of the fleet covers it`,
            bestEffort: true,
        });
        counts[zone] += 1;
        if (moved !== undefined) {
            counts[moved.zone] -= 1;
        }
    }
    if (below > 0 || !context.housekeeping) {
        // Capacity first: swaps and trims wait until every zone holds its count.
        return actions;
    }

    const trimmed = new Set<string>();
    for (const extra of extrasByPreference(live, counts, settings, superseded, targets)) {
        const reason = `${extra.zone} holds ${counts[extra.zone]} of ${settings.instancesPerZone}`;
        trimmed.add(extra.id);
        if (targets[extra.id] !== undefined) {
            actions.push({ kind: "drain", instanceId: extra.id, reason });
        }
        actions.push({ kind: "terminate", instanceId: extra.id, reason });
    }

    // After `pulumi config set zones ...`: what runs in a zone no longer configured goes.
    for (const stray of live.filter((i) => !(i.zone in counts) && !superseded.has(i.id))) {
        if (targets[stray.id] !== undefined) {
            actions.push({ kind: "drain", instanceId: stray.id, reason: `${stray.zone} is no longer configured` });
        }
        actions.push({ kind: "terminate", instanceId: stray.id, reason: `${stray.zone} is no longer configured` });
    }

    // On-demand fallbacks go back to spot, and instances of a type no longer listed are replaced by
    // one that is: the new one first, on spot, in the same zone; reconcile retires the old one once
    // the new one is healthy. Best effort: the old one holds the place meanwhile.
    const outdated = live.filter((i) => i.zone in counts && !superseded.has(i.id) && !trimmed.has(i.id));
    for (const instance of outdated) {
        const unlisted = !settings.instanceTypes.includes(instance.instanceType);
        if (instance.market === "on-demand" || unlisted) {
            actions.push({
                kind: "launch",
                attempts: launchAttempts([instance.zone], settings, { spotOnly: true }),
                key: `${unlisted ? "retype" : "to-spot"}/${instance.id}`,
                replaces: instance.id,
                reason: unlisted ? `${instance.instanceType} is no longer in instanceTypes` : `on-demand fallback ${instance.id} back to spot`,
                bestEffort: true,
            });
        }
    }
    return actions;
}

/**
 * Actions keyed by what they do to what: the same action planned for two messages is one action
 * answering both. (A closure, not a class with fields: Pulumi serializes it into the archive.)
 */
function planBuilder() {
    const byKey = new Map<string, PlannedAction>();
    return {
        add(action: Action, messageIds: readonly string[]): void {
            const key = action.kind === "launch" ? `launch/${action.key}` : action.kind === "timer" ? `timer/${action.timer.cause}/${action.timer.instanceId}` : `${action.kind}/${action.instanceId}`;
            const existing = byKey.get(key);
            if (existing === undefined) {
                byKey.set(key, { ...action, messageIds: [...messageIds] });
            } else {
                existing.messageIds.push(...messageIds.filter((id) => !existing.messageIds.includes(id)));
            }
        },
        /** Drains first: a doomed instance leaves rotation as early as anything else happens. */
        actions(): PlannedAction[] {
            const all = [...byKey.values()];
            return [...all.filter((a) => a.kind === "drain"), ...all.filter((a) => a.kind !== "drain")];
        },
    };
}

/** AWS's notices about one instance in this batch: its warning and recommendation arrive separately, or together. */
interface Notice {
    instance: ObservedInstance;
    noticedAt: number;
    warnedAt?: number;
    messageIds: string[];
}

/**
 * The plan for a batch: for each warned or recommended instance one replacement (the batch's
 * warned pools avoided, a pool warned twice skipped), a drain now or a drain check later; for each
 * running instance its registration (and a check that drains what it replaces once it is
 * healthy); for each stopped one a drain; and, for the schedule or any loss, one reconcile that
 * counts the batch's own replacements.
 */
export function planBatch(messages: readonly QueuedEvent[], observation: Observation, settings: HandlerSettings, now: number): PlannedAction[] {
    const owned = new Map(observation.instances.map((i) => [i.id, i]));
    const superseded = supersededIds(observation.instances);
    const inRotation = (id: string) => observation.targets[id] !== undefined && observation.targets[id] !== "draining";
    const healthCheckSeconds = settings.targetGroup.healthCheckIntervalSeconds;
    const plan = planBuilder();
    const notices = new Map<string, Notice>();
    const leaving = new Set<string>();
    const reconcileFor: string[] = [];
    let scheduled = false;

    for (const { messageId, event } of messages) {
        if (event.kind === "ignored") {
            continue;
        }
        if (event.kind === "schedule" || event.kind === "reconcile-request") {
            reconcileFor.push(messageId);
            scheduled ||= event.kind === "schedule";
            continue;
        }
        const instance = owned.get(event.instanceId);
        if (instance === undefined) {
            // Not this stack's: every event of the account arrives here.
            continue;
        }
        switch (event.kind) {
            case "interruption-warning":
            case "rebalance-recommendation": {
                if (event.kind === "rebalance-recommendation" && !settings.replaceOnRebalance) {
                    break;
                }
                const at = Date.parse(event.time);
                const notice = notices.get(instance.id) ?? { instance, noticedAt: at, messageIds: [] };
                notice.noticedAt = Math.min(notice.noticedAt, at);
                if (event.kind === "interruption-warning") {
                    notice.warnedAt = Math.min(notice.warnedAt ?? at, at);
                }
                notice.messageIds.push(messageId);
                notices.set(instance.id, notice);
                break;
            }
            case "state-change":
                if (event.state === "running" && instance.state === "running") {
                    if (observation.targets[instance.id] === undefined && !replacementServes(instance.id, observation)) {
                        plan.add({ kind: "register", instanceId: instance.id, reason: "instance running", clock: registrationClock(instance) }, [messageId]);
                    }
                    const replaced = instance.replaces === undefined ? undefined : owned.get(instance.replaces);
                    if (replaced !== undefined && isLive(replaced) && inRotation(replaced.id)) {
                        // The earliest it can be healthy: the healthy threshold's checks after registration.
                        const delaySeconds = settings.targetGroup.healthyThreshold * healthCheckSeconds;
                        plan.add({ kind: "timer", timer: { instanceId: replaced.id, cause: "replacement-healthy", replacementId: instance.id, delaySeconds }, reason: `${instance.id} registered` }, [messageId]);
                    }
                } else if (STOPPED_STATES.includes(event.state)) {
                    if (inRotation(instance.id)) {
                        plan.add({ kind: "drain", instanceId: instance.id, reason: `instance ${event.state}` }, [messageId]);
                    }
                    leaving.add(instance.id);
                    reconcileFor.push(messageId);
                }
                break;
            case "drain-check": {
                if (!isLive(instance) || !inRotation(instance.id)) {
                    break;
                }
                if (event.cause === "deadline") {
                    plan.add({ kind: "drain", instanceId: instance.id, reason: "the drain deadline" }, [messageId]);
                    break;
                }
                const replacement = event.replacementId === undefined ? undefined : owned.get(event.replacementId);
                if (replacement !== undefined && observation.targets[replacement.id] === "healthy") {
                    plan.add({ kind: "drain", instanceId: instance.id, reason: `replacement ${replacement.id} is healthy` }, [messageId]);
                } else if (replacement !== undefined && isLive(replacement) && ["initial", undefined].includes(observation.targets[replacement.id])) {
                    // Not healthy yet: look again one health check later.
                    plan.add({ kind: "timer", timer: { instanceId: instance.id, cause: "replacement-healthy", replacementId: replacement.id, delaySeconds: healthCheckSeconds }, reason: `${replacement.id} not healthy yet` }, [messageId]);
                }
                break;
            }
        }
    }

    // Warned instances leave rotation: at once, when their replacement already serves, or at the deadline.
    for (const notice of notices.values()) {
        const { instance, warnedAt } = notice;
        if (warnedAt === undefined || !isLive(instance)) {
            continue;
        }
        leaving.add(instance.id);
        if (!inRotation(instance.id)) {
            continue;
        }
        const replacement = observation.instances.find((i) => isLive(i) && i.replaces === instance.id);
        const deadline = drainDeadline(warnedAt, settings);
        if (settings.drainWhen === "warning" || deadline <= now || (replacement !== undefined && observation.targets[replacement.id] === "healthy")) {
            plan.add({ kind: "drain", instanceId: instance.id, reason: "interruption warning" }, notice.messageIds);
        } else {
            plan.add({ kind: "timer", timer: { instanceId: instance.id, cause: "deadline", delaySeconds: Math.ceil((deadline - now) / 1000) }, reason: "interruption warning" }, notice.messageIds);
        }
    }

    // One replacement per noticed instance, zones fewest-first as the batch fills them.
    const replacing = [...notices.values()].filter((n) => isLive(n.instance) && !superseded.has(n.instance.id)).sort((a, b) => a.noticedAt - b.noticedAt);
    const replaced = new Set(replacing.map((n) => n.instance.id));
    const counts = countByZone(observation, settings, new Set([...leaving, ...replaced]));
    const planned: Record<string, number> = {};
    const poolOf = (n: Notice) => poolKey(n.instance);
    const warnedPools = [...notices.values()].filter((n) => n.warnedAt !== undefined).map(poolOf);
    const preferences: PoolPreferences = {
        avoid: new Set([...notices.values()].map(poolOf)),
        // AWS reclaims a pool's capacity when it needs it back: two warnings from one pool say it has none.
        unavailable: new Set(warnedPools.filter((pool, index) => warnedPools.indexOf(pool) !== index)),
    };
    const fallbacksFrom: Record<string, number> = {};
    for (const notice of replacing) {
        const [first, ...rest] = chooseZones(counts, observation.prices);
        // Replacements bound for one zone fall back across the zones tied after it, not all into the first.
        const tied = rest.filter((zone) => counts[zone] === counts[rest[0]]);
        const turn = (fallbacksFrom[first] = (fallbacksFrom[first] ?? -1) + 1) % Math.max(1, tied.length);
        const zones = [first, ...tied.slice(turn), ...tied.slice(0, turn), ...rest.slice(tied.length)];
        plan.add({
            kind: "launch",
            attempts: launchAttempts(zones, settings, preferences),
            key: `replace/${notice.instance.id}`,
            replaces: notice.instance.id,
            noticedAt: notice.noticedAt,
            reason: notice.warnedAt === undefined ? "rebalance recommendation" : "interruption warning",
        }, notice.messageIds);
        counts[zones[0]] += 1;
        planned[zones[0]] = (planned[zones[0]] ?? 0) + 1;
    }

    if (reconcileFor.length > 0) {
        for (const action of reconcile(observation, settings, { leaving, replaced, planned, housekeeping: scheduled })) {
            plan.add(action, reconcileFor);
        }
    }
    return plan.actions();
}
