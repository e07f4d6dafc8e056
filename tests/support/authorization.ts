import { runSimulation } from "@cloud-copilot/iam-simulate";
import { PolicyDocument } from "../../infra/interruptionHandling";
import { RecordedCall } from "../../rehearsal/faultProxy";

/**
 * Turns each call the handler made into the authorisation requests AWS evaluates for it (action,
 * resource ARN, context keys: request and resource tags, the launch template, the role passed),
 * and evaluates them against the role's real policy, resources and conditions included.
 */

export interface AuthorizationRequest {
    action: string;
    resource: string;
    context: Record<string, string | string[]>;
}

export interface StackFacts {
    partition: string;
    region: string;
    accountId: string;
    /** The launch template's id, ARN, security groups, image and instance role. */
    launchTemplate: { id: string; arn: string; securityGroupIds: string[]; imageId: string; instanceRoleArn: string };
    /** Tags of each instance the handler touched, as AWS would read them for `aws:ResourceTag`. */
    instanceTags: Record<string, Record<string, string>>;
}

function list(params: Record<string, string>, prefix: string): string[] {
    return Object.entries(params)
        .filter(([key]) => new RegExp(`^${prefix.replace(/\./g, "\\.")}\\.\\d+$`).test(key))
        .map(([, value]) => value);
}

function requestTags(params: Record<string, string>, resourceType: string): Record<string, string> {
    for (let spec = 1; params[`TagSpecification.${spec}.ResourceType`] !== undefined; spec++) {
        if (params[`TagSpecification.${spec}.ResourceType`] === resourceType) {
            const tags: Record<string, string> = {};
            for (let tag = 1; params[`TagSpecification.${spec}.Tag.${tag}.Key`] !== undefined; tag++) {
                tags[params[`TagSpecification.${spec}.Tag.${tag}.Key`]] = params[`TagSpecification.${spec}.Tag.${tag}.Value`];
            }
            return tags;
        }
    }
    return {};
}

function tagContext(prefix: "aws:RequestTag" | "aws:ResourceTag", tags: Record<string, string>): Record<string, string | string[]> {
    return {
        ...Object.fromEntries(Object.entries(tags).map(([key, value]) => [`${prefix}/${key}`, value])),
        ...(prefix === "aws:RequestTag" ? { "aws:TagKeys": Object.keys(tags) } : {}),
    };
}

/** The requests IAM evaluates for one recorded call, following the EC2, ELBv2 and SQS authorisation references. */
export function authorizationRequests(call: RecordedCall, facts: StackFacts): AuthorizationRequest[] {
    const ec2 = (resource: string) => `arn:${facts.partition}:ec2:${facts.region}:${facts.accountId}:${resource}`;
    const { params } = call;
    switch (call.action) {
        case "DescribeInstances":
        case "DescribeSpotPriceHistory":
        case "DescribeLaunchTemplates":
            return [{ action: `ec2:${call.action}`, resource: "*", context: {} }];
        case "ModifyLaunchTemplate":
            // The template is named by id (or name); IAM authorises it on the template's ARN.
            return [{ action: "ec2:ModifyLaunchTemplate", resource: ec2(`launch-template/${params.LaunchTemplateId ?? facts.launchTemplate.id}`), context: {} }];
        case "GetConsoleOutput":
            return [{
                action: "ec2:GetConsoleOutput",
                resource: ec2(`instance/${params.InstanceId}`),
                context: tagContext("aws:ResourceTag", facts.instanceTags[params.InstanceId] ?? {}),
            }];
        case "DescribeTargetHealth":
            return [{ action: "elasticloadbalancing:DescribeTargetHealth", resource: "*", context: {} }];
        case "RegisterTargets":
        case "DeregisterTargets":
            return [{ action: `elasticloadbalancing:${call.action}`, resource: params.TargetGroupArn, context: {} }];
        case "TerminateInstances":
            return list(params, "InstanceId").map((id) => ({
                action: "ec2:TerminateInstances",
                resource: ec2(`instance/${id}`),
                context: tagContext("aws:ResourceTag", facts.instanceTags[id] ?? {}),
            }));
        case "RunInstances": {
            const template = facts.launchTemplate;
            const launch = { "ec2:LaunchTemplate": template.arn };
            const instanceTags = requestTags(params, "instance");
            const volumeTags = requestTags(params, "volume");
            const spot = params["InstanceMarketOptions.MarketType"] === "spot";
            const image = template.imageId.startsWith("resolve:ssm:") ? "ami-0123456789abcdef0" : template.imageId;
            const run = (resource: string, context: Record<string, string | string[]> = {}): AuthorizationRequest => ({
                action: "ec2:RunInstances",
                resource,
                context: { ...launch, ...context },
            });
            return [
                run(ec2("instance/*"), tagContext("aws:RequestTag", instanceTags)),
                run(ec2("volume/*"), tagContext("aws:RequestTag", volumeTags)),
                run(ec2("network-interface/*")),
                run(ec2(`subnet/${params.SubnetId}`)),
                ...template.securityGroupIds.map((id) => run(ec2(`security-group/${id}`))),
                run(template.arn),
                run(`arn:${facts.partition}:ec2:${facts.region}::image/${image}`),
                ...(spot ? [run(ec2("spot-instances-request/*"))] : []),
                { action: "ec2:CreateTags", resource: ec2("instance/*"), context: { "ec2:CreateAction": "RunInstances", ...tagContext("aws:RequestTag", instanceTags) } },
                { action: "ec2:CreateTags", resource: ec2("volume/*"), context: { "ec2:CreateAction": "RunInstances", ...tagContext("aws:RequestTag", volumeTags) } },
                { action: "iam:PassRole", resource: template.instanceRoleArn, context: { "iam:PassedToService": "ec2.amazonaws.com" } },
                // Resolving `resolve:ssm:` also needs ssm:GetParameters on an AWS-owned public
                // parameter, whose ARN has no account; the simulator cannot parse that, so the
                // test checks that statement directly (publicParameterArn).
            ];
        }
        case "SendMessage":
        case "SendMessageBatch": {
            // A batch is authorised as SendMessage on the queue: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html
            const [account, name] = new URL(params.QueueUrl).pathname.split("/").filter(Boolean);
            return [{ action: "sqs:SendMessage", resource: `arn:${facts.partition}:sqs:${facts.region}:${account}:${name}`, context: {} }];
        }
        default:
            throw new Error(`no authorisation mapping for ${call.service} ${call.action}: add one before the handler calls it`);
    }
}

/** The ARN of the public SSM parameter a `resolve:ssm:` image names, or undefined for an AMI id. */
export function publicParameterArn(imageId: string, facts: Pick<StackFacts, "partition" | "region">): string | undefined {
    return imageId.startsWith("resolve:ssm:") ? `arn:${facts.partition}:ssm:${facts.region}::parameter${imageId.slice("resolve:ssm:".length)}` : undefined;
}

/** `Allowed`, `ImplicitlyDenied` or `ExplicitlyDenied`, as IAM would decide for the role. */
export async function decide(policy: PolicyDocument, principal: string, request: AuthorizationRequest, accountId: string): Promise<string> {
    const result = await runSimulation({
        request: { principal, action: request.action, resource: { resource: request.resource, accountId }, contextVariables: request.context },
        identityPolicies: [{ name: "handler", policy }],
        serviceControlPolicies: [],
        resourceControlPolicies: [],
    }, {});
    if (result.resultType === "error") {
        throw new Error(`simulating ${request.action} on ${request.resource}: ${JSON.stringify(result.errors)}`);
    }
    return result.overallResult;
}
