import { EventBridgeClient, PutEventsCommand, PutRuleCommand, PutTargetsCommand } from "@aws-sdk/client-eventbridge";
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { createHash } from "crypto";
import { Activity, Entry, VirtualClock } from "./clock";
import { asyncRetryDelay, Model } from "./model";
import { ProgramRun } from "./program";
import { ModelledQueue, QueueConfig, QueuedMessage } from "./queue";

/**
 * How an event reaches the function, as the program declares it and as AWS documents it: the
 * EventBridge rules (their patterns evaluated by moto, not restated here), then either Lambda's
 * asynchronous queue (concurrency, throttling back-off, retries on error) or an SQS queue read by
 * an event source mapping (batching window, batch size, maximum concurrency, visibility timeout,
 * redrive). The function itself takes a cold start, and fails when it outlives its timeout.
 */

/** An event as EventBridge hands it to a target. */
export interface DeliveredEvent {
    version: "0";
    id: string;
    "detail-type": string;
    source: string;
    account: string;
    time: string;
    region: string;
    resources: string[];
    detail: Record<string, unknown>;
}

export interface DeclaredRule {
    name: string;
    arn: string;
    /** JSON, for rules that match events. */
    pattern?: string;
    /** Seconds between firings, for scheduled rules. */
    everyS?: number;
    /** ARNs the rule delivers to: the function, or a queue. */
    targets: string[];
}

export interface DeclaredMapping {
    queueArn: string;
    batchSize: number;
    windowS: number;
    maxConcurrency?: number;
    reportBatchItemFailures: boolean;
}

export interface EventPath {
    functionArn: string;
    timeoutS: number;
    /** Reserved concurrency; none: the account's unreserved pool. */
    reservedConcurrency?: number;
    rules: DeclaredRule[];
    queues: QueueConfig[];
    mappings: DeclaredMapping[];
}

/** Seconds between firings of a `rate(...)` schedule expression. */
export function scheduleSeconds(expression: string): number {
    const match = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
    if (!match) {
        throw new Error(`the rehearsal models rate(...) schedules, not ${expression}`);
    }
    const unit = { minute: 60, minutes: 60, hour: 3600, hours: 3600, day: 86_400, days: 86_400 }[match[2] as "minute"];
    return Number(match[1]) * unit;
}

/** The event path the program declared: its function, rules, targets, queues and mappings. */
export function declaredEventPath(run: ProgramRun): EventPath {
    const fn = run.one("aws:lambda/function:Function", "-handler");
    const targets = run.ofType("aws:cloudwatch/eventTarget:EventTarget");
    const rules = run.ofType("aws:cloudwatch/eventRule:EventRule").map((rule): DeclaredRule => ({
        name: rule.state.name,
        arn: rule.state.arn,
        pattern: rule.inputs.eventPattern,
        everyS: rule.inputs.scheduleExpression === undefined ? undefined : scheduleSeconds(rule.inputs.scheduleExpression),
        targets: targets.filter((target) => target.inputs.rule === rule.state.name).map((target) => target.inputs.arn),
    }));
    const queues = run.ofType("aws:sqs/queue:Queue").map((queue): QueueConfig => {
        const redrive = queue.inputs.redrivePolicy === undefined ? undefined : JSON.parse(queue.inputs.redrivePolicy);
        return { arn: queue.state.arn, url: queue.id, visibilityTimeoutS: queue.inputs.visibilityTimeoutSeconds ?? 30, maxReceiveCount: redrive?.maxReceiveCount };
    });
    const mappings = run.ofType("aws:lambda/eventSourceMapping:EventSourceMapping").map((mapping): DeclaredMapping => ({
        queueArn: mapping.inputs.eventSourceArn,
        batchSize: mapping.inputs.batchSize ?? 10,
        windowS: mapping.inputs.maximumBatchingWindowInSeconds ?? 0,
        maxConcurrency: mapping.inputs.scalingConfig?.maximumConcurrency,
        reportBatchItemFailures: (mapping.inputs.functionResponseTypes ?? []).includes("ReportBatchItemFailures"),
    }));
    return { functionArn: fn.state.arn, timeoutS: fn.inputs.timeout ?? 3, reservedConcurrency: fn.inputs.reservedConcurrentExecutions, rules, queues, mappings };
}

export type InvocationOutcome = { ok: true; result: unknown } | { ok: false; error: string };

export interface InvocationRecord {
    startedAt: number;
    endedAt?: number;
    cold: boolean;
    ok?: boolean;
    error?: string;
}

/** A Lambda function: concurrency, execution environments kept warm for a while, a timeout. */
export class FunctionModel {
    readonly invocations: InvocationRecord[] = [];
    /** Set when the scenario is over: nothing starts another invocation. */
    closed = false;
    private running = 0;
    private readonly idleSince: number[] = [];

