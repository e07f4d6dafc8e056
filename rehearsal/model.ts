/**
 * The model of AWS's clock the rehearsal runs on: every parameter, its default and where the
 * default comes from. The README's table lists the same; `npm run bench` prints the values used.
 * Where AWS publishes no figure the source says so and names the assumption.
 */

export interface Model {
    /** Seeds every draw (EC2 timings, delivery latency, the code's own jitter): one seed, one replay. */
    seed: number;
    eventBridgeDelayS: number;
    eventBridgeDelaySigma: number;
    apiLatencyS: number;
    runInstancesLatencyS: number;
    lambdaColdStartS: number;
    lambdaWarmForS: number;
    accountConcurrency: number;
    asyncRetryFirstS: number;
    asyncRetryMaxS: number;
    asyncMaxEventAgeS: number;
    asyncErrorRetryDelaysS: number[];
    sqsPickupS: number;
    esmInitialConcurrency: number;
    esmScaleUpPerMinute: number;
    pendingS: number;
    pendingSigma: number;
    bootS: number;
    bootSigma: number;
    interruptionNoticeS: number;
    shuttingDownS: number;
    rebalanceWithWarning: boolean;
    reclaimedPoolEmptyS: number;
    healthCheckIntervalS: number;
    healthyThreshold: number;
    unhealthyThreshold: number;
    deregistrationDelayS: number;
    asgHealthCheckIntervalS: number;
    asgInstanceWarmupS: number;
}

export const DEFAULT_MODEL: Model = {
    seed: 20_261_124,
    eventBridgeDelayS: 0.5,
    eventBridgeDelaySigma: 0.5,
    apiLatencyS: 0.1,
    runInstancesLatencyS: 1.5,
    lambdaColdStartS: 0.5,
    lambdaWarmForS: 300,
    accountConcurrency: 1000,
    asyncRetryFirstS: 1,
    asyncRetryMaxS: 300,
    asyncMaxEventAgeS: 6 * 3600,
    asyncErrorRetryDelaysS: [60, 120],
    sqsPickupS: 0.1,
    esmInitialConcurrency: 5,
    esmScaleUpPerMinute: 300,
    pendingS: 18,
    pendingSigma: 0.15,
    bootS: 12,
    bootSigma: 0.15,
    interruptionNoticeS: 120,
    shuttingDownS: 30,
    rebalanceWithWarning: true,
    reclaimedPoolEmptyS: 120,
    // AWS's target group defaults; a rehearsal takes the program's declared target group instead.
    healthCheckIntervalS: 30,
    healthyThreshold: 5,
    unhealthyThreshold: 2,
    deregistrationDelayS: 300,
    asgHealthCheckIntervalS: 10,
    asgInstanceWarmupS: 60,
};

export interface ParameterSource {
    meaning: string;
    source: string;
}

