import { createHash } from "crypto";
import { Action, isLive, Observation, ObservedInstance, RegistrationClock } from "./model";
import { countByZone, placesByZone, supersededIds, supersedingHeads } from "./places";
import { chooseZones, launchAttempts } from "./pools";
import { HandlerSettings } from "./settings";

/**
 * Reconcile: the stack back to its settings, as named pure phases over one observation — register
 * what runs unregistered, retire what a healthy replacement superseded, refill zones below their
 * count, move capacity back to a short zone, then (housekeeping, every zone at its count) trim
 * extras, terminate strays in zones no longer configured, retype on-demand fallbacks and unlisted
 * types to spot, and release: replace instances of another launch template version. The handler
 * owns every instance of the stack, the deploy's as much as its own.
 */

/** What reconcile must take into account besides the observation: the rest of the batch's plan. */
export interface ReconcileContext {
    /** Instances the batch says are going away. */
    leaving: ReadonlySet<string>;
    /** Instances the batch already replaces, and the zones (first choice) of those replacements. */
    replaced: ReadonlySet<string>;
    planned: Record<string, number>;
    /**
     * Trims, strays, swaps back to spot and releases: on the schedule and the deploy only. A loss or
     * a zone move asks for capacity; housekeeping on every state change would repeat the same failing
     * swap attempts.
     */
    housekeeping: boolean;
    /**
     * The launch template version the fleet should run: the deploy's declared one, the schedule's
     * released (default) one. Undefined elsewhere: launches then take the template's default.
     */
    target?: number;
    /**
     * Instances that must not retire during this reconcile: after an `appPort` edit, those the
     * previous target group still serves through until the listeners move to the new one.
     */
    keep?: ReadonlySet<string>;
}

/** A reconcile on its own (the deploy's). Built per call: Pulumi's closure serialization cannot carry a Set held in a module constant. */
export function standalone(target?: number, keep?: ReadonlySet<string>): ReconcileContext {
    return { leaving: new Set(), replaced: new Set(), planned: {}, housekeeping: true, target, keep };
}

/** One observation as every phase reads it. */
interface FleetView {
    observation: Observation;
    settings: HandlerSettings;
    context: ReconcileContext;
    /** Live instances not going away. */
    live: ObservedInstance[];
    /** Instances whose place a replacement took, or the batch's own replacements take. */
    superseded: ReadonlySet<string>;
}

type Counts = Record<string, number>;

/** What a newly registered instance's registration measures: from the notice it answers, or from its launch as a refill. */
export function registrationClock(instance: ObservedInstance): RegistrationClock | undefined {
    if (instance.noticedAt !== undefined) {
        return { kind: "notice", since: instance.noticedAt };
    }
    return instance.launchedBy === "handler" ? { kind: "refill", since: instance.launchTime } : undefined;
}

/** Whether a live replacement of the instance already serves: then it need not join rotation. */
export function replacementServes(id: string, observation: Observation): boolean {
    return observation.instances.some((i) => isLive(i) && i.replaces === id && observation.targets[i.id] === "healthy");
}

/**
 * Whether a replacement belongs to a release this reconcile is not running: it runs a version
 * that is neither released nor this reconcile's target. The deploy running that release retires
 * what it replaces (after an `appPort` edit, only once the listeners have moved); the schedule
 * does not finish it for it. Where the released version was not read (the event path between
 * schedules), whatever the deploy launched is left to the deploy and the schedule.
 */
function anothersRelease(view: FleetView, head: ObservedInstance): boolean {
    const released = view.observation.releasedVersion;
    if (released === undefined) {
        return view.context.target === undefined && head.launchedBy === "pulumi";
    }
    return head.version !== undefined && head.version !== released && head.version !== view.context.target;
}

function digest(parts: string[]): string {
    return createHash("sha256").update(parts.join(",")).digest("hex").slice(0, 16);
}

