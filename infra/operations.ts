import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { METRIC, METRIC_NAMESPACE } from "../handler/metrics";

/**
 * What an operator watches: a dashboard of the handler's metrics (instances per zone by market,
 * warnings, replacements, failures, time from notice to registration, dead letters, the age of
 * the oldest waiting event) and alarms on dead letters, on an event waiting longer than the
 * interruption notice, and on any zone below its count for longer than two reconcile periods.
 */

/**
 * An event that waited this long missed the two-minute notice it may carry: the function is
 * failing or throttled. (The handler's own drain checks are delayed by less.)
 */
export const OLDEST_EVENT_ALARM_SECONDS = 120;

export interface OperationsArgs {
    stack: string;
    region: string;
    zones: string[];
    instancesPerZone: number;
    reconcileMinutes: number;
    deadLetterQueueName: pulumi.Input<string>;
    eventQueueName: pulumi.Input<string>;
    /** SNS topic the alarms notify; none leaves them on the dashboard only. */
    alarmTopicArn?: string;
}

/** The dashboard's widgets, as CloudWatch's dashboard body expects them. */
export function dashboardBody(args: Omit<OperationsArgs, "deadLetterQueueName" | "eventQueueName" | "alarmTopicArn"> & { deadLetterQueueName: string; eventQueueName: string }): string {
    const stackMetric = (name: string, stat: string, extra: Record<string, string> = {}, options: Record<string, unknown> = {}) =>
        [METRIC_NAMESPACE, name, "Stack", args.stack, ...Object.entries(extra).flat(), { stat, label: Object.values(extra).join(" ") || name, ...options }];
    const widget = (title: string, metrics: unknown[], x: number, y: number, extra: Record<string, unknown> = {}) => ({
        type: "metric",
        x,
        y,
        width: 12,
        height: 6,
        properties: { title, region: args.region, metrics, view: "timeSeries", period: args.reconcileMinutes * 60, ...extra },
    });
    return JSON.stringify({
        widgets: [
            widget("Instances per zone", args.zones.map((zone) => stackMetric(METRIC.instancesInZone, "Minimum", { Zone: zone })), 0, 0, {
                annotations: { horizontal: [{ label: "instancesPerZone", value: args.instancesPerZone }] },
            }),
            // By market: spot is the zone's count less its on-demand fallbacks.
            widget("Instances per zone by market", args.zones.flatMap((zone, i) => [
                stackMetric(METRIC.instancesInZone, "Average", { Zone: zone }, { id: `all${i}`, visible: false }),
                stackMetric(METRIC.onDemandInZone, "Average", { Zone: zone }, { id: `onDemand${i}`, label: `${zone} on-demand` }),
                [{ expression: `all${i} - onDemand${i}`, id: `spot${i}`, label: `${zone} spot` }],
            ]), 12, 0, { stacked: true }),
            widget("Warnings, replacements, failures, launches refused at the ceiling", [
                stackMetric(METRIC.warnings, "Sum"),
                stackMetric(METRIC.replacements, "Sum"),
                stackMetric(METRIC.failures, "Sum"),
                stackMetric(METRIC.launchesRefused, "Sum"),
            ], 0, 6),
            widget("Notice (or refill launch) to registered (ms); InService follows two 5 s health checks later", [
                stackMetric(METRIC.noticeToRegistered, "p50"),
                stackMetric(METRIC.noticeToRegistered, "Maximum"),
                stackMetric(METRIC.refillToRegistered, "Maximum"),
            ], 12, 6),
            widget("Events in the dead-letter queue", [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", args.deadLetterQueueName, { stat: "Maximum" }]], 0, 12),
            widget("Age of the oldest waiting event (s)", [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", args.eventQueueName, { stat: "Maximum" }]], 12, 12, {
                annotations: { horizontal: [{ label: "interruption notice", value: OLDEST_EVENT_ALARM_SECONDS }] },
            }),
        ],
    });
}

export class Operations extends pulumi.ComponentResource {
    public readonly dashboardName: pulumi.Output<string>;
    public readonly alarms: aws.cloudwatch.MetricAlarm[];

    constructor(name: string, args: OperationsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:Operations", name, {}, opts);
        const actions = args.alarmTopicArn === undefined ? [] : [args.alarmTopicArn];

        const dashboard = new aws.cloudwatch.Dashboard(name, {
            dashboardName: `${args.stack.replace(/[^A-Za-z0-9_-]/g, "-")}-spot`,
            dashboardBody: pulumi.all([args.deadLetterQueueName, args.eventQueueName]).apply(([deadLetterQueueName, eventQueueName]) => dashboardBody({ ...args, deadLetterQueueName, eventQueueName })),
        }, { parent: this });

        // Every alarm notifies the topic (if any) when it fires and when it clears.
        const alarm = (suffix: string, props: Omit<aws.cloudwatch.MetricAlarmArgs, "alarmActions" | "okActions">) =>
            new aws.cloudwatch.MetricAlarm(`${name}-${suffix}`, { ...props, alarmActions: actions, okActions: actions }, { parent: this });
        this.alarms = [
            alarm("dead-letters", {
                alarmDescription: `${args.stack}: an event the handler could not act on reached the dead-letter queue`,
                namespace: "AWS/SQS",
                metricName: "ApproximateNumberOfMessagesVisible",
                dimensions: { QueueName: args.deadLetterQueueName },
                statistic: "Maximum",
                period: 300,
                evaluationPeriods: 1,
                threshold: 1,
                comparisonOperator: "GreaterThanOrEqualToThreshold",
                treatMissingData: "notBreaching",
            }),
            alarm("oldest-event", {
                alarmDescription: `${args.stack}: an event has waited in the handler's queue longer than the ${OLDEST_EVENT_ALARM_SECONDS} s interruption notice`,
                namespace: "AWS/SQS",
                metricName: "ApproximateAgeOfOldestMessage",
                dimensions: { QueueName: args.eventQueueName },
                statistic: "Maximum",
                period: 60,
                evaluationPeriods: 1,
                threshold: OLDEST_EVENT_ALARM_SECONDS,
                comparisonOperator: "GreaterThanThreshold",
                treatMissingData: "notBreaching",
            }),
            alarm("at-ceiling", {
                alarmDescription: `${args.stack}: the handler held back a launch because the stack already runs its ceiling of instances (twice the fleet and one per zone): something keeps instances it should have retired`,
                namespace: METRIC_NAMESPACE,
                metricName: METRIC.launchesRefused,
                dimensions: { Stack: args.stack },
                statistic: "Sum",
                period: 300,
                evaluationPeriods: 1,
                threshold: 1,
                comparisonOperator: "GreaterThanOrEqualToThreshold",
                treatMissingData: "notBreaching",
            }),
            ...args.zones.map((zone) => alarm(`${zone}-below-count`, {
                alarmDescription: `${args.stack}: ${zone} has held fewer than ${args.instancesPerZone} instances for longer than two reconcile periods`,
                namespace: METRIC_NAMESPACE,
                metricName: METRIC.instancesInZone,
                dimensions: { Stack: args.stack, Zone: zone },
                statistic: "Minimum",
                period: args.reconcileMinutes * 60,
                // Three periods in a row: longer than two reconcile periods.
                evaluationPeriods: 3,
                datapointsToAlarm: 3,
                threshold: args.instancesPerZone,
                comparisonOperator: "LessThanThreshold",
                // The handler reports every period; silence means it is not running.
                treatMissingData: "breaching",
            })),
        ];
        this.dashboardName = dashboard.dashboardName;
        this.registerOutputs({ dashboardName: this.dashboardName });
    }
}
