import { randomUUID } from "crypto";
import { setTimeout as sleepFor } from "timers/promises";
import { EC2Client } from "@aws-sdk/client-ec2";
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { FisClient, GetExperimentCommand, ListExperimentResolvedTargetsCommand, StartExperimentCommand } from "@aws-sdk/client-fis";
import { describeStackInstances } from "../handler/aws";
import { FIS_ACTION, FIS_TARGET } from "../infra/fleetSummary";
import type { FleetSummary } from "../infra/fleetSummary";
import { parseOptions, resolveZone, UsageError } from "./cli";
import { DeployedStack } from "./deployedStack";

/**
 * `npm run drill`: starts the stack's FIS experiment, which sends a real spot interruption
 * notice, then follows the target group until every interrupted instance has an InService
 * replacement, and reports how long that took and whether serving capacity fell below the
 * configured count on the way.
 */

export const DRILL_USAGE = "npm run drill -- --stack <name> [--zone <letter or zone>] [--timeout-minutes <1-60>] [--help]\n  Interrupts one spot instance of the stack (or, with --zone, every one in that zone) through AWS FIS, and reports how its replacements won the race.";

/** The notice FIS sends comes this long before the instance is interrupted. */
export const NOTICE_MS = 120_000;

/** The SPEC's goal for a replacement to be InService after the notice. */
export const GOAL_MS = 90_000;

export interface DrillOptions {
    stack: string;
    /** Interrupt every instance in this zone; one instance anywhere when absent. */
    zone?: string;
    timeoutMinutes: number;
}

export function parseDrillArgs(argv: string[]): DrillOptions {
    const options = parseOptions(argv, ["stack"], ["zone", "timeout-minutes"], DRILL_USAGE);
    const timeout = options["timeout-minutes"] ?? "10";
    if (!/^\d+$/.test(timeout) || Number(timeout) < 1 || Number(timeout) > 60) {
        throw new UsageError(`--timeout-minutes ${JSON.stringify(timeout)} is not allowed; allowed: a whole number from 1 to 60`, DRILL_USAGE);
    }
    return { stack: options.stack, zone: options.zone, timeoutMinutes: Number(timeout) };
}

/** The experiment template for the scope asked for: a zone, or one instance anywhere. */
export function chooseTemplate(deployed: DeployedStack, zone?: string): { scope: string; templateId: string } {
    const templates = deployed.drillTemplates;
    if (templates === undefined) {
        throw new Error(`stack ${deployed.name} has no drill templates; enable them with \`pulumi config set spot-availability:drill true --stack ${deployed.name}\` and \`pulumi up --stack ${deployed.name}\``);
    }
    const scope = zone === undefined ? "instance" : resolveZone(zone, deployed.fleet.region, deployed.fleet.zones);
    const templateId = templates[scope];
    if (templateId === undefined) {
        throw new Error(`stack ${deployed.name} has no drill template for ${scope}; run \`pulumi up --stack ${deployed.name}\` to declare it`);
    }
    return { scope, templateId };
}

/** One look at the fleet: each live instance of the stack, its zone and its target health. */
export interface Sample {
    at: number;
    /** Instance id → zone and target health (`unregistered` when not in the target group). */
    instances: Record<string, { zone: string; health: string }>;
}

export interface Replacement {
    noticed: string;
    zone: string;
    replacement?: string;
    replacementZone?: string;
    /** From the notice to the first sample that saw the replacement. */
    seenAfterMs?: number;
    /** From the notice to the first sample that saw the replacement healthy in the target group. */
    inServiceAfterMs?: number;
}

export interface DrillSummary {
    noticeAt: number;
    replacements: Replacement[];
    /** Every interrupted instance has an InService replacement. */
    complete: boolean;
    /** The fewest InService targets each zone had from the notice on. */
    lowestInService: Record<string, number>;
    /** Whether any zone had fewer InService targets than `instancesPerZone` at any sample after the notice. */
    droppedBelowCount: boolean;
    /** How long, at sample resolution, some zone was below its count. */
    belowCountMs: number;
}

function inServiceByZone(sample: Sample, zones: string[]): Record<string, number> {
    const counts: Record<string, number> = Object.fromEntries(zones.map((zone) => [zone, 0]));
    for (const { zone, health } of Object.values(sample.instances)) {
        if (health === "healthy" && zone in counts) {
            counts[zone] += 1;
        }
    }
    return counts;
}

/**
 * The drill's timeline from its samples. Instances first seen after the notice are the
 * replacements; each interrupted instance is paired with one, in its own zone first (where the
 * handler puts it unless that zone has no capacity), in the order they became InService.
 */