    constructor(
        private readonly clock: VirtualClock,
        private readonly model: Model,
        private readonly activity: Activity,
        private readonly handler: (payload: unknown) => Promise<unknown>,
        readonly limits: { timeoutS: number; concurrency: number },
    ) {}

    hasCapacity(): boolean {
        return this.running < this.limits.concurrency;
    }

    /** Invocations under way. */
    get active(): number {
        return this.running;
    }

    async invoke(payload: unknown): Promise<InvocationOutcome> {
        this.running++;
        const warm = this.takeWarmEnvironment();
        const record: InvocationRecord = { startedAt: this.clock.now, cold: !warm };
        this.invocations.push(record);
        if (!warm) {
            await this.clock.sleep(this.model.lambdaColdStartS);
        }
        // Lambda stops an invocation at its timeout; the rehearsal cannot stop the code, so it
        // counts the invocation failed and frees its environment (the code's late calls still land).
        const timedOut = new Promise<InvocationOutcome>((resolve) => this.clock.after(this.limits.timeoutS, () => resolve({ ok: false, error: `timed out after ${this.limits.timeoutS} s` })));
        const ran = this.handler(payload).then(
            (result): InvocationOutcome => ({ ok: true, result }),
            (error: Error): InvocationOutcome => ({ ok: false, error: `${error.name}: ${error.message}` }),
        );
        const outcome = await Promise.race([ran, timedOut]);
        Object.assign(record, { endedAt: this.clock.now, ok: outcome.ok, error: outcome.ok ? undefined : outcome.error });
        this.running--;
        this.idleSince.push(this.clock.now);
        this.activity.note();
        return outcome;
    }

    private takeWarmEnvironment(): boolean {
        const coldBefore = this.clock.now - this.model.lambdaWarmForS;
        while (this.idleSince.length > 0) {
            if ((this.idleSince.pop() as number) >= coldBefore) {
                return true;
            }
        }
        return false;
    }
}

/**
 * Lambda's asynchronous invocation: an event the function has no concurrency for is throttled and
 * retried after 1 s, doubling to 5 minutes; a failed invocation is retried after one minute, then
 * two; an event older than the maximum age is dropped.
 * https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html
 */
export class AsyncDelivery {
    throttles = 0;
    deadLettered = 0;

    constructor(
        private readonly clock: VirtualClock,
        private readonly model: Model,
        private readonly fn: FunctionModel,
    ) {}

    enqueue(event: unknown): void {
        this.attempt({ event, enqueuedAt: this.clock.now, throttled: 0, failed: 0 });
    }

    private attempt(item: { event: unknown; enqueuedAt: number; throttled: number; failed: number }): void {
        if (this.fn.closed) {
            return;
        }
        if (this.clock.now - item.enqueuedAt > this.model.asyncMaxEventAgeS) {
            // Lambda discards it, as it says, without a trace.
            return;
        }
        if (!this.fn.hasCapacity()) {
            this.throttles++;
            item.throttled++;
            this.clock.after(asyncRetryDelay(this.model, item.throttled), () => this.attempt(item));
            return;
        }
        void this.fn.invoke(item.event).then((outcome) => {
            if (outcome.ok) {
                return;
            }
            const delay = this.model.asyncErrorRetryDelaysS[item.failed];
            if (delay === undefined) {
                this.deadLettered++;
                return;
            }
            item.failed++;
            this.clock.after(delay, () => this.attempt(item));
        });
    }
}

/**
 * An SQS event source mapping: Lambda's pollers receive batches (up to the batch size, waiting up
 * to the batching window for a full one), start with five concurrent batches and add up to 300 a
 * minute while messages wait, bounded by the maximum concurrency; a batch's messages are deleted
 * unless the invocation failed or reported them as failures.
 * https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html,
 * https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html
 */
export class QueueMapping {
    private inFlight = 0;
    private backlogSince: number | undefined;
    private nextPump: Entry | undefined;

    constructor(
        private readonly clock: VirtualClock,
        private readonly model: Model,
        private readonly queue: ModelledQueue,
        private readonly fn: FunctionModel,
        private readonly mapping: DeclaredMapping,
        private readonly region: string,
    ) {
        queue.onVisible(() => this.schedulePump(this.model.sqsPickupS));
    }

    /** One pending poll, the earliest asked for. */
    private schedulePump(delayS: number): void {
        const at = this.clock.now + delayS;
        if (this.nextPump !== undefined && !this.nextPump.cancelled && this.nextPump.at <= at) {
            return;
        }
        if (this.nextPump !== undefined) {
            this.clock.cancel(this.nextPump);
        }
        this.nextPump = this.clock.at(at, () => {
            this.nextPump = undefined;
            this.pump();
        });
    }

    private concurrencyLimit(): number {
        const ramp = this.model.esmInitialConcurrency + Math.floor((this.model.esmScaleUpPerMinute * (this.clock.now - (this.backlogSince ?? this.clock.now))) / 60);
        return Math.min(this.mapping.maxConcurrency ?? Infinity, ramp);
    }

