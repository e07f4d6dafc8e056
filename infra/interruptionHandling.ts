import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { DETAIL_TYPE } from "../handler/events";
import { BatchResponse, createHandler } from "../handler";
import { HandlerSettings } from "../handler/settings";
import { TAG } from "../handler/tags";
import { scheduleExpression } from "./config";
import { FleetDeploy } from "./fleetDeploy";

/**
 * The handler, the fleet's one owner. Its event path: EventBridge rules for the interruption
 * warning, the rebalance recommendation, instance state changes and a reconcile schedule deliver
 * into one SQS queue, which an event source mapping hands in batches to one Lambda written as a
 * Pulumi closure; with the queue's dead-letter queue, the function's log group and a role that
 * holds only the actions it calls, scoped to this stack wherever AWS allows it. Its deploy path
 * (fleetDeploy.ts) launches the fleet at `pulumi up` and terminates it at `pulumi destroy`.
 */

/**
 * Packages the Lambda runtime already provides (SDK v3, with the retry strategies its clients are
 * built on): left out of the archive.
 */
export const RUNTIME_PROVIDED_PACKAGES = ["@aws-sdk/client-ec2", "@aws-sdk/client-elastic-load-balancing-v2", "@aws-sdk/client-sqs", "@smithy/util-retry"];

export const LAMBDA_RUNTIME = "nodejs22.x";

/**
 * Seconds an invocation may run. It never waits for an instance: it launches, drains and
 * registers, so the longest path is a walk through every pool (each RunInstances about 1.5 s).
 */
export const FUNCTION_TIMEOUT_SECONDS = 60;

/**
 * The event source mapping: large batches gathered for at most a second, so a zone's warnings
 * arrive in one or two invocations; a bounded number of batches at once, which needs no reserved
 * concurrency. https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html
 */
export const EVENT_BATCHING = {
    batchSize: 100,
    maximumBatchingWindowInSeconds: 1,
    maximumConcurrency: 5,
} as const;

/**
 * AWS: set the queue's visibility timeout to at least six times the function's timeout, and the
 * redrive policy's maxReceiveCount to at least 5, so throttled batches are not dead-lettered.
 * https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
 */
export const QUEUE_VISIBILITY_TIMEOUT_SECONDS = 6 * FUNCTION_TIMEOUT_SECONDS;
export const MAX_RECEIVE_COUNT = 5;

/** The EventBridge patterns, one rule each; the state-change rule only wakes the handler for states it acts on. */
export const EVENT_PATTERNS = {
    "interruption-warning": { source: ["aws.ec2"], "detail-type": [DETAIL_TYPE.interruptionWarning] },
    "rebalance-recommendation": { source: ["aws.ec2"], "detail-type": [DETAIL_TYPE.rebalanceRecommendation] },
    "state-change": {
        source: ["aws.ec2"],
        "detail-type": [DETAIL_TYPE.stateChange],
        detail: { state: ["running", "shutting-down", "stopping", "stopped", "terminated"] },
    },
} as const;

export interface HandlerPolicyArgs {
    partition: string;
    region: string;
    accountId: string;
    /** Ownership tag value: the handler may only launch and terminate instances carrying it. */
    stack: string;
    launchTemplateArn: string;
    subnetIds: string[];
    securityGroupIds: string[];
    instanceRoleArn: string;
    targetGroupArn: string;
    logGroupArn: string;
    /** The queue the function reads its events from, and sends its own timers to. */
    eventQueueArn: string;
    /** SSM parameter EC2 resolves the image from at launch, if the template names one. */
    imageParameter?: string;
    keyName?: string;
}

interface PolicyStatement {
    Sid: string;
    Effect: "Allow" | "Deny";
    /** Resource policies name who may act (`*`: anyone); identity policies leave it out. */
    Principal?: { Service: string } | "*";
    Action: string[];
    Resource: string | string[];
    Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
    Version: "2012-10-17";
    Statement: PolicyStatement[];
}

