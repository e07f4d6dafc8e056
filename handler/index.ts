import { AwsClients, createClients, StackFleet } from "./aws";
import { HandlerEvent, parseBatch } from "./events";
import { describeError, execute, Report, reportBatch } from "./execute";
import { metricLine } from "./metrics";
import { planBatch } from "./planner";
import { HandlerSettings } from "./settings";

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

/** Whether the batch may launch: then the observation includes spot prices, which rank the zones. */
function mayLaunch(event: HandlerEvent): boolean {
    return !["ignored", "drain-check"].includes(event.kind) && !(event.kind === "state-change" && event.state === "running");
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
        const actionable = messages.filter(({ event }) => event.kind !== "ignored");
        const failures = (ids: Iterable<string>): BatchResponse => ({ batchItemFailures: [...ids].map((itemIdentifier) => ({ itemIdentifier })) });
        if (actionable.length === 0) {
            reportBatch(messages, { instances: [], targets: {} }, settings, report);
            return failures([]);
        }
        let observation;
        try {
            observation = await fleet.observe({ prices: actionable.some(({ event }) => mayLaunch(event)) });
        } catch (error) {
            report.log({ action: "observe", result: "failed", error: describeError(error), messages: actionable.length });
            return failures(actionable.map((m) => m.messageId));
        }
        const ours = reportBatch(messages, observation, settings, report);
        const actions = planBatch(actionable, observation, settings, Date.now());
        if (actions.length === 0 && ours > 0) {
            report.log({ action: "none", result: "nothing to do", messages: ours });
        }
        return failures(await execute(actions, fleet, report, observation.spotPrices));
    };
}
