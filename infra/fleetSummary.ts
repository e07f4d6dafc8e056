/**
 * What the operator tools (`npm run drill`, `prices`, `status`) need to know about the program: the
 * fleet summary it exports and the names its drill templates use. This module loads neither
 * Pulumi nor the AWS SDK, so the tools never load `@pulumi/aws`.
 */

/** The `fleet` stack output. */
export interface FleetSummary {
    region: string;
    /** The `spot-availability:stack` tag value every instance of the stack carries. */
    stack: string;
    /** Instances are named `<instanceName>-<zone letter>`. */
    instanceName: string;
    zones: string[];
    instancesPerZone: number;
    instanceTypes: string[];
    spotProductDescription: string;
}

/** Tag on each drill template that says what it interrupts: `instance`, or a zone name. */
export const DRILL_TAG = "spot-availability:drill";

/** What a drill template interrupts: `instance` (one, anywhere) or a zone's name (all of that zone). */
export type DrillScope = string;

/** The name each drill template gives the instances it interrupts; `npm run drill` asks FIS for them by it. */
export const FIS_TARGET = "spot-instances";

/** The name of the drill templates' one action; its start time is when the notice went out. */
export const FIS_ACTION = "interrupt";