/** The handler role's policy: every action it calls, each on the narrowest resources AWS supports. */
export function handlerPolicy(args: HandlerPolicyArgs): PolicyDocument {
    const ec2 = (resource: string) => `arn:${args.partition}:ec2:${args.region}:${args.accountId}:${resource}`;
    const ownedByStack = { StringEquals: { [`aws:ResourceTag/${TAG.stack}`]: args.stack } };
    const statements: PolicyStatement[] = [
        {
            // These describe calls support no resource-level permissions.
            Sid: "Observe",
            Effect: "Allow",
            Action: ["ec2:DescribeInstances", "ec2:DescribeSpotPriceHistory", "ec2:DescribeLaunchTemplates", "elasticloadbalancing:DescribeTargetHealth"],
            Resource: "*",
        },
        {
            // The deploy makes a version the default (the released one) once its instances serve.
            Sid: "ReleaseTheTemplatesVersion",
            Effect: "Allow",
            Action: ["ec2:ModifyLaunchTemplate"],
            Resource: args.launchTemplateArn,
        },
        {
            // A failed release reports the last lines of its instance's console.
            Sid: "ReadOwnedInstancesConsole",
            Effect: "Allow",
            Action: ["ec2:GetConsoleOutput"],
            Resource: ec2("instance/*"),
            Condition: ownedByStack,
        },
        {
            Sid: "LaunchOnlyOwnedInstancesFromTheTemplate",
            Effect: "Allow",
            Action: ["ec2:RunInstances"],
            Resource: ec2("instance/*"),
            Condition: {
                StringEquals: { [`aws:RequestTag/${TAG.stack}`]: args.stack },
                ArnLike: { "ec2:LaunchTemplate": args.launchTemplateArn },
            },
        },
        {
            Sid: "LaunchUsing",
            Effect: "Allow",
            Action: ["ec2:RunInstances"],
            Resource: [
                args.launchTemplateArn,
                ...args.subnetIds.map((id) => ec2(`subnet/${id}`)),
                ...args.securityGroupIds.map((id) => ec2(`security-group/${id}`)),
                `arn:${args.partition}:ec2:${args.region}::image/*`,
                ec2("volume/*"),
                ec2("network-interface/*"),
                ec2("spot-instances-request/*"),
                ...(args.keyName === undefined ? [] : [ec2(`key-pair/${args.keyName}`)]),
            ],
        },
        {
            Sid: "TagOnlyAtLaunch",
            Effect: "Allow",
            Action: ["ec2:CreateTags"],
            Resource: [ec2("instance/*"), ec2("volume/*"), ec2("network-interface/*"), ec2("spot-instances-request/*")],
            Condition: { StringEquals: { "ec2:CreateAction": "RunInstances" } },
        },
        {
            Sid: "TerminateOnlyOwnedInstances",
            Effect: "Allow",
            Action: ["ec2:TerminateInstances"],
            Resource: ec2("instance/*"),
            Condition: ownedByStack,
        },
        {
            Sid: "DrainAndRegister",
            Effect: "Allow",
            Action: ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
            Resource: args.targetGroupArn,
        },
        {
            Sid: "PassOnlyTheInstanceRoleToEc2",
            Effect: "Allow",
            Action: ["iam:PassRole"],
            Resource: args.instanceRoleArn,
            Condition: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } },
        },
        ...(args.imageParameter === undefined ? [] : [{
            Sid: "ResolveImageParameter",
            Effect: "Allow" as const,
            Action: ["ssm:GetParameters"],
            Resource: `arn:${args.partition}:ssm:${args.region}::parameter${args.imageParameter}`,
        }]),
        {
            Sid: "WriteOwnLogs",
            Effect: "Allow",
            Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
            Resource: `${args.logGroupArn}:*`,
        },
        {
            // What the event source mapping needs to read the queue for the function:
            // https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
            Sid: "ReadEvents",
            Effect: "Allow",
            Action: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            Resource: args.eventQueueArn,
        },
        {
            Sid: "SetOwnTimers",
            Effect: "Allow",
            Action: ["sqs:SendMessage"],
            Resource: args.eventQueueArn,
        },
    ];
    return { Version: "2012-10-17", Statement: statements };
}

/**
 * The queue's resource policy: EventBridge may send to it on behalf of this stack's rules, and
 * nobody else may send to it at all, whatever their own policies allow, but the handler's role
 * (its timers); nothing reaches it without TLS. An explicit deny: an identity policy granting
 * `sqs:SendMessage` on `*` in the account does not open it. For a negated condition operator an
 * absent key matches, so the deny holds for a caller with neither this stack's rule as source nor
 * the handler's role as principal (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
 */
