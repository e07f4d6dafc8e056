import * as assert from "assert";
import { EVENT_PATTERNS } from "../infra/interruptionHandling";
import { Activity, advance, VirtualClock } from "../rehearsal/clock";
import { declaredEventPath, FunctionModel, QueueMapping, scheduleSeconds } from "../rehearsal/delivery";
import { DEFAULT_MODEL } from "../rehearsal/model";
import { ACCOUNT_ID, runProgram } from "../rehearsal/program";
import { ModelledQueue } from "../rehearsal/queue";

/**
 * How events reach the function: read from the program as it declares it, and, for an SQS queue
 * read by an event source mapping, batched and retried as Lambda documents it.
 */

describe("the event path the rehearsal delivers through", () => {
    it("is read from the program: every rule and its queue, the mapping, the function's timeout, the schedule", async () => {
        const run = await runProgram();
        const path = declaredEventPath(run);
        const fn = run.one("aws:lambda/function:Function", "-handler");
        const queue = run.one("aws:sqs/queue:Queue", "-events");
        const mapping = run.one("aws:lambda/eventSourceMapping:EventSourceMapping").inputs;
        assert.strictEqual(path.functionArn, fn.state.arn);
        assert.strictEqual(path.timeoutS, fn.inputs.timeout);
        assert.strictEqual(path.reservedConcurrency, undefined);
        assert.deepStrictEqual(path.mappings, [{
            queueArn: queue.state.arn,
            batchSize: mapping.batchSize,
            windowS: mapping.maximumBatchingWindowInSeconds,
            maxConcurrency: mapping.scalingConfig.maximumConcurrency,
            reportBatchItemFailures: true,
        }]);
        assert.deepStrictEqual(path.queues.find((q) => q.arn === queue.state.arn), { arn: queue.state.arn, url: queue.id, visibilityTimeoutS: queue.inputs.visibilityTimeoutSeconds, maxReceiveCount: 5 });
        assert.deepStrictEqual(path.rules.filter((r) => r.pattern !== undefined).map((r) => JSON.parse(r.pattern as string)).sort((a, b) => a["detail-type"][0].localeCompare(b["detail-type"][0])),
            Object.values(EVENT_PATTERNS).map((pattern) => ({ ...pattern, account: [ACCOUNT_ID] })).sort((a, b) => a["detail-type"][0].localeCompare(b["detail-type"][0])));
        assert.deepStrictEqual(path.rules.filter((r) => r.everyS !== undefined).map((r) => r.everyS), [300]);
        assert.ok(path.rules.every((rule) => rule.targets.length === 1 && rule.targets[0] === queue.state.arn));
    });

    it("reads rate(...) schedules and refuses what it does not model", () => {
        assert.deepStrictEqual(["rate(1 minute)", "rate(5 minutes)", "rate(2 hours)"].map(scheduleSeconds), [60, 300, 7200]);
        assert.throws(() => scheduleSeconds("cron(0 12 * * ? *)"), /models rate\(\.\.\.\) schedules, not cron/);
    });

    describe("an SQS queue read by an event source mapping", () => {
        function mapping(options: { batchSize: number; windowS: number; maxConcurrency?: number; reportBatchItemFailures?: boolean; maxReceiveCount?: number; fail?: (body: string) => boolean }) {
            const clock = new VirtualClock(0);
            const activity = new Activity();
            const batches: { at: number; bodies: string[] }[] = [];
            let running = 0;
            let mostAtOnce = 0;
            const handler = async (payload: unknown) => {
                const records = (payload as { Records: { messageId: string; body: string }[] }).Records;
                batches.push({ at: clock.now, bodies: records.map((r) => r.body) });
                mostAtOnce = Math.max(mostAtOnce, ++running);
                await clock.sleep(10);
                running--;
                return { batchItemFailures: records.filter((r) => options.fail?.(r.body)).map((r) => ({ itemIdentifier: r.messageId })) };
            };
            const fn = new FunctionModel(clock, { ...DEFAULT_MODEL, lambdaColdStartS: 0 }, activity, handler, { timeoutS: 60, concurrency: 1000 });
            const queue = new ModelledQueue(clock, { arn: "arn:aws:sqs:us-east-2:123456789012:events", url: "https://sqs/events", visibilityTimeoutS: 30, maxReceiveCount: options.maxReceiveCount });
            new QueueMapping(clock, DEFAULT_MODEL, queue, fn, { queueArn: queue.config.arn, reportBatchItemFailures: options.reportBatchItemFailures ?? true, ...options }, "us-east-2");
            return { clock, activity, queue, batches, mostAtOnce: () => mostAtOnce };
        }

        it("runs no more batches at once than the maximum concurrency", async () => {
            const { clock, activity, queue, batches, mostAtOnce } = mapping({ batchSize: 10, windowS: 1, maxConcurrency: 2 });
            for (let i = 0; i < 25; i++) {
                queue.send(`event-${i}`);
            }
            await advance(clock, activity, { until: 600 });
            assert.deepStrictEqual(batches.map((b) => b.bodies.length), [10, 10, 5]);
            assert.strictEqual(mostAtOnce(), 2);
            // Two full batches at the first poll; the third when a slot frees, 10 s later.
            assert.deepStrictEqual(batches.map((b) => Math.round(b.at * 100) / 100), [0.1, 0.1, 10.1]);
            assert.strictEqual(queue.messages.length, 0, "every message deleted");
        });

        it("sends a batch that does not fill once its oldest message has waited the batching window", async () => {
            const { clock, activity, queue, batches } = mapping({ batchSize: 10, windowS: 1 });
            clock.at(0, () => queue.send("first"));
            clock.at(0.5, () => queue.send("second"));
            await advance(clock, activity, { until: 600 });
            assert.deepStrictEqual(batches, [{ at: 1, bodies: ["first", "second"] }]);
        });

        it("redelivers only the reported failures after the visibility timeout, and moves a message that keeps failing to the dead-letter queue", async () => {
            const { clock, activity, queue, batches } = mapping({ batchSize: 10, windowS: 0, maxReceiveCount: 3, fail: (body) => body === "poison" });
            queue.send("good");
            queue.send("poison");
            await advance(clock, activity, { until: 600 });
            assert.deepStrictEqual(batches.map((b) => b.bodies), [["good", "poison"], ["poison"], ["poison"]]);
            assert.deepStrictEqual(batches.map((b) => Math.round(b.at)), [0, 30, 60], "again once the visibility timeout ends");
            assert.deepStrictEqual(queue.deadLetters.map((m) => m.body), ["poison"]);
        });
    });
});