/** Drain (when in the target group) and terminate: how every retirement ends. */
function retireActions(instance: ObservedInstance, view: FleetView, reason: string): Action[] {
    const registered = view.observation.targets[instance.id] !== undefined;
    return [...(registered ? [{ kind: "drain" as const, instanceId: instance.id, reason }] : []), { kind: "terminate", instanceId: instance.id, reason }];
}

/** Running instances join the target group, unless a replacement already serves or they serve through the previous group. */
export function register(view: FleetView): Action[] {
    return view.live
        .filter((i) => i.state === "running" && view.observation.targets[i.id] === undefined && !replacementServes(i.id, view.observation) && !view.context.keep?.has(i.id))
        .map((i) => ({ kind: "register", instanceId: i.id, reason: "running but not registered", clock: registrationClock(i) }));
}

/**
 * Instances a healthy replacement superseded leave: drained if still in rotation, then terminated.
 * The replacement is the live head of the chain, so an instance whose direct replacement was
 * itself interrupted still retires once the replacement's replacement serves. One already
 * draining (a drain check of the event path drained it) finishes its deregistration delay first:
 * the requests it serves complete, and a later reconcile terminates it. Instances the context
 * keeps (they serve through the previous target group until the listeners move) stay.
 */
export function retire(view: FleetView): Action[] {
    const heads = supersedingHeads(view.observation.instances);
    return view.live.filter((i) => view.observation.targets[i.id] !== "draining" && !view.context.keep?.has(i.id)).flatMap((old) => {
        const head = heads.get(old.id);
        if (head === undefined || view.observation.targets[head.id] !== "healthy" || anothersRelease(view, head)) {
            return [];
        }
        return retireActions(old, view, `replacement ${head.id} is healthy`);
    });
}

/**
 * Instances whose place is empty: gone or going, and never replaced by anything. A refill takes
 * one's place and its key, so every batch that sees the same loss fills it with one launch.
 */
function vacated(view: FleetView): ObservedInstance[] {
    const { observation, context } = view;
    const replacedEver = new Set(observation.instances.map((i) => i.replaces).filter((id): id is string => id !== undefined));
    return observation.instances
        .filter((i) => (!isLive(i) || context.leaving.has(i.id)) && !replacedEver.has(i.id) && !context.replaced.has(i.id))
        .sort((a, b) => b.launchTime - a.launchTime);
}

function snapshot(view: FleetView, zone: string): string {
    return digest(view.live.filter((i) => i.zone === zone).map((i) => i.id).sort());
}

function shortBy(counts: Counts, settings: HandlerSettings): { below: number; above: number } {
    const values = Object.values(counts);
    return {
        below: values.reduce((sum, count) => sum + Math.max(0, settings.instancesPerZone - count), 0),
        above: values.reduce((sum, count) => sum + Math.max(0, count - settings.instancesPerZone), 0),
    };
}

/** Capacity lost outright: launch wherever there is room, fewest-first, each in a lost instance's place. */
export function refill(view: FleetView, counts: Counts, slots: number): { actions: Action[]; counts: Counts } {
    const { settings, observation, context } = view;
    const next = { ...counts };
    const places = vacated(view);
    const actions: Action[] = [];
    for (let slot = 0; slot < slots; slot++) {
        const zones = chooseZones(next, observation.prices);
        const place = places.find((i) => i.zone === zones[0]) ?? places[0];
        places.splice(places.indexOf(place), place === undefined ? 0 : 1);
        actions.push({
            kind: "launch",
            attempts: launchAttempts(zones, settings),
            key: place === undefined ? `refill/${zones[0]}/${snapshot(view, zones[0])}/${slot}` : `replace/${place.id}`,
            replaces: place?.id,
            reason: `${zones[0]} has ${next[zones[0]]} of ${settings.instancesPerZone}`,
            version: context.target,
        });
        next[zones[0]] += 1;
    }
    return { actions, counts: next };
}

