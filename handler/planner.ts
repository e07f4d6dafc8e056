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

/** What every part of a batch's plan reads, and the plan it adds to. */
interface Batch {
    observation: Observation;
    settings: HandlerSettings;
    owned: Map<string, ObservedInstance>;
    plan: ReturnType<typeof planBuilder>;
    now: number;
}

type InstanceMessage<K extends string> = Extract<OurMessage, { instance: ObservedInstance }> & { event: { kind: K } };

function inRotation(batch: Batch, id: string): boolean {
    const target = batch.observation.targets[id];
    return target !== undefined && target !== "draining";
}

/** Warnings and recommendations per instance: its warning and recommendation arrive separately, or together. */
function collectNotices(messages: readonly OurMessage[], settings: HandlerSettings): Map<string, Notice> {
    const notices = new Map<string, Notice>();
    for (const { messageId, event, instance } of messages) {
        const kind = event.kind;
        if (instance === undefined || !(kind === "interruption-warning" || (kind === "rebalance-recommendation" && settings.replaceOnRebalance))) {
            continue;
        }
        const at = Date.parse(event.time);
        const notice = notices.get(instance.id) ?? { instance, noticedAt: at, messageIds: [] };
        notice.noticedAt = Math.min(notice.noticedAt, at);
        if (kind === "interruption-warning") {
            notice.warnedAt = Math.min(notice.warnedAt ?? at, at);
        }
        notice.messageIds.push(messageId);
        notices.set(instance.id, notice);
    }
    return notices;
}

/**
 * `running`: register it, and check when it may be healthy whether what it replaces can leave
 * rotation. Stopping or gone: out of rotation. Returns whether the instance is leaving.
 */
function planStateChange(batch: Batch, { messageId, event, instance }: InstanceMessage<"state-change">): boolean {
    const { observation, settings, plan } = batch;
    if (event.kind !== "state-change") {
        return false;
    }
    if (event.state === "running" && instance.state === "running") {
        if (observation.targets[instance.id] === undefined && !replacementServes(instance.id, observation)) {
            plan.add({ kind: "register", instanceId: instance.id, reason: "instance running", clock: registrationClock(instance) }, [messageId]);
        }
        const replaced = instance.replaces === undefined ? undefined : batch.owned.get(instance.replaces);
        if (replaced !== undefined && isLive(replaced) && inRotation(batch, replaced.id)) {
            // The earliest it can be healthy: the healthy threshold's checks after registration.
            const delaySeconds = settings.targetGroup.healthyThreshold * settings.targetGroup.healthCheckIntervalSeconds;
            plan.add({ kind: "timer", timer: { instanceId: replaced.id, cause: "replacement-healthy", replacementId: instance.id, delaySeconds }, reason: `${instance.id} registered` }, [messageId]);
        }
        return false;
    }
    if (!STOPPED_STATES.includes(event.state)) {
        return false;
    }
    if (inRotation(batch, instance.id)) {
        plan.add({ kind: "drain", instanceId: instance.id, reason: `instance ${event.state}` }, [messageId]);
    }
    return true;
}

/** A timer the handler set: drain at the deadline, or once the replacement is healthy (else look again a health check later). */
function planDrainCheck(batch: Batch, { messageId, event, instance }: InstanceMessage<"drain-check">): void {
    const { observation, plan } = batch;
    if (event.kind !== "drain-check" || !isLive(instance) || !inRotation(batch, instance.id)) {
        return;
    }
    if (event.cause === "deadline") {
        plan.add({ kind: "drain", instanceId: instance.id, reason: "the drain deadline" }, [messageId]);
        return;
    }
    const replacement = event.replacementId === undefined ? undefined : batch.owned.get(event.replacementId);
    if (replacement !== undefined && observation.targets[replacement.id] === "healthy") {
        plan.add({ kind: "drain", instanceId: instance.id, reason: `replacement ${replacement.id} is healthy` }, [messageId]);
    } else if (replacement !== undefined && isLive(replacement) && ["initial", undefined].includes(observation.targets[replacement.id])) {
        const delaySeconds = batch.settings.targetGroup.healthCheckIntervalSeconds;
        plan.add({ kind: "timer", timer: { instanceId: instance.id, cause: "replacement-healthy", replacementId: replacement.id, delaySeconds }, reason: `${replacement.id} not healthy yet` }, [messageId]);
    }
}

