import { PolicyName } from "./stage";

/**
 * The rehearsal's scenarios (names fixed): which fleet, which notices AWS sends and when, which
 * pools lose capacity, what happens to the events on their way, and whether a new release of the
 * application rolls the fleet.
 */

export const SCENARIO_NAMES = ["single-warning", "rebalance-first", "zone-outage-1", "zone-outage-3", "zone-outage-10", "storm", "lost-event", "duplicates", "release", "release-warnings"] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/** A notice to one instance of the initial fleet: the `index`-th of its zone (by launch order). */
export interface ScriptedNotice {
    zone: string;
    index: number;
    warningAt: number;
    /** An earlier rebalance recommendation; without one, the model sends it along with the warning. */
    rebalanceAt?: number;
}

export interface Scenario {
    name: ScenarioName;
    summary: string;
    region: string;
    /** Zone letters. */
    zones: string[];
    instancesPerZone: number;
    notices: ScriptedNotice[];
    /** Zone letters whose spot pools are empty, and for how long from the first notice. */
    spotOutage?: { zone: string; forS: number };
    /** Notices EventBridge never delivers (the warning and the recommendation that comes with it). */
    lost?: { zone: string; index: number }[];
    /** EventBridge delivers every event twice (it promises at least once). */
    everyEventTwice?: boolean;
    /**
     * A new release: `pulumi up` has made the launch template's next version (the default stays
     * the current one), and at `atS` the policy rolls the fleet to it.
     */
    release?: { atS: number };
    /** The policies the scenario means something for (default: every one). */
    policies?: readonly PolicyName[];
    /** Modelled seconds the scenario runs. */
    horizonS: number;
}

/** Seconds into the scenario of the first notice: the schedule and warm-up are already under way. */
const FIRST_NOTICE_S = 30;

function zoneOutage(perZone: 1 | 3 | 10): Scenario {
    return {
        name: `zone-outage-${perZone}`,
        summary: `3 zones × ${perZone}; every instance of zone b warned within 2 s; b's spot pools empty for 30 minutes`,
        region: "us-east-2",
        zones: ["a", "b", "c"],
        instancesPerZone: perZone,
        notices: Array.from({ length: perZone }, (_, index) => ({ zone: "b", index, warningAt: FIRST_NOTICE_S + (2 * index) / perZone })),
        spotOutage: { zone: "b", forS: 30 * 60 },
        horizonS: 45 * 60,
    };
}

/** When the release starts: the schedule and warm-up are already under way. */
const RELEASE_S = 60;

/**
 * The zone-outage-10 fleet (3 zones × 10) rolled to a new release, by the project's deploy and by
 * an Auto Scaling group's instance refresh; the seed has no notion of a release. `warnings`: one
 * instance per zone is warned a minute into the release.
 */
function release(warnings: boolean): Scenario {
    return {
        name: warnings ? "release-warnings" : "release",
        summary: `3 zones × 10; a new launch template version rolled out at t+${RELEASE_S} s${warnings ? "; one instance per zone warned a minute into it" : ""}`,
        region: "us-east-2",
        zones: ["a", "b", "c"],
        instancesPerZone: 10,
        notices: warnings ? ["a", "b", "c"].map((zone, z) => ({ zone, index: 3 * z, warningAt: RELEASE_S + 60 + z })) : [],
        release: { atS: RELEASE_S },
        policies: ["project", "asg"],
        horizonS: 30 * 60,
    };
}

const singleWarning = { region: "us-east-2", zones: ["a", "b", "c"], instancesPerZone: 1, notices: [{ zone: "b", index: 0, warningAt: FIRST_NOTICE_S }] };

export const SCENARIOS: Record<ScenarioName, Scenario> = {
    "single-warning": { name: "single-warning", summary: "3 zones × 1; one interruption warning", ...singleWarning, horizonS: 10 * 60 },
    "rebalance-first": {
        name: "rebalance-first",
        summary: "3 zones × 1; a rebalance recommendation 3 minutes before the warning",
        region: "us-east-2",
        zones: ["a", "b", "c"],
        instancesPerZone: 1,
        notices: [{ zone: "b", index: 0, rebalanceAt: FIRST_NOTICE_S, warningAt: FIRST_NOTICE_S + 180 }],
        horizonS: 12 * 60,
    },
    "zone-outage-1": zoneOutage(1),
    "zone-outage-3": zoneOutage(3),
    "zone-outage-10": zoneOutage(10),
    storm: {
        name: "storm",
        summary: "6 zones × 10 (60 instances); 30 warnings within 10 s, five per zone",
        region: "us-east-1",
        zones: ["a", "b", "c", "d", "e", "f"],
        instancesPerZone: 10,
        notices: ["a", "b", "c", "d", "e", "f"].flatMap((zone, z) => [0, 2, 4, 6, 8].map((index, i) => ({ zone, index, warningAt: FIRST_NOTICE_S + ((z * 5 + i) * 10) / 30 }))),
        horizonS: 20 * 60,
    },
    "lost-event": {
        name: "lost-event",
        summary: "3 zones × 1; one warning (and its recommendation) never delivered: the schedule is the backstop",
        ...singleWarning,
        lost: [{ zone: "b", index: 0 }],
        horizonS: 15 * 60,
    },
    duplicates: {
        name: "duplicates",
        summary: "3 zones × 1; one warning; EventBridge delivers every event twice",
        ...singleWarning,
        everyEventTwice: true,
        horizonS: 10 * 60,
    },
    release: release(false),
    "release-warnings": release(true),
};