/**
 * The instances above each zone's count that may retire: not superseded, not draining; on-demand
 * first (it costs most), then the newest. EC2's launch times have one-second resolution: within a
 * second, an answer to an event goes before the deploy's baseline.
 */
function extrasByPreference(view: FleetView, counts: Counts): ObservedInstance[] {
    return Object.entries(counts).flatMap(([zone, count]) =>
        view.live
            .filter((i) => i.zone === zone && !view.superseded.has(i.id) && view.observation.targets[i.id] !== "draining")
            .sort((a, b) =>
                Number(b.market === "on-demand") - Number(a.market === "on-demand") ||
                b.launchTime - a.launchTime ||
                Number(b.launchedBy === "handler") - Number(a.launchedBy === "handler"))
            .slice(0, Math.max(0, count - view.settings.instancesPerZone)));
}

/**
 * Capacity held in another zone (after an outage, say): try the short zone itself, and only it,
 * so a zone that still has no capacity never makes the fleet grow elsewhere. The new instance
 * takes over the place of an extra elsewhere, which is retired once the new one is healthy:
 * nothing is trimmed in the meantime.
 */
export function moveBack(view: FleetView, counts: Counts, slots: number): { actions: Action[]; counts: Counts } {
    const { settings, observation, context } = view;
    const next = { ...counts };
    const movable = extrasByPreference(view, next);
    const actions: Action[] = [];
    for (let slot = 0; slot < slots; slot++) {
        const [zone] = chooseZones(next, observation.prices);
        const moved = movable.shift();
        actions.push({
            kind: "launch",
            attempts: launchAttempts([zone], settings),
            key: moved === undefined ? `rebalance/${zone}/${snapshot(view, zone)}/${slot}` : `move/${moved.id}`,
            replaces: moved?.id,
            reason: `${zone} has ${next[zone]} of ${settings.instancesPerZone}; the rest of the fleet covers it`,
            bestEffort: true,
            version: context.target,
        });
        next[zone] += 1;
        if (moved !== undefined) {
            next[moved.zone] -= 1;
        }
    }
    return { actions, counts: next };
}

/** Extras above a zone's count retire. Returns the trimmed instances too: nothing else replaces them. */
export function trim(view: FleetView, counts: Counts): { actions: Action[]; trimmed: Set<string> } {
    const extras = extrasByPreference(view, counts);
    return {
        actions: extras.flatMap((extra) => retireActions(extra, view, `${extra.zone} holds ${counts[extra.zone]} of ${view.settings.instancesPerZone}`)),
        trimmed: new Set(extras.map((extra) => extra.id)),
    };
}

/** After `pulumi config set zones ...`: what runs in a zone no longer configured goes. */
export function strays(view: FleetView): Action[] {
    return view.live
        .filter((i) => !(i.zone in view.settings.subnetsByZone) && !view.superseded.has(i.id) && !view.context.keep?.has(i.id))
        .flatMap((stray) => retireActions(stray, view, `${stray.zone} is no longer configured`));
}

/**
 * On-demand fallbacks go back to spot, and instances of a type no longer listed are replaced by
 * one that is: the new one first, on spot, in the same zone; retire takes the old one once the new
 * one is healthy. Best effort: the old one holds the place meanwhile.
 */
export function retype(view: FleetView, trimmed: ReadonlySet<string>): Action[] {
    const { settings, context } = view;
    return view.live
        .filter((i) => i.zone in settings.subnetsByZone && !view.superseded.has(i.id) && !trimmed.has(i.id))
        .filter((i) => i.market === "on-demand" || !settings.instanceTypes.includes(i.instanceType))
        .map((instance) => {
            const unlisted = !settings.instanceTypes.includes(instance.instanceType);
            return {
                kind: "launch",
                attempts: launchAttempts([instance.zone], settings, { spotOnly: true }),
                key: `${unlisted ? "retype" : "to-spot"}/${instance.id}`,
                replaces: instance.id,
                reason: unlisted ? `${instance.instanceType} is no longer in instanceTypes` : `on-demand fallback ${instance.id} back to spot`,
                bestEffort: true,
                version: context.target,
            };
        });
}

