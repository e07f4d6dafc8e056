import { DrainCheckCause, InstanceState } from "./events";
import { LaunchedBy } from "./tags";

/** What the handler sees of its stack, and what it decides to do about it. */

export type Market = "spot" | "on-demand";

export interface ObservedInstance {
    id: string;
    zone: string;
    state: InstanceState;
    instanceType: string;
    market: Market;
    /** Undefined when the tag is missing or not one the program writes. */
    launchedBy?: LaunchedBy;
    /** The instance this one was launched to replace. */
    replaces?: string;
    /** Milliseconds since the epoch. */
    launchTime: number;
    /** When AWS's notice that this instance answers came (milliseconds since the epoch), if it answers one. */
    noticedAt?: number;
    /** The launch template version it was launched from (EC2's `aws:ec2launchtemplate:version` tag). */
    version?: number;
}

/** Target health states of ELBv2. */
export type TargetState = "initial" | "healthy" | "unhealthy" | "unused" | "draining" | "unavailable";

export interface Observation {
    /** Every instance carrying this stack's tag, in any state. */
    instances: ObservedInstance[];
    /** Target health by instance id: an instance that is not there is not registered. */
    targets: Record<string, TargetState>;
    /** Current spot price of the preferred instance type by zone, which ranks zones; undefined when not read. */
    prices?: Record<string, number>;
    /** Every configured type's current spot price by zone, for the log of what a launch costs. */
    spotPrices?: SpotPrices;
    /** The launch template's default version: the released one, which the event path launches. Undefined when not read. */
    releasedVersion?: number;
}

/** Current spot prices: zone → instance type → USD per hour. */
export type SpotPrices = Record<string, Record<string, number>>;

export interface LaunchAttempt {
    zone: string;
    instanceType: string;
    market: Market;
}

/** A pool as EC2 counts capacity: zone, instance type and market. */
export function poolKey(pool: LaunchAttempt): string {
    return `${pool.zone}/${pool.instanceType}/${pool.market}`;
}

/** A drain check the handler sets for itself: a delayed message to its own queue. */
export interface DrainTimer {
    instanceId: string;
    cause: DrainCheckCause;
    replacementId?: string;
    delaySeconds: number;
}

/** How long a newly registered instance took, for the metric that says so. */
export type RegistrationClock =
    /** A replacement answering AWS's notice (warning or recommendation) at `since`. */
    | { kind: "notice"; since: number }
    /** A refill (lost capacity, reconcile) launched at `since`. */
    | { kind: "refill"; since: number };

export type Action =
    /** Deregister from the target group: in-flight requests finish within the deregistration delay. */
    | { kind: "drain"; instanceId: string; reason: string }
    /**
     * Launch the first attempt that has capacity. `key` names the place being filled: every batch
     * that plans the same place derives the same ClientToken, so a place is never filled twice.
     * A best-effort launch that finds no capacity is not a failure: the fleet already holds its count.
     */
    | { kind: "launch"; attempts: LaunchAttempt[]; key: string; replaces?: string; noticedAt?: number; reason: string; bestEffort?: boolean; version?: number }
    | { kind: "register"; instanceId: string; reason: string; clock?: RegistrationClock }
    | { kind: "terminate"; instanceId: string; reason: string }
    | { kind: "timer"; timer: DrainTimer; reason: string }
    /** Make a version the template's default: what the event path launches from then on. */
    | { kind: "promote"; version: number; reason: string }
    /** Ask for a reconcile now rather than at the next schedule (a launch landed outside its zone). */
    | { kind: "request-reconcile"; reason: string };

/** An action and the messages it answers: if it fails, they are reported as the batch's failures. */
export type PlannedAction = Action & { messageIds: string[] };

/** A pool that refused a launch, as `zone/type/market: ErrorCode`. */
export type TriedPool = string;

/** What became of one action: what the deploy reads and the log reports, never the other way round. */
export type Outcome =
    | { status: "done"; action: PlannedAction; ms: number; launched?: { instanceId: string; pool: LaunchAttempt; tried: TriedPool[] }; drained?: "drained" | "not-registered" }
    /** A best-effort launch without capacity, or a place another batch already filled: nothing lost. */
    | { status: "skipped"; action: PlannedAction; ms: number; why: "no-capacity" | "already-launched"; tried: TriedPool[] }
    | { status: "failed"; action: PlannedAction; ms: number; error: string; tried: TriedPool[] };

export const LIVE_STATES: readonly InstanceState[] = ["pending", "running"];

export function isLive(instance: ObservedInstance): boolean {
    return LIVE_STATES.includes(instance.state);
}
