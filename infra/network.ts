import * as aws from "@pulumi/aws";
import * as awsx from "@pulumi/awsx";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, NetworkSource } from "./config";

/**
 * The network the service runs in: the user's subnets, or a VPC the stack creates with public
 * subnets only, as an `awsx.ec2.Vpc`. No NAT gateways: one costs more per month than the
 * instances it would serve.
 */

/** What the network will be, with every zone known before a resource is declared. */
export type NetworkPlan =
    | { kind: "create"; zones: string[] }
    | { kind: "existing"; vpcId: string; subnets: { zone: string; subnetId: string }[] };

export interface SubnetFacts {
    id: string;
    zone: string;
    vpcId: string;
}

/**
 * The zones a stack-created VPC spans: the configured ones (letters or names), or the first
 * `zoneCount` zones of the region.
 */
export function resolveZones(requested: string[], zoneCount: number, available: string[], region: string): string[] {
    const allowed = [...available].sort();
    if (requested.length === 0) {
        if (allowed.length < zoneCount) {
            throw new ConfigError("zoneCount", `${zoneCount} zones asked for, but ${region} offers ${allowed.length} (${allowed.join(", ")}); allowed: 2 to ${allowed.length}`);
        }
        return allowed.slice(0, zoneCount);
    }
    const zones = requested.map((zone) => (zone.length === 1 ? `${region}${zone}` : zone));
    for (const [index, zone] of zones.entries()) {
        if (!allowed.includes(zone)) {
            const letters = allowed.map((name) => name.slice(region.length)).join(", ");
            throw new ConfigError("zones", `${JSON.stringify(requested[index])} is not an available zone of ${region}; allowed: ${letters}`);
        }
    }
    if (new Set(zones).size !== zones.length) {
        throw new ConfigError("zones", `${JSON.stringify(requested)} names a zone twice; allowed: each zone once`);
    }
    return zones;
}

/** Checks the configured subnets: one VPC, one subnet per zone, at least two zones. */
export function checkSubnets(subnets: SubnetFacts[]): Extract<NetworkPlan, { kind: "existing" }> {
    const vpcs = [...new Set(subnets.map((subnet) => subnet.vpcId))];
    if (vpcs.length !== 1) {
        throw new ConfigError("subnetIds", `the subnets belong to several VPCs (${vpcs.join(", ")}); allowed: subnets of one VPC`);
    }
    const byZone = new Map<string, string>();
    for (const subnet of subnets) {
        const twin = byZone.get(subnet.zone);
        if (twin) {
            throw new ConfigError("subnetIds", `${twin} and ${subnet.id} are both in ${subnet.zone}; allowed: one subnet per zone`);
        }
        byZone.set(subnet.zone, subnet.id);
    }
    return {
        kind: "existing",
        vpcId: vpcs[0],
        subnets: [...byZone].map(([zone, subnetId]) => ({ zone, subnetId })).sort((a, b) => a.zone.localeCompare(b.zone)),
    };
}

/** Looks up zones or subnets in the account; runs before any resource is declared. */
export async function lookupNetwork(source: NetworkSource, region: string): Promise<NetworkPlan> {
    if (source.kind === "existing") {
        const subnets = await Promise.all(
            source.subnetIds.map(async (id) => {
                try {
                    const subnet = await aws.ec2.getSubnet({ id });
                    return { id, zone: subnet.availabilityZone, vpcId: subnet.vpcId };
                } catch (error) {
                    throw new ConfigError("subnetIds", `${id} cannot be read in ${region} (${(error as Error).message}); allowed: ids of existing subnets in ${region}`);
                }
            }),
        );
        return checkSubnets(subnets);
    }
    const available = await aws.getAvailabilityZones({
        state: "available",
        filters: [{ name: "opt-in-status", values: ["opt-in-not-required"] }],
    });
    return { kind: "create", zones: resolveZones(source.zones, source.zoneCount, available.names, region) };
}

/** The stack-created VPC's address space, divided evenly between its zones' public subnets (awsx's "Auto" strategy). */
export const VPC_CIDR = "10.0.0.0/16";

/** The `awsx.ec2.Vpc` arguments of a stack-created network: public subnets in the given zones, no NAT gateway. */
export function vpcArgs(zones: string[]): awsx.ec2.VpcArgs {
    return {
        cidrBlock: VPC_CIDR,
        availabilityZoneNames: zones,
        subnetStrategy: "Auto",
        subnetSpecs: [{ type: "Public" }],
        natGateways: { strategy: "None" },
        enableDnsHostnames: true,
        enableDnsSupport: true,
    };
}

export interface NetworkArgs {
    plan: NetworkPlan;
}

export class Network extends pulumi.ComponentResource {
    public readonly vpcId: pulumi.Output<string>;
    /** One subnet per zone, in zone order. */
    public readonly subnets: { zone: string; subnetId: pulumi.Output<string> }[];

    constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:Network", name, {}, opts);
        const plan = args.plan;
        if (plan.kind === "existing") {
            this.vpcId = pulumi.output(plan.vpcId);
            this.subnets = plan.subnets.map(({ zone, subnetId }) => ({ zone, subnetId: pulumi.output(subnetId) }));
        } else {
            const vpc = new awsx.ec2.Vpc(name, vpcArgs(plan.zones), { parent: this });
            this.vpcId = vpc.vpcId;
            // awsx creates the subnets zone by zone in availabilityZoneNames' order, and lists them so.
            this.subnets = plan.zones.map((zone, index) => ({ zone, subnetId: vpc.publicSubnetIds.apply((ids) => ids[index]) }));
        }
        this.registerOutputs({ vpcId: this.vpcId, subnets: this.subnets });
    }
}
