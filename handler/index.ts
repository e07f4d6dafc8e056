import { AwsClients, createClients, StackFleet } from "./aws";
import { withinCeiling } from "./ceiling";
import { parseBatch } from "./events";
import { describeError, execute } from "./execute";
import { metricLine } from "./metrics";
import { planBatch } from "./planner";
import { failedMessages, Report, reportFleet, reportOutcomes, reportRefused, reportTriage } from "./report";
import { HandlerSettings } from "./settings";
import { actionable, isScheduled, mayLaunch, triage } from "./triage";

/**
 * The Lambda's controller, one SQS batch at a time: parse every record, observe the stack once,
 * plan once for the whole batch, act, and report as batch item failures only the messages whose
 * actions failed (SQS retries them, then dead-letters them). Junk and foreign events are logged
 * and acknowledged; nothing here throws.
 */

export type Log = (line: string) => void;

export interface HandlerDependencies {
    clients?: AwsClients;
    log?: Log;
    /** Where metric lines go: stdout as is, so Lambda's JSON log format does not wrap them. */
    metrics?: Log;
}

/** What the event source mapping reads back: https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html */
export interface BatchResponse {
    batchItemFailures: { itemIdentifier: string }[];
}

/** Builds the function Lambda calls for each batch; clients are built once, here, per container. */
export function createHandler(settings: HandlerSettings, dependencies: HandlerDependencies = {}) {
    const fleet = new StackFleet(dependencies.clients ?? createClients(settings.region), settings);
    const write: Log = dependencies.log ?? ((line) => console.log(line));
    const writeMetric: Log = dependencies.metrics ?? ((line) => process.stdout.write(`${line}\n`));

    return async (payload: unknown): Promise<BatchResponse> => {
        const started = Date.now();
        const report: Report = {
            log: (fields) => write(JSON.stringify({ ...fields, ms: Date.now() - started })),
            metric: (values, dimensions, properties) => writeMetric(metricLine(settings.stack, values, dimensions, properties)),
        };
        const { messages, rejected } = parseBatch(payload);
        if (rejected !== undefined) {
            report.log({ action: "none", result: "ignored", reason: rejected });
        }
        const relevant = actionable(messages);
        const failures = (ids: Iterable<string>): BatchResponse => ({ batchItemFailures: [...ids].map((itemIdentifier) => ({ itemIdentifier })) });
        if (relevant.length === 0) {
            reportTriage(triage(messages, { instances: [], targets: {} }), report);
            return failures([]);
        }
        let observation;
        try {
            observation = await fleet.observe({ prices: mayLaunch(relevant), template: isScheduled(relevant) });
        } catch (error) {
            report.log({ action: "observe", result: "failed", error: describeError(error), messages: relevant.length });
            return failures(relevant.map((m) => m.messageId));
        }
        const triaged = triage(messages, observation);
        reportTriage(triaged, report);
        if (isScheduled(relevant)) {
            reportFleet(observation, settings, report);
        }
        const plan = withinCeiling(planBatch(triaged.ours, observation, settings, Date.now()), observation, settings);
        reportRefused(plan, report);
        if (plan.actions.length === 0 && plan.refused.length === 0 && triaged.ours.length > 0) {
            report.log({ action: "none", result: "nothing to do", messages: triaged.ours.length });
        }
        const outcomes = await execute(plan.actions, fleet);
        reportOutcomes(outcomes, report, observation.spotPrices);
        return failures(failedMessages(outcomes));
    };
}
