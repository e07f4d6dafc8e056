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
 * The teardown guard's input: a second CRUD invocation of the deploy function, created before the
 * deploy's and deleted after everything that can launch. Its create and update do nothing; its
 * delete terminates every instance of the stack. A deploy whose create failed is not in the state
 * (invocation.go sets the id only after a successful invoke), so `pulumi destroy` never sends it
 * `delete`; the guard's delete still comes. Sample payload at `pulumi destroy`:
 *
 *     { "teardownGuard": { "quietSeconds": 60 }, "tf": { "action": "delete", "prev_input": { … } } }
 */
export interface TeardownGuard {
    /** How long the teardown keeps sweeping: the event function's timeout, the longest a batch begun before its event source mapping went can still launch. */
    quietSeconds: number;
}

export interface GuardRequest {
    action: DeployAction;
    teardownGuard: TeardownGuard;
}

/**
 * What the deploy answers, which the provider stores as the invocation's `result`. A fleet answer
 * names the desired fleet it reached, so the program can tell an answer to this input from one
 * to an earlier input that a failed update left behind.
 */
export type DeployAnswer =
    /** The fleet as the deploy left it: `Prometheus-A` (then `Prometheus-A-2` …) → instance id. */
    | { instances: Record<string, string>; desired: DesiredFleet }
    | { terminated: string[] }
    /** The guard's create and update, and the deploy's delete: the guard's delete tears down. */
    | { unchanged: string };

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

function isTeardownGuard(value: unknown): value is TeardownGuard {
    return typeof value === "object" && value !== null && Number.isFinite((value as TeardownGuard).quietSeconds) && (value as TeardownGuard).quietSeconds >= 0;
}

/** The invocation's payload: `tf.action` from the provider, `desired` (or the guard's settings) from the program. Anything else is an error. */
export function parseDeployRequest(payload: unknown): DeployRequest | GuardRequest {
    const { tf, desired, teardownGuard } = (payload ?? {}) as { tf?: { action?: unknown; prev_input?: { desired?: unknown } | null }; desired?: unknown; teardownGuard?: unknown };
    const action = tf?.action;
    if (typeof action !== "string" || !(DEPLOY_ACTIONS as readonly string[]).includes(action)) {
        throw deployError(`not a deploy request: tf.action is ${JSON.stringify(action)}; expected one of ${DEPLOY_ACTIONS.join(", ")} (aws.lambda.Invocation with lifecycleScope CRUD)`);
    }
    if (teardownGuard !== undefined) {
        if (!isTeardownGuard(teardownGuard)) {
            throw deployError(`not a teardown guard: teardownGuard is ${JSON.stringify(teardownGuard)}; expected { "quietSeconds": a number of seconds, 0 or more }`);
        }
        return { action: action as DeployAction, teardownGuard };
    }
    if (!isDesiredFleet(desired)) {
        throw deployError("not a deploy request: the input has neither a desired fleet nor a teardown guard");
    }
    const previous = tf?.prev_input?.desired;
    return { action: action as DeployAction, desired, previous: isDesiredFleet(previous) ? previous : undefined };
}

/**
 * JSON with every object's keys sorted: how the provider re-encodes the input it sends (Go's
 * `json.Marshal` of a `map[string]any` sorts keys, invocation.go `buildInput`), so a desired fleet
 * compares equal whatever order its keys were declared in.
 */
export function canonicalJson(value: unknown): string {
    return JSON.stringify(value, (_key, member) =>
        member !== null && typeof member === "object" && !Array.isArray(member)
            ? Object.fromEntries(Object.keys(member).sort().map((key) => [key, member[key]]))
            : member);
}

/**
 * The function runs the settings it was built with; the invocation says what `pulumi up` declared.
 * They differ only if the function's update has not taken effect: deploying then would converge
 * to the old settings.
 */
export function checkDesired(desired: DesiredFleet, settings: HandlerSettings): void {
    const built = desiredFleet(settings);
    if (canonicalJson(built) !== canonicalJson(desired)) {
        throw deployError(`the deploy function runs ${JSON.stringify(built)} but pulumi up declared ${JSON.stringify(desired)}; run pulumi up again once the function's update has taken effect`);
    }
}

/**
 * The fleet an invocation's `result` reports for its `input`, or undefined when the result does
 * not answer that input: empty or not JSON (a failed update leaves the provider's unknown result
 * as null), an error, or the answer to an earlier input (hashicorp/terraform-provider-aws#43447: a
 * failed update stores the new input anyway, beside the last successful result).
 */
export function answeredFleet(result: string | undefined, input: string): Record<string, string> | undefined {
    const parsed = (text: string | undefined): unknown => {
        try {
            return text === undefined || text === "" ? undefined : JSON.parse(text);
        } catch {
            return undefined;
        }
    };
    const answer = parsed(result) as Partial<{ instances: unknown; desired: unknown }> | undefined;
    const declared = (parsed(input) as { desired?: unknown } | undefined)?.desired;
    if (typeof answer !== "object" || answer === null || typeof answer.instances !== "object" || answer.instances === null || declared === undefined) {
        return undefined;
    }
    return canonicalJson(answer.desired) === canonicalJson(declared) ? (answer.instances as Record<string, string>) : undefined;
}
