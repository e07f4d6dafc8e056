import { InstanceState } from "./events";
import { Action, isLive, Observation, ObservedInstance, PlannedAction, poolKey } from "./model";
import { countByZone, supersededIds } from "./places";
import { chooseZones, launchAttempts, PoolPreferences } from "./pools";
import { reconcile, registrationClock, replacementServes } from "./reconcile";
import { HandlerSettings } from "./settings";
import { OurMessage } from "./triage";

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

/** When a warned instance must leave rotation at the latest: its draining then ends before the interruption. */
export function drainDeadline(warnedAt: number, settings: HandlerSettings): number {
    return warnedAt + (INTERRUPTION_NOTICE_SECONDS - settings.targetGroup.deregistrationDelaySeconds - DRAIN_MARGIN_SECONDS) * 1000;
}

function actionKey(action: Action): string {
    switch (action.kind) {
        case "launch":
            return `launch/${action.key}`;
        case "timer":
            return `timer/${action.timer.cause}/${action.timer.instanceId}`;
        case "promote":
            return `promote/${action.version}`;
        case "request-reconcile":
            return action.kind;
        default:
            return `${action.kind}/${action.instanceId}`;
    }
}

/**
 * Actions keyed by what they do to what: the same action planned for two messages is one action
 * answering both. (A closure, not a class with fields: Pulumi serializes it into the archive.)
 */
function planBuilder() {
    const byKey = new Map<string, PlannedAction>();
    return {
        add(action: Action, messageIds: readonly string[]): void {
            const key = actionKey(action);
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
export function planBatch(messages: readonly OurMessage[], observation: Observation, settings: HandlerSettings, now: number): PlannedAction[] {
    const owned = new Map(observation.instances.map((i) => [i.id, i]));
    const superseded = supersededIds(observation.instances);
    const inRotation = (id: string) => observation.targets[id] !== undefined && observation.targets[id] !== "draining";
    const healthCheckSeconds = settings.targetGroup.healthCheckIntervalSeconds;
    const plan = planBuilder();
    const notices = new Map<string, Notice>();
    const leaving = new Set<string>();
    const reconcileFor: string[] = [];
    let scheduled = false;

    for (const message of messages) {
        const { messageId } = message;
        if (message.instance === undefined) {
            reconcileFor.push(messageId);
            scheduled ||= message.event.kind === "schedule";
            continue;
        }
        const { event, instance } = message;
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
        // The schedule also finishes a release: the fleet runs the released (default) version.
        const target = scheduled ? observation.releasedVersion : undefined;
        for (const action of reconcile(observation, settings, { leaving, replaced, planned, housekeeping: scheduled, target })) {
            plan.add(action, reconcileFor);
        }
    }
    return plan.actions();
}