export function summarizeDrill(samples: Sample[], noticeAt: number, noticed: string[], fleet: Pick<FleetSummary, "zones" | "instancesPerZone">): DrillSummary {
    const before = samples.filter((sample) => sample.at < noticeAt);
    const after = samples.filter((sample) => sample.at >= noticeAt);
    const known = new Set((before.length > 0 ? before : samples.slice(0, 1)).flatMap((sample) => Object.keys(sample.instances)));

    const zoneOf = (id: string) => samples.find((sample) => id in sample.instances)?.instances[id].zone ?? "unknown";
    const newcomers = new Map<string, { zone: string; seenAt: number; inServiceAt?: number }>();
    for (const sample of after) {
        for (const [id, { zone, health }] of Object.entries(sample.instances)) {
            if (known.has(id)) {
                continue;
            }
            const newcomer = newcomers.get(id) ?? { zone, seenAt: sample.at };
            if (health === "healthy" && newcomer.inServiceAt === undefined) {
                newcomer.inServiceAt = sample.at;
            }
            newcomers.set(id, newcomer);
        }
    }
    const unpaired = [...newcomers.entries()]
        .sort(([, a], [, b]) => (a.inServiceAt ?? Infinity) - (b.inServiceAt ?? Infinity) || a.seenAt - b.seenAt);
    const take = (predicate: (zone: string) => boolean) => {
        const index = unpaired.findIndex(([, newcomer]) => predicate(newcomer.zone));
        return index < 0 ? undefined : unpaired.splice(index, 1)[0];
    };
    const replacements: Replacement[] = [...noticed].sort().map((id) => ({ noticed: id, zone: zoneOf(id) }));
    for (const sameZoneFirst of [true, false]) {
        for (const replacement of replacements.filter((r) => r.replacement === undefined)) {
            const match = take((zone) => !sameZoneFirst || zone === replacement.zone);
            if (match !== undefined) {
                const [id, newcomer] = match;
                Object.assign(replacement, {
                    replacement: id,
                    replacementZone: newcomer.zone,
                    seenAfterMs: newcomer.seenAt - noticeAt,
                    inServiceAfterMs: newcomer.inServiceAt === undefined ? undefined : newcomer.inServiceAt - noticeAt,
                });
            }
        }
    }

    const lowestInService: Record<string, number> = Object.fromEntries(fleet.zones.map((zone) => [zone, Infinity]));
    let belowCountMs = 0;
    let droppedBelowCount = false;
    after.forEach((sample, index) => {
        const counts = inServiceByZone(sample, fleet.zones);
        for (const zone of fleet.zones) {
            lowestInService[zone] = Math.min(lowestInService[zone], counts[zone]);
        }
        if (fleet.zones.some((zone) => counts[zone] < fleet.instancesPerZone)) {
            droppedBelowCount = true;
            belowCountMs += index + 1 < after.length ? after[index + 1].at - sample.at : 0;
        }
    });
    return {
        noticeAt,
        replacements,
        complete: noticed.length > 0 && replacements.every((r) => r.inServiceAfterMs !== undefined),
        lowestInService: Object.fromEntries(Object.entries(lowestInService).map(([zone, count]) => [zone, count === Infinity ? 0 : count])),
        droppedBelowCount,
        belowCountMs,
    };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function formatDrillReport(summary: DrillSummary, fleet: Pick<FleetSummary, "zones" | "instancesPerZone">): string[] {
    const lines = [`notice sent at ${new Date(summary.noticeAt).toISOString()} to ${summary.replacements.map((r) => `${r.noticed} (${r.zone})`).join(", ")}`];
    for (const r of summary.replacements) {
        if (r.replacement === undefined) {
            lines.push(`${r.noticed} (${r.zone}): no replacement seen`);
            continue;
        }
        const where = r.replacementZone === r.zone ? r.zone : `${r.replacementZone}, not ${r.zone}`;
        const inService = r.inServiceAfterMs === undefined
            ? "not InService yet"
            : `InService +${seconds(r.inServiceAfterMs)} (${r.inServiceAfterMs <= GOAL_MS ? "within" : "outside"} the ${GOAL_MS / 1000} s goal; ${r.inServiceAfterMs < NOTICE_MS ? "before" : "after"} the interruption at +${NOTICE_MS / 1000} s)`;
        lines.push(`${r.noticed} → ${r.replacement} (${where}): seen +${seconds(r.seenAfterMs ?? 0)}, ${inService}`);
    }
    const lowest = fleet.zones.map((zone) => `${zone} ${summary.lowestInService[zone]}`).join(", ");
    lines.push(summary.droppedBelowCount
        ? `serving capacity dropped below ${fleet.instancesPerZone} InService per zone, for about ${seconds(summary.belowCountMs)}; lowest InService: ${lowest}`
        : `serving capacity never dropped below ${fleet.instancesPerZone} InService per zone; lowest InService: ${lowest}`);
    return lines;
}

export interface DrillClients {
    fis: Pick<FisClient, "send">;
    ec2: EC2Client;
    elb: ElasticLoadBalancingV2Client;
}

export interface FollowOptions {
    intervalMs: number;
    timeoutMs: number;
    print: (line: string) => void;
    now?: () => number;
}

export interface DrillResult {
    experimentId: string;
    summary?: DrillSummary;
    timedOut: boolean;
}

/** The stack's live instances and their target health, in one sample. */
export async function observe(clients: Pick<DrillClients, "ec2" | "elb">, deployed: DeployedStack, now: () => number): Promise<Sample> {
    const [instances, health] = await Promise.all([
        describeStackInstances(clients.ec2, deployed.fleet.stack, ["pending", "running", "shutting-down", "stopping"]),
        clients.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: deployed.targetGroupArn })),
    ]);
    const states = Object.fromEntries((health.TargetHealthDescriptions ?? []).map((d) => [d.Target?.Id, d.TargetHealth?.State ?? "unknown"]));
    return { at: now(), instances: Object.fromEntries(instances.map(({ id, zone }) => [id, { zone, health: states[id] ?? "unregistered" }])) };
}