    private pump(): void {
        if (this.fn.closed) {
            return;
        }
        if (this.queue.visible().length === 0) {
            this.backlogSince = undefined;
            return;
        }
        this.backlogSince ??= this.clock.now;
        while (this.inFlight < this.concurrencyLimit() && this.fn.hasCapacity()) {
            const waiting = this.queue.visible();
            if (waiting.length === 0) {
                return;
            }
            // A batch goes when it is full or its oldest message has waited the batching window.
            const windowEnds = Math.min(...waiting.map((m) => m.visibleAt)) + this.mapping.windowS;
            if (waiting.length < this.mapping.batchSize && this.clock.now < windowEnds) {
                this.schedulePump(windowEnds - this.clock.now);
                return;
            }
            const batch = this.queue.receive(this.mapping.batchSize);
            if (batch.length === 0) {
                // What was visible went to the dead-letter queue.
                continue;
            }
            this.inFlight++;
            void this.fn.invoke({ Records: batch.map((message) => this.record(message)) }).then((outcome) => {
                this.inFlight--;
                this.finish(batch, outcome);
                this.schedulePump(0);
            });
        }
        // Messages still wait: the ramp allows another batch within the minute.
        this.schedulePump(60 / this.model.esmScaleUpPerMinute);
    }

    private finish(batch: QueuedMessage[], outcome: InvocationOutcome): void {
        if (!outcome.ok) {
            return;
        }
        const failures = this.mapping.reportBatchItemFailures
            ? new Set(((outcome.result as { batchItemFailures?: { itemIdentifier: string }[] } | undefined)?.batchItemFailures ?? []).map((f) => f.itemIdentifier))
            : new Set<string>();
        batch.filter((m) => !failures.has(m.messageId)).forEach((m) => this.queue.delete(m.messageId));
    }

    /** A record as Lambda hands it to the function. */
    private record(message: QueuedMessage): Record<string, unknown> {
        return {
            messageId: message.messageId,
            receiptHandle: message.messageId,
            body: message.body,
            attributes: {
                ApproximateReceiveCount: String(message.receiveCount),
                SentTimestamp: String(this.clock.dateAt(message.sentAt).getTime()),
                ApproximateFirstReceiveTimestamp: String(this.clock.dateAt(this.clock.now).getTime()),
            },
            messageAttributes: {},
            md5OfBody: createHash("md5").update(message.body).digest("hex"),
            eventSource: "aws:sqs",
            eventSourceARN: this.queue.config.arn,
            awsRegion: this.region,
        };
    }
}

/**
 * The rules' patterns as EventBridge evaluates them: each rule is created in moto with an SQS
 * queue as its target, an event is put on the bus, and the rules whose queue received it matched.
 * (moto 5.2's TestEventPattern answers nothing; its PutEvents delivers to SQS targets.)
 */
export class EventRouter {
    private readonly taps = new Map<string, string>();
    /** One event at a time through moto: the taps then hold only that event's messages. */
    private previous: Promise<unknown> = Promise.resolve();

    constructor(
        private readonly events: EventBridgeClient,
        private readonly sqs: SQSClient,
        private readonly activity: Activity,
    ) {}

    async install(rules: DeclaredRule[]): Promise<void> {
        for (const rule of rules.filter((r) => r.pattern !== undefined)) {
            const name = `tap-${createHash("sha256").update(rule.name).digest("hex").slice(0, 16)}`;
            await this.events.send(new PutRuleCommand({ Name: name, EventPattern: rule.pattern }));
            // Received messages never come back within a rehearsal: no deletes needed.
            const url = (await this.sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: { VisibilityTimeout: "43200" } }))).QueueUrl as string;
            const arn = (await this.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }))).Attributes?.QueueArn;
            await this.events.send(new PutTargetsCommand({ Rule: name, Targets: [{ Id: "tap", Arn: arn }] }));
            this.taps.set(rule.name, url);
        }
    }

    /** Names of the rules whose pattern matches the event. */
    matching(event: DeliveredEvent): Promise<string[]> {
        const matched = this.previous.then(() => this.match(event));
        this.previous = matched.catch(() => undefined);
        return this.activity.during(matched);
    }

    private async match(event: DeliveredEvent): Promise<string[]> {
        const put = await this.events.send(new PutEventsCommand({
            Entries: [{ Source: event.source, DetailType: event["detail-type"], Detail: JSON.stringify(event.detail), Resources: event.resources, Time: new Date(event.time) }],
        }));
        if ((put.FailedEntryCount ?? 0) > 0) {
            throw new Error(`moto refused the event: ${JSON.stringify(put.Entries)}`);
        }
        const matched: string[] = [];
        for (const [rule, url] of this.taps) {
            const received = await this.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10 }));
            if ((received.Messages ?? []).length > 0) {
                matched.push(rule);
            }
        }
        return matched;
    }
}
