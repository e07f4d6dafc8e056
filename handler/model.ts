import { InstanceState } from "./events";
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
}

/** Target health states of ELBv2. */
export type TargetState = "initial" | "healthy" | "unhealthy" | "unused" | "draining" | "unavailable";

export interface Observation {
    /** Every instance carrying this stack's tag, in any state. */
    instances: ObservedInstance[];
    /** Target health by instance id; undefined when the event did not need it. */
    targets?: Record<string, TargetState>;
    /** Current spot price of the preferred instance type by zone; undefined when not read. */
    prices?: Record<string, number>;
}

/** Current spot prices: zone → instance type → USD per hour. */
export type SpotPrices = Record<string, Record<string, number>>;

export interface LaunchAttempt {
    zone: string;
    instanceType: string;
    market: Market;
}

export type Action =
    /** Deregister from the target group: in-flight requests finish within the deregistration delay. */
    | { kind: "drain"; instanceId: string; reason: string }
    /**
     * Launch the first attempt that has capacity, then register it once it runs. A best-effort
     * launch that finds no capacity is not a failure: the fleet already holds its count.
     */
    | { kind: "launch"; attempts: LaunchAttempt[]; replaces?: string; idempotencyKey: string; reason: string; bestEffort?: boolean }
    | { kind: "register"; instanceId: string; reason: string }
    | { kind: "terminate"; instanceId: string; reason: string };

export const LIVE_STATES: readonly InstanceState[] = ["pending", "running"];

export function isLive(instance: ObservedInstance): boolean {
    return LIVE_STATES.includes(instance.state);
}
