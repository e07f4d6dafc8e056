import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { DETAIL_TYPE } from "../handler/events";
import { createHandler } from "../handler";
import { HandlerSettings } from "../handler/settings";
import { TAG } from "../handler/tags";
import { scheduleExpression } from "./config";

/**
 * The reaction to AWS's interruption notices: EventBridge rules for the interruption warning, the
 * rebalance recommendation, instance state changes and a reconcile schedule, all invoking one
 * Lambda written as a Pulumi closure, with its dead-letter queue, log group and a role that holds
 * only the actions the handler calls, scoped to this stack wherever AWS allows it.
 */

/** Packages the Lambda runtime already provides (SDK v3): left out of the archive. */
export const RUNTIME_PROVIDED_PACKAGES = ["@aws-sdk/client-ec2", "@aws-sdk/client-elastic-load-balancing-v2"];

export const LAMBDA_RUNTIME = "nodejs22.x";

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
    securityGroupId: string;
    instanceRoleArn: string;
    targetGroupArn: string;
    logGroupArn: string;
    deadLetterQueueArn: string;
    /** SSM parameter EC2 resolves the image from at launch, if the template names one. */
    imageParameter?: string;
    keyName?: string;
}

interface PolicyStatement {
    Sid: string;
    Effect: "Allow";
    Action: string[];
    Resource: string | string[];
    Condition?: Record<string, Record<string, string>>;
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
            Action: ["ec2:DescribeInstances", "ec2:DescribeSpotPriceHistory", "elasticloadbalancing:DescribeTargetHealth"],
            Resource: "*",
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
                ec2(`security-group/${args.securityGroupId}`),
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
            Sid: "DeadLetter",
            Effect: "Allow",
            Action: ["sqs:SendMessage"],
            Resource: args.deadLetterQueueArn,
        },
    ];
    return { Version: "2012-10-17", Statement: statements };
}

export interface InterruptionHandlingArgs {
    settings: pulumi.Input<HandlerSettings>;
    /**
     * The teardown of the handler's instances: the function, its rules and their permissions
     * depend on it, so `pulumi destroy` deletes them (nothing can launch) before it runs.
     */
    handlerLaunchedInstances: pulumi.Resource;
    launchTemplateArn: pulumi.Input<string>;
    securityGroupId: pulumi.Input<string>;
    instanceRoleArn: pulumi.Input<string>;
    imageParameter?: string;
    keyName?: string;
    reconcileMinutes: number;
    logRetentionDays: number;
}

export class InterruptionHandling extends pulumi.ComponentResource {
    public readonly function: aws.lambda.CallbackFunction<unknown, void>;
    public readonly logGroup: aws.cloudwatch.LogGroup;
    public readonly deadLetterQueue: aws.sqs.Queue;
    public readonly rules: aws.cloudwatch.EventRule[];

    constructor(name: string, args: InterruptionHandlingArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:InterruptionHandling", name, {}, opts);
        const settings = pulumi.output(args.settings);
        const afterTeardown = [args.handlerLaunchedInstances];

        this.deadLetterQueue = new aws.sqs.Queue(`${name}-dlq`, {
            messageRetentionSeconds: 14 * 24 * 3600,
            sqsManagedSseEnabled: true,
        }, { parent: this });
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
                .all([identity, settings, args.launchTemplateArn, args.securityGroupId, args.instanceRoleArn, this.logGroup.arn, this.deadLetterQueue.arn])
                .apply(([caller, handler, launchTemplateArn, securityGroupId, instanceRoleArn, logGroupArn, deadLetterQueueArn]) =>
                    JSON.stringify(handlerPolicy({
                        partition: caller.arn.split(":")[1],
                        region: handler.region,
                        accountId: caller.accountId,
                        stack: handler.stack,
                        launchTemplateArn,
                        subnetIds: Object.values(handler.subnetsByZone),
                        securityGroupId,
                        instanceRoleArn,
                        targetGroupArn: handler.targetGroupArn,
                        logGroupArn,
                        deadLetterQueueArn,
                        imageParameter: args.imageParameter,
                        keyName: args.keyName,
                    }))),
        }, { parent: this });

        this.function = new aws.lambda.CallbackFunction<unknown, void>(name, {
            description: pulumi.interpolate`Replaces interrupted spot instances of ${settings.stack}`,
            runtime: LAMBDA_RUNTIME,
            role,
            memorySize: 256,
            timeout: 120,
            // Two events never race: EventBridge's asynchronous invocations queue behind one another.
            reservedConcurrentExecutions: 1,
            deadLetterConfig: { targetArn: this.deadLetterQueue.arn },
            loggingConfig: { logFormat: "JSON", logGroup: this.logGroup.name },
            codePathOptions: { extraExcludePackages: [...RUNTIME_PROVIDED_PACKAGES] },
            // Runs once per container: the handler (and its SDK clients) are built once, not per event.
            callbackFactory: () => createHandler(settings.get()),
        }, { parent: this, dependsOn: [policy, ...afterTeardown] });

        const rules: [string, aws.cloudwatch.EventRule][] = [
            ...Object.entries(EVENT_PATTERNS).map(([kind, pattern]): [string, aws.cloudwatch.EventRule] => [
                kind,
                new aws.cloudwatch.EventRule(`${name}-${kind}`, {
                    description: `${pattern["detail-type"][0]}: to the spot-availability handler`,
                    eventPattern: JSON.stringify(pattern),
                }, { parent: this, dependsOn: afterTeardown }),
            ]),
            ["reconcile", new aws.cloudwatch.EventRule(`${name}-reconcile`, {
                description: "Reconcile every zone back to its instance count",
                scheduleExpression: scheduleExpression(args.reconcileMinutes),
            }, { parent: this, dependsOn: afterTeardown })],
        ];
        for (const [kind, rule] of rules) {
            // Each rule may invoke the function, and nothing else through EventBridge may.
            const permission = new aws.lambda.Permission(`${name}-${kind}`, {
                function: this.function.name,
                action: "lambda:InvokeFunction",
                principal: "events.amazonaws.com",
                sourceArn: rule.arn,
            }, { parent: this });
            new aws.cloudwatch.EventTarget(`${name}-${kind}`, {
                rule: rule.name,
                arn: this.function.arn,
            }, { parent: this, dependsOn: [permission] });
        }
        this.rules = rules.map(([, rule]) => rule);

        this.registerOutputs({
            functionName: this.function.name,
            logGroupName: this.logGroup.name,
            deadLetterQueueUrl: this.deadLetterQueue.url,
        });
    }
}