/** A release's batch in one zone: the share of its count replaced at once (rounded up, at least one). */
export function releaseBatch(settings: HandlerSettings): number {
    return Math.max(1, Math.ceil((settings.instancesPerZone * settings.release.batchPercent) / 100));
}

/**
 * Instances of another version than the target are replaced as an Auto Scaling group's instance
 * refresh does at minimum healthy 100 %: in each zone, at most a batch of new instances joins at
 * once; each replaces an outdated one, which retire takes once the new one is healthy. Best
 * effort: the outdated instance holds its place and serves meanwhile.
 */
export function release(view: FleetView, busy: ReadonlySet<string>): Action[] {
    const { settings, observation, context } = view;
    const target = context.target;
    if (target === undefined) {
        return [];
    }
    return Object.entries(placesByZone(observation, settings, context.leaving)).flatMap(([zone, holders]) => {
        const joining = holders.filter((i) => i.version === target && observation.targets[i.id] !== "healthy").length;
        const outdated = holders.filter((i) => i.version !== target && !busy.has(i.id)).sort((a, b) => a.launchTime - b.launchTime || a.id.localeCompare(b.id));
        return outdated.slice(0, Math.max(0, releaseBatch(settings) - joining)).map((old): Action => ({
            kind: "launch",
            attempts: launchAttempts([zone], settings),
            key: `release/${target}/${old.id}`,
            replaces: old.id,
            reason: `${old.id} runs version ${old.version ?? "unknown"}, not ${target}`,
            bestEffort: true,
            version: target,
        }));
    });
}

/** The target version becomes the default (what the event path launches) once one of its instances serves. */
export function promote(view: FleetView): Action[] {
    const { observation, context } = view;
    const target = context.target;
    const serves = view.live.some((i) => i.version === target && observation.targets[i.id] === "healthy");
    // After an `appPort` edit the old fleet serves until the listeners move: the version is
    // promoted (and the schedule may retire the old fleet) only as the deploy answers.
    if (target === undefined || observation.releasedVersion === undefined || observation.releasedVersion === target || !serves || (context.keep?.size ?? 0) > 0) {
        return [];
    }
    return [{ kind: "promote", version: target, reason: `an instance of version ${target} is healthy` }];
}

export function reconcile(observation: Observation, settings: HandlerSettings, context: ReconcileContext = standalone()): Action[] {
    const view: FleetView = {
        observation,
        settings,
        context,
        live: observation.instances.filter((i) => isLive(i) && !context.leaving.has(i.id)),
        superseded: new Set([...supersededIds(observation.instances), ...context.replaced]),
    };
    const counts = countByZone(observation, settings, new Set([...context.leaving, ...context.replaced]));
    for (const [zone, planned] of Object.entries(context.planned)) {
        counts[zone] = (counts[zone] ?? 0) + planned;
    }
    const { below, above } = shortBy(counts, settings);
    const refilled = refill(view, counts, below - Math.min(below, above));
    const moved = moveBack(view, refilled.counts, Math.min(below, above));
    const actions = [...register(view), ...retire(view), ...promote(view), ...refilled.actions, ...moved.actions];
    if (below > 0 || !context.housekeeping) {
        // Capacity first: swaps, trims and releases wait until every zone holds its count.
        return actions;
    }
    const trimmed = trim(view, moved.counts);
    const retyped = retype(view, trimmed.trimmed);
    // What a trim or a retype already takes care of is not released too.
    const busy = new Set([...trimmed.trimmed, ...retyped.flatMap((a) => (a.kind === "launch" && a.replaces !== undefined ? [a.replaces] : []))]);
    return [...actions, ...trimmed.actions, ...strays(view), ...retyped, ...release(view, busy)];
}
