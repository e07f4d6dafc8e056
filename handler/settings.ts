/**
 * Everything the handler needs to know about its stack. The program bakes these values into the
 * Lambda archive; nothing is read from the environment except what Lambda itself provides.
 */
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
    launchTemplateVersion: string;
    targetGroupArn: string;
    spotProductDescription: string;
    /** Maximum hourly spot price; undefined lets AWS cap it at the on-demand price. */
    spotMaxPrice?: string;
    onDemandFallback: boolean;
    replaceOnRebalance: boolean;
}
