import { EC2Client } from "@aws-sdk/client-ec2";
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import Table from "cli-table3";
import { describeStackInstances } from "../handler/aws";
import { instanceNameTag } from "../handler/tags";
import { parseOptions, resolveZone } from "./cli";
import { DeployedStack } from "./deployedStack";

/**
 * `npm run status -- --stack <name>`: the fleet as it is now, not as the last `pulumi up` left it
 * (that is the `instances` output): every instance of the stack that has not terminated, with its
 * zone, name, type, market, who launched it, its target health and its age.
 */

export const STATUS_USAGE = "npm run status -- --stack <name> [--zone <letter or zone>] [--help]\n  The stack's live fleet: zone, name, instance, type, market, launched by, target health, age.";

export function parseStatusArgs(argv: string[]): { stack: string; zone?: string } {
    const options = parseOptions(argv, ["stack"], ["zone"], STATUS_USAGE);
    return { stack: options.stack, zone: options.zone };
}

export interface FleetRow {
    zone: string;
    name: string;
    instance: string;
    state: string;
    type: string;
    market: string;
    launchedBy: string;
    /** Target health, or `unregistered`. */
    targetHealth: string;
    ageSeconds: number;
}

/** One DescribeInstances (by the stack's tag) and one DescribeTargetHealth: the rows, by zone, oldest first. */
export async function readFleetStatus(clients: { ec2: EC2Client; elb: ElasticLoadBalancingV2Client }, deployed: DeployedStack, now: number, zone?: string): Promise<FleetRow[]> {
    const { fleet } = deployed;
    const only = zone === undefined ? undefined : resolveZone(zone, fleet.region, fleet.zones);
    const [instances, health] = await Promise.all([
        describeStackInstances(clients.ec2, fleet.stack, ["pending", "running", "shutting-down", "stopping", "stopped"]),
        clients.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: deployed.targetGroupArn })),
    ]);
    const targets = new Map((health.TargetHealthDescriptions ?? []).map((d) => [d.Target?.Id, d.TargetHealth?.State ?? "unavailable"]));
    return instances
        .filter((i) => only === undefined || i.zone === only)
        .sort((a, b) => a.zone.localeCompare(b.zone) || a.launchTime - b.launchTime)
        .map((i) => ({
            zone: i.zone,
            name: i.zone.startsWith(fleet.region) ? instanceNameTag(fleet.instanceName, i.zone, fleet.region) : "",
            instance: i.id,
            state: i.state,
            type: i.instanceType,
            market: i.market,
            launchedBy: i.launchedBy === "pulumi" ? "deploy" : i.launchedBy ?? "untagged",
            targetHealth: targets.get(i.id) ?? "unregistered",
            ageSeconds: Math.max(0, Math.round((now - i.launchTime) / 1000)),
        }));
}

/** `3d 4h`, `2h 5m`, `4m 10s`, `12s`: the two largest units. */
export function formatAge(seconds: number): string {
    const units: [string, number][] = [["d", 86_400], ["h", 3_600], ["m", 60], ["s", 1]];
    const parts: string[] = [];
    let rest = seconds;
    for (const [unit, size] of units) {
        if (rest >= size || (unit === "s" && parts.length === 0)) {
            parts.push(`${Math.floor(rest / size)}${unit}`);
            rest %= size;
        }
    }
    return parts.slice(0, 2).join(" ");
}

/** The table, and a line per zone: how many of its instances serve, against instancesPerZone. */
export function formatStatus(rows: FleetRow[], deployed: DeployedStack, zone?: string): string[] {
    const table = new Table({ head: ["zone", "name", "instance", "state", "type", "market", "launched by", "target health", "age"], style: { head: [], border: [] } });
    for (const row of rows) {
        table.push([row.zone, row.name, row.instance, row.state, row.type, row.market, row.launchedBy, row.targetHealth, formatAge(row.ageSeconds)]);
    }
    const { fleet } = deployed;
    const zones = zone === undefined ? fleet.zones : [resolveZone(zone, fleet.region, fleet.zones)];
    const serving = zones.map((z) => `${z}: ${rows.filter((r) => r.zone === z && r.targetHealth === "healthy").length} of ${fleet.instancesPerZone} healthy`);
    return [`stack ${deployed.name} (${fleet.region})`, table.toString(), serving.join("; ")];
}
