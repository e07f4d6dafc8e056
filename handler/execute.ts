import { LaunchOutcome, SPOT_ROLE_COMMAND, SPOT_ROLE_MISSING, StackFleet } from "./aws";
import { QueuedEvent } from "./events";
import { METRIC, MetricName } from "./metrics";
import { Action, Observation, PlannedAction, SpotPrices } from "./model";
import { placesByZone } from "./planner";
import { HandlerSettings } from "./settings";

/**
 * Carries out a batch's plan: every action at once (drains and launches in parallel), the drain
 * checks as one round of delayed messages, one JSON log line per action, metrics in the embedded
 * metric format. Returns the messages whose actions failed: the batch reports them, SQS retries them.
 */

/** Where a batch's log lines and metric data points go. */
export interface Report {
    log(fields: Record<string, unknown>): void;
    metric(values: Partial<Record<MetricName, number>>, dimensions?: Record<string, string>, properties?: Record<string, unknown>): void;
}

/**
 * Thrown when every pool was tried and none had capacity. A named Error, not a subclass: Pulumi
 * serializes a class into the archive as a function, whose `super(message)` sets no message.
 */
export function capacityError(message: string): Error {
    return Object.assign(new Error(message), { name: "CapacityError" });
}

/** An error as a log line or a failed deploy shows it; for a missing spot service-linked role, with the command that creates it. */
export function describeError(error: unknown): string {
    const { name, message } = error as Error;
    const hint = name === SPOT_ROLE_MISSING ? ` EC2 Spot's service-linked role does not exist in this account yet; create it once: ${SPOT_ROLE_COMMAND}` : "";
    return `${name}: ${message}${hint}`;
}

/**
 * What the batch brought: ignored messages with their reason, warnings to this stack, and the
 * fleet per zone on a schedule. Returns how many messages were the stack's business.
 */
export function reportBatch(messages: readonly QueuedEvent[], observation: Observation, settings: HandlerSettings, report: Report): number {
    const owned = new Set(observation.instances.map((i) => i.id));
    let ours = 0;
    for (const { messageId, event } of messages) {
        if (event.kind === "ignored") {
            report.log({ message: messageId, action: "none", result: "ignored", reason: event.reason });
            continue;
        }
        if ("instanceId" in event && !owned.has(event.instanceId)) {
            report.log({ message: messageId, event: event.kind, instance: event.instanceId, action: "none", result: "ignored", reason: "not an instance of this stack" });
            continue;
        }
        ours++;
        if (event.kind === "interruption-warning") {
            report.metric({ [METRIC.warnings]: 1 }, {}, { instance: event.instanceId });
        }
    }
    if (messages.some(({ event }) => event.kind === "schedule")) {
        for (const [zone, instances] of Object.entries(placesByZone(observation, settings, new Set()))) {
            report.metric({ [METRIC.instancesInZone]: instances.length, [METRIC.onDemandInZone]: instances.filter((i) => i.market === "on-demand").length }, { Zone: zone });
        }
    }
    return ours;
}