export function eventQueuePolicy(queueArn: string, ruleArns: string[], handlerRoleArn: string): PolicyDocument {
    return {
        Version: "2012-10-17",
        Statement: [
            {
                Sid: "OnlyThisStacksRules",
                Effect: "Allow",
                Principal: { Service: "events.amazonaws.com" },
                Action: ["sqs:SendMessage"],
                Resource: queueArn,
                Condition: { ArnEquals: { "aws:SourceArn": ruleArns } },
            },
            {
                Sid: "NoOtherSenders",
                Effect: "Deny",
                Principal: "*",
                Action: ["sqs:SendMessage"],
                Resource: queueArn,
                Condition: { ArnNotEquals: { "aws:SourceArn": ruleArns, "aws:PrincipalArn": [handlerRoleArn] } },
            },
            {
                Sid: "OnlyOverTls",
                Effect: "Deny",
                Principal: "*",
                Action: ["sqs:*"],
                Resource: queueArn,
                Condition: { Bool: { "aws:SecureTransport": "false" } },
            },
        ],
    };
}

export interface InterruptionHandlingArgs {
    /** Everything the handler needs but its own queue, which this component creates. */
    settings: pulumi.Input<Omit<HandlerSettings, "queueUrl">>;
    /**
     * What the instances use (network, security groups, template, target group): the deploy
     * invocation depends on it, so `pulumi destroy` terminates the fleet before deleting any of it.
     */
    fleetUses: pulumi.Resource[];
    launchTemplateArn: pulumi.Input<string>;
    instanceRoleArn: pulumi.Input<string>;
    imageParameter?: string;
    keyName?: string;
    reconcileMinutes: number;
    logRetentionDays: number;
}

export class InterruptionHandling extends pulumi.ComponentResource {
    public readonly function: aws.lambda.CallbackFunction<unknown, BatchResponse>;
    public readonly logGroup: aws.cloudwatch.LogGroup;
    public readonly eventQueue: aws.sqs.Queue;
    public readonly deadLetterQueue: aws.sqs.Queue;
    public readonly eventSourceMapping: aws.lambda.EventSourceMapping;
    public readonly rules: aws.cloudwatch.EventRule[];
    public readonly deploy: FleetDeploy;