/** Instance ids in FIS's resolved targets, whichever key (id or ARN) carries them. */
export function instanceIdsOf(targetInformation: Record<string, string>[]): string[] {
    return [...new Set(targetInformation.flatMap((info) => Object.values(info).flatMap((value) => value.match(/\bi-[0-9a-f]{8,17}\b/g) ?? [])))];
}

/**
 * Starts the experiment and follows the fleet until every interrupted instance has an InService
 * replacement and every zone is back at its count, or the timeout passes. Sampling on an
 * interval is the point here: the timeline is the result, and no SDK waiter reports one.
 */
export async function runDrill(clients: DrillClients, deployed: DeployedStack, templateId: string, options: FollowOptions): Promise<DrillResult> {
    const now = options.now ?? Date.now;
    const { fleet } = deployed;
    const baseline = await observe(clients, deployed, now);
    const short = Object.entries(inServiceByZone(baseline, fleet.zones)).filter(([, count]) => count < fleet.instancesPerZone);
    if (short.length > 0) {
        throw new Error(`stack ${deployed.name} is not at full strength (${short.map(([zone, count]) => `${zone}: ${count} of ${fleet.instancesPerZone} InService`).join(", ")}); a drill now would measure the outage already under way, so none was started`);
    }

    const started = await clients.fis.send(new StartExperimentCommand({
        experimentTemplateId: templateId,
        clientToken: randomUUID(),
        tags: { Name: `npm run drill: ${deployed.name}` },
    }));
    const experimentId = started.experiment?.id as string;
    options.print(`started FIS experiment ${experimentId} from template ${templateId}`);

    const samples: Sample[] = [baseline];
    const deadline = now() + options.timeoutMs;
    let noticeAt: number | undefined;
    let noticed: string[] = [];
    let summary: DrillSummary | undefined;
    let lastCounts = "";
    while (now() < deadline) {
        await sleepFor(options.intervalMs);
        const [{ experiment }, sample] = await Promise.all([
            clients.fis.send(new GetExperimentCommand({ id: experimentId })),
            observe(clients, deployed, now),
        ]);
        samples.push(sample);
        const status = experiment?.state?.status;
        if (status === "failed" || status === "stopped") {
            throw new Error(`FIS experiment ${experimentId} ${status}: ${experiment?.state?.reason ?? "no reason given"}`);
        }
        noticeAt ??= experiment?.actions?.[FIS_ACTION]?.startTime?.getTime();
        if (noticeAt !== undefined && noticed.length === 0) {
            const resolved = await clients.fis.send(new ListExperimentResolvedTargetsCommand({ experimentId, targetName: FIS_TARGET }));
            noticed = instanceIdsOf((resolved.resolvedTargets ?? []).map((target) => target.targetInformation ?? {}));
        }
        const inService = inServiceByZone(sample, fleet.zones);
        const counts = Object.entries(inService).map(([zone, count]) => `${zone} ${count}/${fleet.instancesPerZone}`).join(", ");
        if (counts !== lastCounts) {
            options.print(`${noticeAt === undefined ? "before the notice" : `+${seconds(sample.at - noticeAt)}`}  InService: ${counts}`);
            lastCounts = counts;
        }
        if (noticeAt !== undefined && noticed.length > 0) {
            summary = summarizeDrill(samples, noticeAt, noticed, fleet);
            const full = Object.values(inService).every((count) => count >= fleet.instancesPerZone);
            if (summary.complete && full) {
                return { experimentId, summary, timedOut: false };
            }
        }
    }
    return { experimentId, summary, timedOut: true };
}
