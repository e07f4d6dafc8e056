import { createHash, randomUUID } from "crypto";
import {
    _InstanceType,
    DescribeLaunchTemplatesCommand,
    DescribeSpotPriceHistoryCommand,
    EC2Client,
    GetConsoleOutputCommand,
    Instance,
    ModifyLaunchTemplateCommand,
    paginateDescribeInstances,
    RunInstancesCommand,
    TerminateInstancesCommand,
    waitUntilInstanceRunning,
    waitUntilInstanceTerminated,
} from "@aws-sdk/client-ec2";
import {
    DeregisterTargetsCommand,
    DescribeTargetHealthCommand,
    ElasticLoadBalancingV2Client,
    RegisterTargetsCommand,
    waitUntilTargetDeregistered,
    waitUntilTargetInService,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { AdaptiveRetryStrategy } from "@smithy/util-retry";
import type { RetryErrorInfo, RetryStrategyV2, RetryToken } from "@smithy/types";
import { INSTANCE_STATES, InstanceState, OWN_DETAIL_TYPE, ownMessage } from "./events";
import { DrainTimer, LaunchAttempt, Observation, ObservedInstance, poolKey, SpotPrices, TargetState } from "./model";
import { HandlerSettings } from "./settings";
import { instanceTags, LaunchedBy, TAG } from "./tags";

/**
 * The thin AWS side of the handler: observe the stack's instances, targets and prices in one
 * round; launch, drain, register, terminate; set timers as delayed messages on the handler's own
 * queue. Retries are the SDK's (adaptive mode), except for capacity errors: the next pool is their retry.
 */

/** RunInstances errors that mean "this pool has no capacity for us now": try the next pool. */
export const CAPACITY_ERRORS = [
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "UnfulfillableCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "Unsupported",
];

/** Attempts per call, as the SDK counts them (the first one included). */
const MAX_ATTEMPTS = 6;

/** SQS takes at most ten messages per SendMessageBatch: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html */
const SEND_BATCH_SIZE = 10;

export interface AwsClients {
    ec2: EC2Client;
    elb: ElasticLoadBalancingV2Client;
    sqs: SQSClient;
}

/**
 * Refusals that mean IAM has not propagated yet, not that the request is wrong: EC2 refuses a
 * new instance profile for seconds after IAM created it, and every service refuses a freshly
 * attached policy's actions for as long. terraform-provider-aws retries the first for its
 * two-minute `propagationTimeout` (`internal/service/ec2/ec2_instance.go`: `ErrMessageContains(err,
 * "InvalidParameterValue", "Invalid IAM Instance Profile")`).
 */
export function isIamPropagation(error: unknown): boolean {
    const { name = "", message = "" } = (error ?? {}) as { name?: string; message?: string };
    return (name === "InvalidParameterValue" && /Invalid IAM Instance Profile/i.test(message))
        || ["UnauthorizedOperation", "AccessDenied", "AccessDeniedException"].includes(name);
}

/** How long, and how often, a refusal that IAM propagation explains is retried. */
export interface PropagationRetry {
    delaySeconds: number;
    maxSeconds: number;
    /** Told of each retry: the log says why a launch waits. */
    onRetry?: (retry: { error: string; attempt: number; waitedSeconds: number }) => void;
}

export const IAM_PROPAGATION_RETRY: PropagationRetry = { delaySeconds: 5, maxSeconds: 120 };

/** A retry of an IAM propagation refusal: its count is the SDK's, its delay the propagation's. */
class PropagationToken implements RetryToken {
    constructor(private readonly count: number, private readonly delayMs: number) {}
    getRetryCount(): number {
        return this.count;
    }
    getRetryDelay(): number {
        return this.delayMs;
    }
    getRetryCost(): number | undefined {
        return undefined;
    }
    isLongPoll(): boolean {
        return false;
    }
}

/**
 * The SDK's adaptive retry strategy, except that a capacity error is final and, on the deploy path,
 * an IAM propagation refusal is retried for its own bounded time. AWS answers a capacity error with HTTP 500, which
 * the SDK retries as transient; retrying a pool that has no capacity spends the two-minute budget
 * for nothing. The SDK treats a propagation refusal as a client error and never retries it; a
 * first `pulumi up` would fail on a race with IAM. Passed as the client's `retryStrategy`, the
 * SDK's public way to configure retries: https://www.npmjs.com/package/@smithy/util-retry
 */
export class HandlerRetryStrategy implements RetryStrategyV2 {
    constructor(
        /** Undefined: a propagation refusal is final, as the SDK has it. */
        private readonly propagation?: PropagationRetry,
        private readonly inner: RetryStrategyV2 = new AdaptiveRetryStrategy(async () => MAX_ATTEMPTS),
    ) {}

    acquireInitialRetryToken(scope: string): Promise<RetryToken> {
        return this.inner.acquireInitialRetryToken(scope);
    }

    refreshRetryTokenForRetry(token: RetryToken, info: RetryErrorInfo): Promise<RetryToken> {
        const name = (info.error as { name?: string } | undefined)?.name ?? "";
        if (CAPACITY_ERRORS.includes(name)) {
            return Promise.reject(info.error);
        }
        if (this.propagation === undefined || !isIamPropagation(info.error)) {
            return this.inner.refreshRetryTokenForRetry(token, info);
        }
        const attempt = token.getRetryCount() + 1;
        const waitedSeconds = Math.round((attempt - 1) * this.propagation.delaySeconds * 10) / 10;
        const message = (info.error as { message?: string } | undefined)?.message ?? name;
        if (waitedSeconds + this.propagation.delaySeconds > this.propagation.maxSeconds) {
            return Promise.reject(Object.assign(info.error as Error, {
                message: `${message} (still refused after ${waitedSeconds} s of retries: IAM had not propagated the instance profile or the role's policy, or the role really lacks the permission)`,
            }));
        }
        this.propagation.onRetry?.({ error: `${name}: ${message}`, attempt, waitedSeconds });
        return Promise.resolve(new PropagationToken(attempt, this.propagation.delaySeconds * 1000));
    }

    recordSuccess(token: RetryToken): void {
        if (!(token instanceof PropagationToken)) {
            this.inner.recordSuccess(token);
        }
    }
}

/** Where the clients connect, and how they retry a refusal that IAM propagation explains. */
export interface ClientOptions {
    endpoint?: string;
    credentials?: { accessKeyId: string; secretAccessKey: string };
    propagation?: PropagationRetry;
}

/**
 * Clients as Lambda should hold them: once per container. In Lambda, credentials and endpoint
 * come from the runtime; `endpoint` and `credentials` are for an emulator.
 */
export function createClients(region: string, options: ClientOptions = {}): AwsClients {
    const { propagation, ...connection } = options;
    const config = { region, maxAttempts: MAX_ATTEMPTS, ...connection };
    const retryStrategy = () => new HandlerRetryStrategy(propagation);
    return {
        ec2: new EC2Client({ ...config, retryStrategy: retryStrategy() }),
        elb: new ElasticLoadBalancingV2Client({ ...config, retryStrategy: retryStrategy() }),
        // The region's endpoint (or the configured one), not the host the queue URL names.
        sqs: new SQSClient({ ...config, retryStrategy: retryStrategy(), useQueueUrlAsEndpoint: false }),
    };
}

export interface LaunchFailure {
    attempt: LaunchAttempt;
    code: string;
}

export type LaunchOutcome =
    | { launched: true; instanceId: string; attempt: LaunchAttempt; failures: LaunchFailure[] }
    /** Another batch already filled this place (its ClientToken launched with other parameters). */
    | { launched: false; claimed: true; failures: LaunchFailure[] }
    | { launched: false; claimed: false; failures: LaunchFailure[] };

export interface LaunchRequest {
    attempts: LaunchAttempt[];
    /** The place being filled: the ClientToken derives from it, whatever the pool. */
    key: string;
    replaces?: string;
    noticedAt?: number;
    /** The launch template version; the default (released) one when undefined. */
    version?: number;
}

/** A target as DescribeTargetHealth lists it. */
export interface RegisteredTarget {
    instanceId: string;
    state: TargetState;
    /** ELB's reason code and description, e.g. `Target.FailedHealthChecks`, when not healthy. */
    reason?: string;
    description?: string;
}

/** The launch template version EC2 records on each instance it launches from one: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-launch-templates.html */
export const LAUNCH_TEMPLATE_VERSION_TAG = "aws:ec2launchtemplate:version";

/** Console lines kept for a failed release's error: the end of the boot, where a user data script fails. */
const CONSOLE_TAIL_LINES = 15;

function errorName(error: unknown): string {
    return (error as { name?: string }).name ?? "Error";
}

/**
 * The ClientToken of a place: the same for every pool and every batch that fills it. A failed
 * launch reserves nothing, so the next pool may use it; once one launch succeeded, the same
 * request returns that instance and any other request answers IdempotentParameterMismatch.
 * EC2 remembers a token after the instance is gone, so the launch template (created anew by each
 * `pulumi up` after a `pulumi destroy`) is part of it: a new stack of the same name never gets
 * the old stack's terminated instances back. https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html
 */
export function clientToken(stack: string, launchTemplateId: string, key: string): string {
    return createHash("sha256").update(`${stack}|${launchTemplateId}|${key}`).digest("hex");
}

/**
 * The first spot launch of an account needs EC2 Spot's service-linked role; EC2 creates it only
 * for a caller allowed to, which the handler's role is not.
 * https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/service-linked-roles-spot-instance-requests.html
 */
export const SPOT_ROLE_MISSING = "AuthFailure.ServiceLinkedRoleCreationNotPermitted";
export const SPOT_ROLE_COMMAND = "aws iam create-service-linked-role --aws-service-name spot.amazonaws.com";

function tagValue(instance: Instance, key: string): string | undefined {
    return instance.Tags?.find((tag) => tag.Key === key)?.Value;
}

export function toObservedInstance(instance: Instance): ObservedInstance | undefined {
    const state = instance.State?.Name as InstanceState | undefined;
    const zone = instance.Placement?.AvailabilityZone;
    if (!instance.InstanceId || !zone || !state || !INSTANCE_STATES.includes(state) || !instance.InstanceType) {
        return undefined;
    }
    const launchedBy = tagValue(instance, TAG.launchedBy);
    const noticedAt = Date.parse(tagValue(instance, TAG.noticedAt) ?? "");
    const version = Number.parseInt(tagValue(instance, LAUNCH_TEMPLATE_VERSION_TAG) ?? "", 10);
    return {
        id: instance.InstanceId,
        // The zone the instance holds is where it runs; the tag only records intent.
        zone,
        state,
        instanceType: instance.InstanceType,
        market: instance.InstanceLifecycle === "spot" ? "spot" : "on-demand",
        launchedBy: launchedBy === "pulumi" || launchedBy === "handler" ? launchedBy : undefined,
        replaces: tagValue(instance, TAG.replaces),
        launchTime: instance.LaunchTime?.getTime() ?? 0,
        ...(Number.isNaN(noticedAt) ? {} : { noticedAt }),
        ...(Number.isNaN(version) ? {} : { version }),
    };
}

/**
 * Every instance carrying the stack's tag, in the given states (all when none are given): one
 * paginated DescribeInstances, whatever the zone count.
 */
export async function describeStackInstances(ec2: EC2Client, stack: string, states?: InstanceState[]): Promise<ObservedInstance[]> {
    const observed: ObservedInstance[] = [];
    const pages = paginateDescribeInstances({ client: ec2 }, {
        Filters: [
            { Name: `tag:${TAG.stack}`, Values: [stack] },
            ...(states === undefined ? [] : [{ Name: "instance-state-name", Values: states }]),
        ],
    });
    for await (const page of pages) {
        for (const instance of (page.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? [])) {
            const parsed = toObservedInstance(instance);
            if (parsed) {
                observed.push(parsed);
            }
        }
    }
    return observed;
}

/** How long the deploy path may wait for instances or targets to reach a state. */
export interface WaitLimit {
    maxWaitSeconds: number;
}

export class StackFleet {
    constructor(
        private readonly clients: AwsClients,
        private readonly settings: HandlerSettings,
        /** What its launches are tagged as: the handler answering events, or the deploy. */
        private readonly launchedBy: LaunchedBy = "handler",
    ) {}

    /**
     * The stack as one parallel round reads it: instances, targets, the preferred type's spot prices
     * and the template's released version when asked for.
     */
    async observe(options: { prices: boolean; template?: boolean }): Promise<Observation> {
        const [instances, targets, prices, releasedVersion] = await Promise.all([
            describeStackInstances(this.clients.ec2, this.settings.stack),
            this.describeTargets(),
            options.prices ? this.spotPrices() : Promise.resolve(undefined),
            options.template ? this.releasedVersion() : Promise.resolve(undefined),
        ]);
        const preferred = this.settings.instanceTypes[0];
        return {
            instances,
            targets,
            ...(releasedVersion === undefined ? {} : { releasedVersion }),
            ...(prices === undefined ? {} : {
                spotPrices: prices,
                prices: Object.fromEntries(Object.entries(prices).filter(([, byType]) => preferred in byType).map(([zone, byType]) => [zone, byType[preferred]])),
            }),
        };
    }

    async describeTargets(): Promise<Record<string, TargetState>> {
        const targets = await this.targetsOf(this.settings.targetGroupArn);
        return Object.fromEntries(targets.map((t) => [t.instanceId, t.state]));
    }

    /** Every target of a target group, this stack's or the one a replaced group held. */
    async targetsOf(targetGroupArn: string, instanceIds?: string[]): Promise<RegisteredTarget[]> {
        const result = await this.clients.elb.send(new DescribeTargetHealthCommand({
            TargetGroupArn: targetGroupArn,
            ...(instanceIds === undefined ? {} : { Targets: instanceIds.map((Id) => ({ Id })) }),
        }));
        return (result.TargetHealthDescriptions ?? [])
            .filter((description) => description.Target?.Id)
            .map((description) => ({
                instanceId: description.Target?.Id as string,
                state: (description.TargetHealth?.State ?? "unavailable") as TargetState,
                reason: description.TargetHealth?.Reason,
                description: description.TargetHealth?.Description,
            }));
    }

    /** The template's default version: the released one, which the event path launches. */
    async releasedVersion(): Promise<number | undefined> {
        const result = await this.clients.ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateIds: [this.settings.launchTemplateId] }));
        return result.LaunchTemplates?.[0]?.DefaultVersionNumber;
    }

    /** Makes a version the template's default: from then on the event path launches it. */
    async promote(version: number): Promise<void> {
        await this.clients.ec2.send(new ModifyLaunchTemplateCommand({ LaunchTemplateId: this.settings.launchTemplateId, DefaultVersion: String(version) }));
    }

    /** The last lines an instance wrote to its console: why a new version did not start. */
    async consoleTail(instanceId: string): Promise<string[]> {
        const result = await this.clients.ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }));
        const text = Buffer.from(result.Output ?? "", "base64").toString("utf8");
        return text.split(/\r?\n/).filter((line) => line.trim() !== "").slice(-CONSOLE_TAIL_LINES);
    }

    /** Current spot prices, zone → instance type → USD per hour: one call for every configured type and zone. */
    async spotPrices(): Promise<SpotPrices> {
        const result = await this.clients.ec2.send(new DescribeSpotPriceHistoryCommand({
            InstanceTypes: this.settings.instanceTypes as _InstanceType[],
            ProductDescriptions: [this.settings.spotProductDescription],
            StartTime: new Date(),
        }));
        const prices: SpotPrices = {};
        for (const entry of result.SpotPriceHistory ?? []) {
            const price = Number(entry.SpotPrice);
            if (entry.AvailabilityZone && entry.InstanceType && Number.isFinite(price)) {
                const zone = (prices[entry.AvailabilityZone] ??= {});
                zone[entry.InstanceType] = Math.min(zone[entry.InstanceType] ?? price, price);
            }
        }
        return prices;
    }

    async drain(instanceId: string): Promise<"drained" | "not-registered"> {
        try {
            await this.clients.elb.send(new DeregisterTargetsCommand({ TargetGroupArn: this.settings.targetGroupArn, Targets: [{ Id: instanceId }] }));
            return "drained";
        } catch (error) {
            // Already gone from the group (terminated instances leave it by themselves).
            if (errorName(error) === "InvalidTargetException" || errorName(error) === "InvalidTarget") {
                return "not-registered";
            }
            throw error;
        }
    }

    async register(instanceId: string): Promise<void> {
        await this.clients.elb.send(new RegisterTargetsCommand({ TargetGroupArn: this.settings.targetGroupArn, Targets: [{ Id: instanceId }] }));
    }

    /** One call, whether for a retired instance or the whole fleet at teardown. */
    async terminate(instanceIds: string[]): Promise<void> {
        await this.clients.ec2.send(new TerminateInstancesCommand({ InstanceIds: instanceIds }));
    }

    /** The stack's instances in the given states. */
    async instances(states: InstanceState[]): Promise<ObservedInstance[]> {
        return describeStackInstances(this.clients.ec2, this.settings.stack, states);
    }

    /** The SDK's waiters, for the deploy path only: the event path never waits. */
    async waitUntilRunning(instanceIds: string[], limit: WaitLimit): Promise<void> {
        await waitUntilInstanceRunning({ client: this.clients.ec2, maxWaitTime: limit.maxWaitSeconds, minDelay: 2, maxDelay: 10 }, { InstanceIds: instanceIds });
    }

    async waitUntilTerminated(instanceIds: string[], limit: WaitLimit): Promise<void> {
        await waitUntilInstanceTerminated({ client: this.clients.ec2, maxWaitTime: limit.maxWaitSeconds, minDelay: 2, maxDelay: 10 }, { InstanceIds: instanceIds });
    }

    async waitUntilInService(instanceIds: string[], limit: WaitLimit): Promise<void> {
        await waitUntilTargetInService(
            { client: this.clients.elb, maxWaitTime: limit.maxWaitSeconds, minDelay: 2, maxDelay: 10 },
            { TargetGroupArn: this.settings.targetGroupArn, Targets: instanceIds.map((Id) => ({ Id })) },
        );
    }

    async waitUntilDeregistered(instanceIds: string[], limit: WaitLimit): Promise<void> {
        if (instanceIds.length === 0) {
            return;
        }
        await waitUntilTargetDeregistered(
            { client: this.clients.elb, maxWaitTime: limit.maxWaitSeconds, minDelay: 2, maxDelay: 10 },
            { TargetGroupArn: this.settings.targetGroupArn, Targets: instanceIds.map((Id) => ({ Id })) },
        );
    }

    /** Drain checks as delayed messages on the handler's own queue, ten to a call. */
    async setTimers(timers: DrainTimer[], now: Date): Promise<void> {
        const entries = timers.map((timer, index) => ({
            Id: String(index),
            DelaySeconds: Math.max(0, Math.min(900, timer.delaySeconds)),
            MessageBody: ownMessage(randomUUID(), now, OWN_DETAIL_TYPE.drainCheck, {
                "instance-id": timer.instanceId,
                cause: timer.cause,
                ...(timer.replacementId === undefined ? {} : { "replacement-id": timer.replacementId }),
            }),
        }));
        await this.send(entries);
    }

    /** Asks the handler to reconcile at once, through its own queue. */
    async requestReconcile(now: Date): Promise<void> {
        await this.send([{ Id: "0", MessageBody: ownMessage(randomUUID(), now, OWN_DETAIL_TYPE.reconcileRequest) }]);
    }

    private async send(entries: { Id: string; MessageBody: string; DelaySeconds?: number }[]): Promise<void> {
        for (let start = 0; start < entries.length; start += SEND_BATCH_SIZE) {
            const result = await this.clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: this.settings.queueUrl, Entries: entries.slice(start, start + SEND_BATCH_SIZE) }));
            if ((result.Failed ?? []).length > 0) {
                throw new Error(`SQS refused ${result.Failed?.length} message(s): ${result.Failed?.map((f) => `${f.Code}: ${f.Message}`).join("; ")}`);
            }
        }
    }

    /**
     * Tries each pool in order until one has capacity. A pool that answers a capacity error joins
     * `unavailable`, which every launch of the batch shares, so no other launch asks it again.
     */
    async launch(request: LaunchRequest, unavailable: Set<string>): Promise<LaunchOutcome> {
        const failures: LaunchFailure[] = [];
        for (const attempt of request.attempts) {
            if (unavailable.has(poolKey(attempt))) {
                continue;
            }
            try {
                const instanceId = await this.runInstance(attempt, request);
                return { launched: true, instanceId, attempt, failures };
            } catch (error) {
                if (errorName(error) === "IdempotentParameterMismatch") {
                    return { launched: false, claimed: true, failures };
                }
                if (!CAPACITY_ERRORS.includes(errorName(error))) {
                    throw error;
                }
                unavailable.add(poolKey(attempt));
                failures.push({ attempt, code: errorName(error) });
            }
        }
        return { launched: false, claimed: false, failures };
    }

    private async runInstance(attempt: LaunchAttempt, request: LaunchRequest): Promise<string> {
        const { settings } = this;
        const tags = instanceTags({
            instanceName: settings.instanceName,
            stack: settings.stack,
            zone: attempt.zone,
            region: settings.region,
            launchedBy: this.launchedBy,
            replaces: request.replaces,
            noticedAt: request.noticedAt === undefined ? undefined : new Date(request.noticedAt),
        });
        const result = await this.clients.ec2.send(new RunInstancesCommand({
            MinCount: 1,
            MaxCount: 1,
            LaunchTemplate: { LaunchTemplateId: settings.launchTemplateId, Version: request.version === undefined ? "$Default" : String(request.version) },
            InstanceType: attempt.instanceType as _InstanceType,
            SubnetId: settings.subnetsByZone[attempt.zone],
            ...(attempt.market === "spot"
                ? {
                      InstanceMarketOptions: {
                          MarketType: "spot",
                          SpotOptions: { SpotInstanceType: "one-time", InstanceInterruptionBehavior: "terminate", MaxPrice: settings.spotMaxPrice },
                      },
                  }
                : {}),
            TagSpecifications: [
                { ResourceType: "instance", Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
                { ResourceType: "volume", Tags: [{ Key: TAG.stack, Value: settings.stack }] },
            ],
            ClientToken: clientToken(settings.stack, settings.launchTemplateId, request.key),
        }));
        const instanceId = result.Instances?.[0]?.InstanceId;
        if (!instanceId) {
            throw new Error(`RunInstances in ${attempt.zone} answered without an instance id`);
        }
        return instanceId;
    }
}