export const MODEL_SOURCES: Record<keyof Model, ParameterSource> = {
    seed: { meaning: "seed of every random draw", source: "the rehearsal's own: a fixed seed makes runs reproducible" },
    eventBridgeDelayS: {
        meaning: "EventBridge delivery, event to target (median of a log-normal)",
        source: "PostNL's measurement after EventBridge's latency improvement, https://medium.com/postnl-engineering/improved-eventbridge-latency-opens-up-new-use-cases-at-postnl-910fdf6b5dde; SPEC's budget: ~1 s with queue and batch",
    },
    eventBridgeDelaySigma: { meaning: "spread (σ of its logarithm)", source: "assumption: p95 ≈ 2.3 × median" },
    apiLatencyS: { meaning: "latency of an AWS API call other than RunInstances", source: "assumption: AWS publishes none; 100 ms is a common control-plane read" },
    runInstancesLatencyS: {
        meaning: "latency of RunInstances (answer or capacity error)",
        source: "ec2-boot-bench measured 1.54 s, http://www.daemonology.net/blog/2021-08-12-EC2-boot-time-benchmarking.html",
    },
    lambdaColdStartS: {
        meaning: "Lambda cold start (new execution environment, Node.js, small archive)",
        source: "AWS: cold starts 'vary from under 100 ms to over 1 second', https://aws.amazon.com/blogs/compute/operating-lambda-performance-optimization-part-1/",
    },
    lambdaWarmForS: {
        meaning: "how long an idle execution environment stays warm",
        source: "AWS: kept for 'a non-deterministic period', https://aws.amazon.com/blogs/compute/operating-lambda-performance-optimization-part-1/; assumption: 5 minutes",
    },
    accountConcurrency: { meaning: "unreserved concurrency of the account", source: "AWS default quota of 1,000 (new accounts: 10), https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html" },
    asyncRetryFirstS: {
        meaning: "first retry of a throttled asynchronous event",
        source: "AWS: 'increases exponentially from 1 second ... to a maximum of 5 minutes', https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html",
    },
    asyncRetryMaxS: { meaning: "longest wait between retries of a throttled event", source: "same page: 5 minutes" },
    asyncMaxEventAgeS: { meaning: "an asynchronous event older than this is dropped", source: "same page: 6 hours by default" },
    asyncErrorRetryDelaysS: { meaning: "waits before the two retries of an event whose invocation failed", source: "same page: one minute, then two" },
    sqsPickupS: {
        meaning: "from a message becoming visible to Lambda's long poll receiving it",
        source: "assumption: long polling answers as soon as a message arrives, https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html",
    },
    esmInitialConcurrency: { meaning: "concurrent batches an SQS event source mapping starts with", source: "AWS: 'starts processing five batches at a time', https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html" },
    esmScaleUpPerMinute: { meaning: "how fast it adds concurrent batches while messages wait", source: "same page: up to 300 more per minute" },
    pendingS: {
        meaning: "EC2 pending → running (median of a log-normal)",
        source: "measured 16.4–18 s, https://github.com/brevdev/ec2-coldboot-research; AL2023 fastest to boot, http://www.martysweet.co.uk/ec2-launch-times/",
    },
    pendingSigma: { meaning: "spread (σ of its logarithm)", source: "assumption: p95 ≈ 1.3 × median" },
    bootS: {
        meaning: "running → the health path answers (built-in page on Amazon Linux 2023)",
        source: "boot to SSH 3–9 s, https://github.com/brevdev/ec2-coldboot-research; SPEC's budget: 10–15 s with cloud-init and the page",
    },
    bootSigma: { meaning: "spread (σ of its logarithm)", source: "assumption: p95 ≈ 1.3 × median" },
    interruptionNoticeS: {
        meaning: "warning → the instance is interrupted (shutting-down)",
        source: "AWS: 'issued two minutes before', https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html",
    },
    shuttingDownS: {
        meaning: "shutting-down → terminated",
        source: "AWS: longer than 'a few minutes' is delayed, https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/TroubleshootingInstancesShuttingDown.html; assumption: 30 s",
    },
    rebalanceWithWarning: {
        meaning: "a rebalance recommendation accompanies every warning that has none earlier",
        source: "AWS: EC2 'always gives both' and the recommendation 'can arrive along with' the notice, https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/rebalance-recommendations.html",
    },
    reclaimedPoolEmptyS: {
        meaning: "the pool (zone, type, spot) an instance is reclaimed from has no spot capacity from its warning for this long",
        source: "AWS: EC2 interrupts when it 'needs the capacity back', https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/interruption-reasons.html; assumption: until the interruption",
    },
    healthCheckIntervalS: {
        meaning: "ALB health check interval (the program's target group overrides)",
        source: "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html",
    },
    healthyThreshold: { meaning: "passing checks before a target is healthy (program overrides)", source: "same page" },
    unhealthyThreshold: { meaning: "failing checks before a target is unhealthy (program overrides)", source: "same page" },
    deregistrationDelayS: {
        meaning: "a deregistered target stays draining this long (program overrides)",
        source: "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-target-groups.html#deregistration-delay",
    },
    asgHealthCheckIntervalS: {
        meaning: "how often an Auto Scaling group notices an instance that is no longer running",
        source: "AWS: replaced after the interruption 'and its health check fails', https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-capacity-rebalancing.html; assumption: 10 s",
    },
    asgInstanceWarmupS: {
        meaning: "an instance refresh waits this long after a new instance enters InService (and passes its health checks) before it moves on",
        source: "AWS: DefaultInstanceWarmup, 'recommended in all cases', else the health check grace period (300 s in the console), https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html; assumption: set to a minute, about the application's start",
    },
};

/** A draw from a log-normal with the given median and σ of its logarithm (Box–Muller). */
export function logNormal(median: number, sigma: number, random: () => number): number {
    const u = Math.max(random(), Number.EPSILON);
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
    return median * Math.exp(sigma * z);
}

/** Seconds a throttled asynchronous event waits before its `attempt`-th retry (1-based): 1, 2, 4 … 300. */
export function asyncRetryDelay(model: Model, attempt: number): number {
    return Math.min(model.asyncRetryMaxS, model.asyncRetryFirstS * 2 ** (attempt - 1));
}

/**
 * When a registered target turns healthy: `healthyThreshold` passing checks, `interval` apart,
 * once both the registration and the application's first answer have happened.
 */
export function healthyAt(model: Model, registeredAt: number, answersFrom: number): number {
    return Math.max(registeredAt, answersFrom) + model.healthyThreshold * model.healthCheckIntervalS;
}

/** When a target whose application stopped answering at `stoppedAt` turns unhealthy. */
export function unhealthyAt(model: Model, stoppedAt: number): number {
    return stoppedAt + model.unhealthyThreshold * model.healthCheckIntervalS;
}
