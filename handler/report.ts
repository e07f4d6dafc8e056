import { CappedPlan } from "./ceiling";
import { METRIC, MetricName } from "./metrics";
import { Action, isLive, Observation, Outcome, PlannedAction, SpotPrices } from "./model";
import { HandlerSettings } from "./settings";
import { Triage } from "./triage";

/**
 * What a batch or a deploy round tells its operators: one JSON log line per message it did not
 * act on and per outcome, and metrics in CloudWatch's embedded metric format. Read from triage and
 * outcomes; nothing reads these lines back.
 */

/** Where log lines and metric data points go. */
export interface Report {
    log(fields: Record<string, unknown>): void;
    metric(values: Partial<Record<MetricName, number>>, dimensions?: Record<string, string>, properties?: Record<string, unknown>): void;
}

/** Ignored and foreign messages with their reason; a metric per warning to this stack. */
export function reportTriage(triaged: Triage, report: Report): void {
    for (const { messageId, reason } of triaged.ignored) {
        report.log({ message: messageId, action: "none", result: "ignored", reason });
    }
    for (const { messageId, event } of triaged.foreign) {
        report.log({ message: messageId, event: event.kind, instance: event.instanceId, action: "none", result: "ignored", reason: "not an instance of this stack" });
    }
    for (const { event } of triaged.ours) {
        if (event.kind === "interruption-warning") {
            report.metric({ [METRIC.warnings]: 1 }, {}, { instance: event.instanceId });
        }
    }
}

/**
 * The fleet per zone, on the schedule: what the alarms watch. Every live instance in the zone
 * counts, whether or not it holds a place: one that outlives its replacement shows as a zone above
 * its count, not as nothing.
 */
export function reportFleet(observation: Observation, settings: HandlerSettings, report: Report): void {
    for (const zone of Object.keys(settings.subnetsByZone)) {
        const instances = observation.instances.filter((i) => isLive(i) && i.zone === zone);
        report.metric({ [METRIC.instancesInZone]: instances.length, [METRIC.onDemandInZone]: instances.filter((i) => i.market === "on-demand").length }, { Zone: zone });
    }
}

/** Launches the ceiling held back: a line each, and one metric for the alarm. */
export function reportRefused(plan: CappedPlan<PlannedAction>, report: Report): void {
    for (const action of plan.refused) {
        report.log({ action: action.kind, ...subject(action), reason: action.reason, messages: action.messageIds.length, result: "refused", why: `the stack runs ${plan.live} instances, its ceiling is ${plan.ceiling}` });
    }
    if (plan.refused.length > 0) {
        report.metric({ [METRIC.launchesRefused]: plan.refused.length }, {}, { live: plan.live, ceiling: plan.ceiling });
    }
}

function subject(action: Action): Record<string, unknown> {
    switch (action.kind) {
        case "launch":
            return { replaces: action.replaces, key: action.key };
        case "timer":
            return { instance: action.timer.instanceId, cause: action.timer.cause, delaySeconds: action.timer.delaySeconds };
        case "promote":
            return { version: action.version };
        case "request-reconcile":
            return {};
        default:
            return { instance: action.instanceId };
    }
}

const DONE: Record<Action["kind"], string> = {
    drain: "drained",
    register: "registered",
    terminate: "terminated",
    launch: "launched",
    timer: "set",
    promote: "promoted",
    "request-reconcile": "sent",
};

/** One line per outcome, and the metrics a launch, a registration or a failure feeds. */
export function reportOutcome(outcome: Outcome, report: Report, prices: SpotPrices = {}): void {
    const { action } = outcome;
    const common = { action: action.kind, ...subject(action), reason: action.reason, messages: action.messageIds.length };
    if (outcome.status === "failed") {
        report.log({ ...common, tried: outcome.tried, result: "failed", error: outcome.error });
        if (action.kind === "launch") {
            report.metric({ [METRIC.failures]: 1 }, {}, { reason: action.reason, tried: outcome.tried });
        }
        return;
    }
    if (outcome.status === "skipped") {
        report.log({ ...common, tried: outcome.tried, result: outcome.why });
        return;
    }
    if (outcome.launched !== undefined && action.kind === "launch") {
        const { instanceId, pool, tried } = outcome.launched;
        const price = pool.market === "spot" ? prices[pool.zone]?.[pool.instanceType] : undefined;
        report.log({ ...common, tried, zone: pool.zone, instanceType: pool.instanceType, market: pool.market, version: action.version ?? "$Default", price, launched: instanceId, result: "launched", launchMs: outcome.ms });
        if (action.noticedAt !== undefined) {
            report.metric({ [METRIC.replacements]: 1 }, {}, { zone: pool.zone, instanceType: pool.instanceType, market: pool.market, price, launched: instanceId });
        }
        return;
    }
    report.log({ ...common, result: outcome.drained ?? DONE[action.kind] });
    if (action.kind === "register" && action.clock !== undefined) {
        const metric = action.clock.kind === "notice" ? METRIC.noticeToRegistered : METRIC.refillToRegistered;
        report.metric({ [metric]: Date.now() - action.clock.since }, {}, { instance: action.instanceId });
    }
}

export function reportOutcomes(outcomes: readonly Outcome[], report: Report, prices?: SpotPrices): void {
    outcomes.forEach((outcome) => reportOutcome(outcome, report, prices));
}

/** The messages whose actions failed: the batch reports them, SQS retries them. */
export function failedMessages(outcomes: readonly Outcome[]): string[] {
    return [...new Set(outcomes.filter((o) => o.status === "failed").flatMap((o) => o.action.messageIds))];
}
