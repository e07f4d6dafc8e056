import { VirtualClock } from "./clock";
import { EventPath, FunctionModel } from "./delivery";
import { ModelledFleet } from "./fleet";
import { Model } from "./model";

/** What every policy plays on: the clock, the modelled fleet, AWS behind the proxy, and the stack. */

export interface StackFacts {
    region: string;
    /** The `spot-availability:stack` tag value. */
    stack: string;
    zones: string[];
    instancesPerZone: number;
    instanceName: string;
    instanceTypes: string[];
    spotProductDescription: string;
    subnetsByZone: Record<string, string>;
    launchTemplateId: string;
    targetGroupArn: string;
}

export interface Stage {
    clock: VirtualClock;
    model: Model;
    fleet: ModelledFleet;
    /** The clock-driven proxy: AWS as the model says it behaves. */
    endpoint: string;
    stack: StackFacts;
    /** A line of the timeline, at the current modelled time. */
    log(text: string): void;
    /** Set once the scenario is over: a policy starts nothing new. */
    readonly stopped: boolean;
    /** Runs work the clock does not wait on; its failure ends the rehearsal with that error. */
    spawn(work: Promise<unknown>): void;
    /** Wires a function in: the events `path`'s rules match reach `handler` the way `path` declares. */
    deliver(path: EventPath, handler: (payload: unknown) => Promise<unknown>): Promise<FunctionModel>;
}

export const POLICY_NAMES = ["project", "seed", "asg", "asg-cr"] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];
