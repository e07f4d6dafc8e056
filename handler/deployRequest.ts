import { HandlerSettings, ReleaseSettings } from "./settings";

/**
 * The contract between the program's `aws.lambda.Invocation` and the deploy function: what the
 * program declares as the invocation's input, and what the provider sends. No Pulumi and no AWS
 * SDK here: the program, the handler and the tests all read it.
 *
 * Sample payload of an update (terraform-provider-aws `internal/service/lambda/invocation.go`,
 * `buildInput`: lifecycle scope CRUD adds `tf.action` and the previous input as `tf.prev_input`):
 *
 *     { "desired": { "instanceName": "Prometheus", "zones": ["us-east-1a", "us-east-1c"], …,
 *                    "launchTemplateVersion": 3, "targetGroupArn": "arn:…:targetgroup/web-8e1f/…" },
 *       "tf": { "action": "update", "prev_input": { "desired": { …, "launchTemplateVersion": 2 } } } }
 */

/** What the provider adds to the input with lifecycle scope CRUD: https://www.pulumi.com/registry/packages/aws/api-docs/lambda/invocation/ */
export const DEPLOY_ACTIONS = ["create", "update", "delete"] as const;
export type DeployAction = (typeof DEPLOY_ACTIONS)[number];

/**
 * The desired state the program declares: the invocation's input, so a change to any of it is an
 * update. It holds everything the instances depend on (template and version, target group,
 * security groups): replacing any of them runs the deploy.
 */
export interface DesiredFleet {
    instanceName: string;
    zones: string[];
    instancesPerZone: number;
    instanceTypes: string[];
    launchTemplateId: string;
    launchTemplateVersion: number;
    targetGroupArn: string;
    securityGroupIds: string[];
    release: ReleaseSettings;
}

export interface DeployRequest {
    action: DeployAction;
    desired: DesiredFleet;
    /** What the previous `pulumi up` declared, on an update: its target group still serves until the listener moves. */
    previous?: DesiredFleet;
}

/**
 * A deploy that could not do what `pulumi up` or `pulumi destroy` asked: the invocation fails with
 * this message. A named Error, not a subclass: Pulumi serializes a class into the archive as a
 * function, whose `super(message)` sets no message.
 */
export function deployError(message: string): Error {
    return Object.assign(new Error(message), { name: "DeployError" });
}

export function desiredFleet(settings: HandlerSettings): DesiredFleet {
    return {
        instanceName: settings.instanceName,
        zones: Object.keys(settings.subnetsByZone).sort(),
        instancesPerZone: settings.instancesPerZone,
        instanceTypes: settings.instanceTypes,
        launchTemplateId: settings.launchTemplateId,
        launchTemplateVersion: settings.launchTemplateVersion,
        targetGroupArn: settings.targetGroupArn,
        securityGroupIds: settings.securityGroupIds,
        release: settings.release,
    };
}

function isDesiredFleet(value: unknown): value is DesiredFleet {
    return typeof value === "object" && value !== null && Array.isArray((value as DesiredFleet).zones);
}

/** The invocation's payload: `tf.action` from the provider, `desired` from the program. Anything else is an error. */
export function parseDeployRequest(payload: unknown): DeployRequest {
    const { tf, desired } = (payload ?? {}) as { tf?: { action?: unknown; prev_input?: { desired?: unknown } | null }; desired?: unknown };
    const action = tf?.action;
    if (typeof action !== "string" || !(DEPLOY_ACTIONS as readonly string[]).includes(action)) {
        throw deployError(`not a deploy request: tf.action is ${JSON.stringify(action)}; expected one of ${DEPLOY_ACTIONS.join(", ")} (aws.lambda.Invocation with lifecycleScope CRUD)`);
    }
    if (!isDesiredFleet(desired)) {
        throw deployError("not a deploy request: the input has no desired fleet");
    }
    const previous = tf?.prev_input?.desired;
    return { action: action as DeployAction, desired, previous: isDesiredFleet(previous) ? previous : undefined };
}

/**
 * The function runs the settings it was built with; the invocation says what `pulumi up` declared.
 * They differ only if the function's update has not taken effect: deploying then would converge
 * to the old settings.
 */
export function checkDesired(desired: DesiredFleet, settings: HandlerSettings): void {
    const built = desiredFleet(settings);
    if (JSON.stringify(built) !== JSON.stringify(desired)) {
        throw deployError(`the deploy function runs ${JSON.stringify(built)} but pulumi up declared ${JSON.stringify(desired)}; run pulumi up again once the function's update has taken effect`);
    }
}