export async function execute(actions: readonly PlannedAction[], fleet: StackFleet, report: Report, prices: SpotPrices = {}): Promise<Set<string>> {
    const failed = new Set<string>();
    // Pools that answered a capacity error: no other launch of this batch asks them again.
    const unavailable = new Set<string>();
    let landedElsewhere = false;

    const attempt = async (planned: readonly PlannedAction[], work: () => Promise<void>) => {
        try {
            await work();
        } catch (error) {
            for (const action of planned) {
                action.messageIds.forEach((id) => failed.add(id));
                report.log({ action: action.kind, ...subject(action), reason: action.reason, result: "failed", error: describeError(error), messages: action.messageIds.length });
            }
        }
    };

    const timers = actions.filter((a): a is Extract<PlannedAction, { kind: "timer" }> => a.kind === "timer");
    const others = actions.filter((a): a is Exclude<PlannedAction, { kind: "timer" }> => a.kind !== "timer");
    await Promise.all([
        ...others.map((action) =>
            attempt([action], async () => {
                const elsewhere = await run(action);
                landedElsewhere ||= elsewhere;
            })),
        timers.length === 0 ? Promise.resolve() : attempt(timers, async () => {
            await fleet.setTimers(timers.map((t) => t.timer), new Date());
            timers.forEach((t) => report.log({ action: "timer", instance: t.timer.instanceId, cause: t.timer.cause, delaySeconds: t.timer.delaySeconds, reason: t.reason, result: "set" }));
        }),
    ]);
    if (landedElsewhere) {
        // A replacement holds its place from another zone: reconcile now, not at the next schedule,
        // so the short zone gets its own instance back (or an on-demand one) within the minute.
        try {
            await fleet.requestReconcile(new Date());
            report.log({ action: "reconcile-request", reason: "a launch landed outside its zone", result: "sent" });
        } catch (error) {
            // Nothing is lost but time: the schedule reconciles too.
            report.log({ action: "reconcile-request", reason: "a launch landed outside its zone", result: "failed", error: describeError(error) });
        }
    }
    return failed;

    /** Carries out one action; true when it launched outside the zone it was meant for. */
    async function run(action: Exclude<PlannedAction, { kind: "timer" }>): Promise<boolean> {
        switch (action.kind) {
            case "drain":
                report.log({ action: "drain", instance: action.instanceId, reason: action.reason, result: await fleet.drain(action.instanceId) });
                return false;
            case "register":
                await fleet.register(action.instanceId);
                report.log({ action: "register", instance: action.instanceId, reason: action.reason, result: "registered" });
                if (action.clock !== undefined) {
                    const metric = action.clock.kind === "notice" ? METRIC.noticeToRegistered : METRIC.refillToRegistered;
                    report.metric({ [metric]: Date.now() - action.clock.since }, {}, { instance: action.instanceId });
                }
                return false;
            case "terminate":
                await fleet.terminate([action.instanceId]);
                report.log({ action: "terminate", instance: action.instanceId, reason: action.reason, result: "terminated" });
                return false;
            case "launch":
                return launch(action);
        }
    }

    async function launch(action: Extract<PlannedAction, { kind: "launch" }>): Promise<boolean> {
        const started = Date.now();
        const outcome: LaunchOutcome = await fleet.launch(action, unavailable);
        const tried = outcome.failures.map((failure) => `${failure.attempt.zone}/${failure.attempt.instanceType}/${failure.attempt.market}: ${failure.code}`);
        const common = { action: "launch", replaces: action.replaces, reason: action.reason, tried, messages: action.messageIds.length };
        if (outcome.launched) {
            const { attempt: pool } = outcome;
            const price = pool.market === "spot" ? prices[pool.zone]?.[pool.instanceType] : undefined;
            report.log({ ...common, zone: pool.zone, instanceType: pool.instanceType, market: pool.market, price, launched: outcome.instanceId, result: "launched", launchMs: Date.now() - started });
            if (action.noticedAt !== undefined) {
                report.metric({ [METRIC.replacements]: 1 }, {}, { zone: pool.zone, instanceType: pool.instanceType, market: pool.market, price, launched: outcome.instanceId });
            }
            return pool.zone !== action.attempts[0]?.zone;
        }
        if (outcome.claimed) {
            report.log({ ...common, result: "already-launched", detail: "another batch launched this place's instance" });
            return false;
        }
        report.log({ ...common, result: "no-capacity" });
        if (action.bestEffort) {
            return false;
        }
        report.metric({ [METRIC.failures]: 1 }, {}, { reason: action.reason, tried });
        const zones = [...new Set(action.attempts.map((a) => a.zone))].join(", ");
        const types = [...new Set(action.attempts.map((a) => a.instanceType))].join(", ");
        throw capacityError(`no capacity to ${action.reason}: tried zones ${zones} and types ${types} (${tried.join("; ") || "every pool was already unavailable"})`);
    }
}

function subject(action: Action): Record<string, unknown> {
    switch (action.kind) {
        case "launch":
            return { replaces: action.replaces, key: action.key };
        case "timer":
            return { instance: action.timer.instanceId, cause: action.timer.cause };
        default:
            return { instance: action.instanceId };
    }
}