/** Warned instances leave rotation: at once, when their replacement already serves, or at the deadline. Returns them. */
function planWarnedDrains(batch: Batch, notices: Iterable<Notice>): string[] {
    const { observation, settings, plan, now } = batch;
    const warned = [...notices].filter((n) => n.warnedAt !== undefined && isLive(n.instance));
    for (const { instance, warnedAt, messageIds } of warned.filter((n) => inRotation(batch, n.instance.id))) {
        const replacement = observation.instances.find((i) => isLive(i) && i.replaces === instance.id);
        const deadline = drainDeadline(warnedAt as number, settings);
        if (settings.drainWhen === "warning" || deadline <= now || (replacement !== undefined && observation.targets[replacement.id] === "healthy")) {
            plan.add({ kind: "drain", instanceId: instance.id, reason: "interruption warning" }, messageIds);
        } else {
            plan.add({ kind: "timer", timer: { instanceId: instance.id, cause: "deadline", delaySeconds: Math.ceil((deadline - now) / 1000) }, reason: "interruption warning" }, messageIds);
        }
    }
    return warned.map((n) => n.instance.id);
}

/** Pools to avoid for the batch's replacements: every noticed pool last, a pool warned twice not at all. */
function noticedPools(notices: Notice[]): PoolPreferences {
    const warnedPools = notices.filter((n) => n.warnedAt !== undefined).map((n) => poolKey(n.instance));
    return {
        avoid: new Set(notices.map((n) => poolKey(n.instance))),
        // AWS reclaims a pool's capacity when it needs it back: two warnings from one pool say it has none.
        unavailable: new Set(warnedPools.filter((pool, index) => warnedPools.indexOf(pool) !== index)),
    };
}

/** One replacement per noticed instance not already replaced, zones fewest-first as the batch fills them. */
function planReplacements(batch: Batch, notices: Notice[], leaving: ReadonlySet<string>): { replaced: Set<string>; planned: Record<string, number> } {
    const { observation, settings, plan } = batch;
    const superseded = supersededIds(observation.instances);
    const replacing = notices.filter((n) => isLive(n.instance) && !superseded.has(n.instance.id)).sort((a, b) => a.noticedAt - b.noticedAt);
    const replaced = new Set(replacing.map((n) => n.instance.id));
    const counts = countByZone(observation, settings, new Set([...leaving, ...replaced]));
    const planned: Record<string, number> = {};
    const preferences = noticedPools(notices);
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
    return { replaced, planned };
}

/**
 * The plan for a batch of this stack's messages: for each warned or recommended instance one
 * replacement (the batch's warned pools avoided, a pool warned twice skipped), a drain now or a
 * drain check later; for each running instance its registration (and a check that drains what it
 * replaces once it is healthy); for each stopped one a drain; and, for the schedule or any loss,
 * one reconcile that counts the batch's own replacements.
 */
export function planBatch(messages: readonly OurMessage[], observation: Observation, settings: HandlerSettings, now: number): PlannedAction[] {
    const batch: Batch = { observation, settings, now, owned: new Map(observation.instances.map((i) => [i.id, i])), plan: planBuilder() };
    const leaving = new Set<string>();
    const reconcileFor: string[] = [];
    for (const message of messages) {
        if (message.instance === undefined) {
            reconcileFor.push(message.messageId);
        } else if (message.event.kind === "state-change" && planStateChange(batch, message as InstanceMessage<"state-change">)) {
            leaving.add(message.instance.id);
            reconcileFor.push(message.messageId);
        } else if (message.event.kind === "drain-check") {
            planDrainCheck(batch, message as InstanceMessage<"drain-check">);
        }
    }
    const notices = collectNotices(messages, settings);
    planWarnedDrains(batch, notices.values()).forEach((id) => leaving.add(id));
    const { replaced, planned } = planReplacements(batch, [...notices.values()], leaving);
    if (reconcileFor.length > 0) {
        const scheduled = messages.some((m) => m.event.kind === "schedule");
        // The schedule also finishes a release: the fleet runs the released (default) version.
        const target = scheduled ? observation.releasedVersion : undefined;
        for (const action of reconcile(observation, settings, { leaving, replaced, planned, housekeeping: scheduled, target })) {
            batch.plan.add(action, reconcileFor);
        }
    }
    return batch.plan.actions();
}
