/**
 * CloudWatch metrics in the embedded metric format: one JSON line per data point, which
 * CloudWatch Logs turns into metrics without a PutMetricData call (and without its permission).
 */

export const METRIC_NAMESPACE = "SpotAvailability";

export const METRIC = {
    warnings: "InterruptionWarnings",
    replacements: "Replacements",
    failures: "ReplacementFailures",
    /** Milliseconds from AWS's notice (warning or recommendation) to its replacement's registration. */
    noticeToRegistered: "NoticeToRegisteredMs",
    /** Milliseconds from a refill's launch (lost capacity, reconcile) to its registration. */
    refillToRegistered: "RefillToRegisteredMs",
    instancesInZone: "InstancesInZone",
    onDemandInZone: "OnDemandInstancesInZone",
    /** Launches held back because the stack already runs its ceiling of instances (handler/ceiling.ts). */
    launchesRefused: "LaunchesRefused",
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];

const UNITS: Record<MetricName, string> = {
    InterruptionWarnings: "Count",
    Replacements: "Count",
    ReplacementFailures: "Count",
    NoticeToRegisteredMs: "Milliseconds",
    RefillToRegisteredMs: "Milliseconds",
    InstancesInZone: "Count",
    OnDemandInstancesInZone: "Count",
    LaunchesRefused: "Count",
};

/** One EMF document: `values` under `dimensions` (always with the stack), plus free-form properties. */
export function metricLine(
    stack: string,
    values: Partial<Record<MetricName, number>>,
    dimensions: Record<string, string> = {},
    properties: Record<string, unknown> = {},
    timestamp = Date.now(),
): string {
    const names = Object.keys(values) as MetricName[];
    return JSON.stringify({
        _aws: {
            Timestamp: timestamp,
            CloudWatchMetrics: [{
                Namespace: METRIC_NAMESPACE,
                Dimensions: [["Stack", ...Object.keys(dimensions)]],
                Metrics: names.map((name) => ({ Name: name, Unit: UNITS[name] })),
            }],
        },
        Stack: stack,
        ...dimensions,
        ...values,
        ...properties,
    });
}
