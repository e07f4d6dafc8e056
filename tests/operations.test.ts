import * as assert from "assert";
import { ProgramRun, runProgram } from "../rehearsal/program";

/** The dashboard and alarms an operator watches. */

const ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm";

describe("operations on the dev stack", () => {
    let run: ProgramRun;
    before(async () => {
        run = await runProgram();
    });

    it("alarms when an event reaches the dead-letter queue", () => {
        const alarm = run.one(ALARM, "-dead-letters");
        assert.strictEqual(alarm.inputs.namespace, "AWS/SQS");
        assert.deepStrictEqual(alarm.inputs.dimensions, { QueueName: run.one("aws:sqs/queue:Queue", "-dlq").state.name });
        assert.strictEqual(alarm.inputs.threshold, 1);
        assert.deepStrictEqual(alarm.inputs.alarmActions, [], "no topic configured");
    });

    it("alarms when an event waits in the handler's queue longer than the two-minute notice", () => {
        const alarm = run.one(ALARM, "-oldest-event");
        assert.deepStrictEqual([alarm.inputs.namespace, alarm.inputs.metricName], ["AWS/SQS", "ApproximateAgeOfOldestMessage"]);
        assert.deepStrictEqual(alarm.inputs.dimensions, { QueueName: run.one("aws:sqs/queue:Queue", "-events").state.name });
        assert.deepStrictEqual([alarm.inputs.threshold, alarm.inputs.comparisonOperator], [120, "GreaterThanThreshold"]);
    });

    it("alarms when a zone stays below its count for longer than two reconcile periods", () => {
        const zoneAlarms = run.ofType(ALARM).filter((alarm) => alarm.name.endsWith("-below-count"));
        assert.deepStrictEqual(zoneAlarms.map((alarm) => alarm.inputs.dimensions.Zone).sort(), ["us-east-2a", "us-east-2b", "us-east-2c"]);
        for (const alarm of zoneAlarms) {
            assert.strictEqual(alarm.inputs.metricName, "InstancesInZone");
            assert.strictEqual(alarm.inputs.dimensions.Stack, "spot-availability/dev");
            assert.strictEqual(alarm.inputs.threshold, 1);
            assert.strictEqual(alarm.inputs.comparisonOperator, "LessThanThreshold");
            assert.strictEqual(alarm.inputs.period, 300);
            assert.ok(alarm.inputs.evaluationPeriods * alarm.inputs.period > 2 * 300, "longer than two reconcile periods");
            assert.strictEqual(alarm.inputs.datapointsToAlarm, alarm.inputs.evaluationPeriods);
        }
    });

    it("alarms as soon as the handler holds back a launch at the stack's ceiling", () => {
        const alarm = run.one(ALARM, "-at-ceiling");
        assert.deepStrictEqual([alarm.inputs.namespace, alarm.inputs.metricName, alarm.inputs.statistic], ["SpotAvailability", "LaunchesRefused", "Sum"]);
        assert.deepStrictEqual(alarm.inputs.dimensions, { Stack: "spot-availability/dev" });
        assert.deepStrictEqual([alarm.inputs.threshold, alarm.inputs.comparisonOperator, alarm.inputs.treatMissingData], [1, "GreaterThanOrEqualToThreshold", "notBreaching"]);
    });

    it("draws instances per zone, warnings, replacements, failures, refused launches, time to registration, dead letters and the oldest event's age", () => {
        const body = JSON.parse(run.one("aws:cloudwatch/dashboard:Dashboard").inputs.dashboardBody);
        const titles = body.widgets.map((widget: any) => widget.properties.title);
        assert.deepStrictEqual(titles.length, 6);
        const metricNames = body.widgets.flatMap((widget: any) => widget.properties.metrics.map((metric: unknown[]) => metric[1]));
        for (const name of ["InstancesInZone", "OnDemandInstancesInZone", "InterruptionWarnings", "Replacements", "ReplacementFailures", "LaunchesRefused", "NoticeToRegisteredMs", "RefillToRegisteredMs", "ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"]) {
            assert.ok(metricNames.includes(name), `${name} is on the dashboard`);
        }
        const byMarket = body.widgets.find((widget: any) => widget.properties.title === "Instances per zone by market").properties.metrics;
        assert.deepStrictEqual(byMarket.filter((metric: any[]) => metric[0].expression).map((metric: any[]) => [metric[0].expression, metric[0].label]), [
            ["all0 - onDemand0", "us-east-2a spot"],
            ["all1 - onDemand1", "us-east-2b spot"],
            ["all2 - onDemand2", "us-east-2c spot"],
        ]);
        assert.strictEqual(run.outputs.dashboardName, "spot-availability-dev-spot");
    });

    it("notifies the configured topic", async () => {
        const topic = "arn:aws:sns:us-east-2:123456789012:ops";
        const withTopic = await runProgram({ config: { "spot-availability:alarmTopicArn": topic } });
        assert.ok(withTopic.ofType(ALARM).every((alarm) => alarm.inputs.alarmActions[0] === topic && alarm.inputs.okActions[0] === topic));
    });
});
