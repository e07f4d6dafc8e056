/**
 * Everything the handler needs to know about its stack. The program bakes these values into the
 * Lambda archive; nothing is read from the environment except what Lambda itself provides.
 */

/** When a warned instance leaves rotation: once its replacement serves (or at the deadline), or at once. */
export const DRAIN_WHEN = ["replacement-healthy", "warning"] as const;
export type DrainWhen = (typeof DRAIN_WHEN)[number];

/** The target group's timing, which the deferred drain works from. */
export interface TargetGroupTiming {
    healthCheckIntervalSeconds: number;
    healthyThreshold: number;
    deregistrationDelaySeconds: number;
}

/** How a release rolls the fleet (an Auto Scaling group's instance refresh at minimum healthy 100 %). */
export interface ReleaseSettings {
    /** A zone's instances replaced at once, as a percentage of `instancesPerZone` (rounded up, at least one). */
    batchPercent: number;
    /** How long a new version's instance may take to become healthy before the release stops and rolls back. */
    healthTimeoutSeconds: number;
}

export interface HandlerSettings {
    /** Value of the `spot-availability:stack` tag that marks this stack's instances. */
    stack: string;
    region: string;
    instanceName: string;
    /** Preferred first; the rest are capacity fallbacks. */
    instanceTypes: string[];
    instancesPerZone: number;
    /** Subnet that holds each zone's instances, keyed by zone name. */
    subnetsByZone: Record<string, string>;
    launchTemplateId: string;
    /**
     * The template's latest version: what `pulumi up` declared and the deploy releases. The event
     * path launches the template's default version instead, the released one, which the deploy
     * promotes only once the new version's first instances serve.
     */
    launchTemplateVersion: number;
    /** The instances' security groups: in the deploy's input, so replacing one runs the deploy. */
    securityGroupIds: string[];
    targetGroupArn: string;
    targetGroup: TargetGroupTiming;
    spotProductDescription: string;
    /** Maximum hourly spot price; undefined lets AWS cap it at the on-demand price. */
    spotMaxPrice?: string;
    onDemandFallback: boolean;
    replaceOnRebalance: boolean;
    drainWhen: DrainWhen;
    release: ReleaseSettings;
    /** The queue the handler reads its events from; its delayed messages to it are its timers. */
    queueUrl: string;
}