    constructor(name: string, args: InterruptionHandlingArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:InterruptionHandling", name, {}, opts);

        this.deadLetterQueue = new aws.sqs.Queue(`${name}-dlq`, {
            messageRetentionSeconds: 14 * 24 * 3600,
            sqsManagedSseEnabled: true,
        }, { parent: this });
        this.eventQueue = new aws.sqs.Queue(`${name}-events`, {
            sqsManagedSseEnabled: true,
            visibilityTimeoutSeconds: QUEUE_VISIBILITY_TIMEOUT_SECONDS,
            // An event older than a day describes a fleet that no longer exists.
            messageRetentionSeconds: 24 * 3600,
            redrivePolicy: pulumi.jsonStringify({ deadLetterTargetArn: this.deadLetterQueue.arn, maxReceiveCount: MAX_RECEIVE_COUNT }),
        }, { parent: this });
        const settings: pulumi.Output<HandlerSettings> = pulumi.all([args.settings, this.eventQueue.url]).apply(([handler, queueUrl]) => ({ ...handler, queueUrl }));
        this.logGroup = new aws.cloudwatch.LogGroup(name, {
            retentionInDays: args.logRetentionDays,
        }, { parent: this });

        const role = new aws.iam.Role(name, {
            assumeRolePolicy: aws.iam.assumeRolePolicyForPrincipal({ Service: "lambda.amazonaws.com" }),
        }, { parent: this });
        const identity = aws.getCallerIdentityOutput({}, { parent: this });
        const policy = new aws.iam.RolePolicy(name, {
            role: role.name,
            policy: pulumi
                .all([identity, settings, args.launchTemplateArn, args.instanceRoleArn, this.logGroup.arn, this.eventQueue.arn])
                .apply(([caller, handler, launchTemplateArn, instanceRoleArn, logGroupArn, eventQueueArn]) =>
                    JSON.stringify(handlerPolicy({
                        partition: caller.arn.split(":")[1],
                        region: handler.region,
                        accountId: caller.accountId,
                        stack: handler.stack,
                        launchTemplateArn,
                        subnetIds: Object.values(handler.subnetsByZone),
                        securityGroupIds: handler.securityGroupIds,
                        instanceRoleArn,
                        targetGroupArn: handler.targetGroupArn,
                        logGroupArn,
                        eventQueueArn,
                        imageParameter: args.imageParameter,
                        keyName: args.keyName,
                    }))),
        }, { parent: this });

        this.function = new aws.lambda.CallbackFunction<unknown, BatchResponse>(name, {
            description: pulumi.interpolate`Replaces interrupted spot instances of ${settings.stack}`,
            runtime: LAMBDA_RUNTIME,
            role,
            memorySize: 256,
            timeout: FUNCTION_TIMEOUT_SECONDS,
            // No reserved concurrency: the event source mapping bounds it, and an account whose
            // quota is 10 cannot reserve any. https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html
            loggingConfig: { logFormat: "JSON", logGroup: this.logGroup.name },
            codePathOptions: { extraExcludePackages: [...RUNTIME_PROVIDED_PACKAGES] },
            // Runs once per container: the handler (and its SDK clients) are built once, not per batch.
            callbackFactory: () => createHandler(settings.get()),
        }, { parent: this, dependsOn: [policy] });

        this.deploy = new FleetDeploy(`${name}-deploy`, {
            settings,
            role,
            logGroup: this.logGroup,
            runtimeProvided: [...RUNTIME_PROVIDED_PACKAGES],
            runtime: LAMBDA_RUNTIME,
            policy,
            fleetUses: args.fleetUses,
            eventsFunction: this.function,
            eventsTimeoutSeconds: FUNCTION_TIMEOUT_SECONDS,
        }, { parent: this });
        // Whatever can launch goes first at `pulumi destroy`, then the teardown guard terminates the
        // fleet: the event source mapping and the rules depend on the deploy, which depends on the guard.
        const afterFleet = [this.deploy.invocation];

        this.eventSourceMapping = new aws.lambda.EventSourceMapping(name, {
            eventSourceArn: this.eventQueue.arn,
            functionName: this.function.arn,
            batchSize: EVENT_BATCHING.batchSize,
            maximumBatchingWindowInSeconds: EVENT_BATCHING.maximumBatchingWindowInSeconds,
            scalingConfig: { maximumConcurrency: EVENT_BATCHING.maximumConcurrency },
            // Only the messages the handler names as failed come back: https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html
            functionResponseTypes: ["ReportBatchItemFailures"],
        }, { parent: this, dependsOn: [policy, ...afterFleet] });

        const rules: [string, aws.cloudwatch.EventRule][] = [
            ...Object.entries(EVENT_PATTERNS).map(([kind, pattern]): [string, aws.cloudwatch.EventRule] => [
                kind,
                new aws.cloudwatch.EventRule(`${name}-${kind}`, {
                    description: `${pattern["detail-type"][0]}: to the spot-availability handler's queue`,
                    // Only this account's instances: an event bus can receive other accounts' events.
                    eventPattern: identity.apply((caller) => JSON.stringify({ ...pattern, account: [caller.accountId] })),
                }, { parent: this, dependsOn: afterFleet }),
            ]),
            ["reconcile", new aws.cloudwatch.EventRule(`${name}-reconcile`, {
                description: "Reconcile every zone back to its instance count",
                scheduleExpression: scheduleExpression(args.reconcileMinutes),
            }, { parent: this, dependsOn: afterFleet })],
        ];
        const queuePolicy = new aws.sqs.QueuePolicy(name, {
            queueUrl: this.eventQueue.url,
            policy: pulumi.all([this.eventQueue.arn, role.arn, ...rules.map(([, rule]) => rule.arn)]).apply(([queueArn, roleArn, ...ruleArns]) => JSON.stringify(eventQueuePolicy(queueArn, ruleArns, roleArn))),
        }, { parent: this });
        for (const [kind, rule] of rules) {
            new aws.cloudwatch.EventTarget(`${name}-${kind}`, {
                rule: rule.name,
                arn: this.eventQueue.arn,
            }, { parent: this, dependsOn: [queuePolicy] });
        }
        this.rules = rules.map(([, rule]) => rule);

        this.registerOutputs({
            functionName: this.function.name,
            logGroupName: this.logGroup.name,
            eventQueueUrl: this.eventQueue.url,
            deadLetterQueueUrl: this.deadLetterQueue.url,
            instances: this.deploy.instances,
        });
    }
}
