import * as aws from "@pulumi/aws";
import * as awsx from "@pulumi/awsx";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, NetworkSource } from "./config";

/**
 * The network the service runs in: the user's subnets, or a VPC the stack creates with public
 * subnets only, as an `awsx.ec2.Vpc`. No NAT gateways: one costs more per month than the
 * instances it would serve.
 *
 * A stack-created VPC spans every standard zone of the region, whatever `zones` says, so that no
 * fleet edit touches it: awsx names each subnet by its position in `availabilityZoneNames`
 * (pulumi-awsx `awsx/ec2/subnetNaming.ts`: "the Pulumi resource name is always the index-based
 * legacySubnetName") and a subnet's `availability_zone` and `cidr_block` are ForceNew
 * (terraform-provider-aws `internal/service/ec2/vpc_subnet.go`). The zones are sorted by name, so
 * a zone AWS adds later (a later letter) takes the next position, and each subnet's CIDR comes from
 * its zone's letter, so it never moves either.
 */

/** What the network will be, with every zone known before a resource is declared. */
export type NetworkPlan =
    /** `vpcZones`: every zone of the region, by name; `fleetZones`: where the instances run. */
    | { kind: "create"; vpcZones: string[]; fleetZones: string[] }
    | { kind: "existing"; vpcId: string; subnets: { zone: string; subnetId: string }[] };

export interface SubnetFacts {
    id: string;
    zone: string;
    vpcId: string;
}

/**
 * The zones the fleet runs in, in a stack-created VPC: the configured ones (letters or names), or
 * the first `zoneCount` zones of the region by name.
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
    const zones = await aws.getAvailabilityZones({
        // Standard zones only: no Local or Wavelength Zones, none that needs an opt-in. No `state`
        // filter: a zone impaired while `pulumi up` runs must keep its place in the VPC's list.
        filters: [
            { name: "opt-in-status", values: ["opt-in-not-required"] },
            { name: "zone-type", values: ["availability-zone"] },
        ],
    });
    const vpcZones = [...zones.names].sort();
    return { kind: "create", vpcZones, fleetZones: resolveZones(source.zones, source.zoneCount, vpcZones, region) };
}

/** The stack-created VPC's address space: sixteen /20 blocks, one per zone letter a to p. */
export const VPC_CIDR = "10.0.0.0/16";
const ZONE_CIDR_BITS = 20;
const ZONE_LETTERS = 16;

/**
 * A zone's public subnet, fixed by its letter: letter k (a = 0) gets 10.0.(16k).0/20, whatever
 * other zones exist, so adding or dropping a zone never moves another zone's subnet.
 */
export function zoneCidr(zone: string): string {
    const letter = zone.slice(-1);
    const index = letter.charCodeAt(0) - "a".charCodeAt(0);
    if (!/^[a-z]$/.test(letter) || index >= ZONE_LETTERS) {
        throw new Error(`${zone}: only zones a to p fit the VPC's ${VPC_CIDR} at /${ZONE_CIDR_BITS} per zone`);
    }
    return `10.0.${index * (1 << (ZONE_CIDR_BITS - 16))}.0/${ZONE_CIDR_BITS}`;
}

/**
 * The `awsx.ec2.Vpc` arguments of a stack-created network: a public subnet in each zone, at its
 * letter's CIDR, no NAT gateway. awsx honours explicit `cidrBlocks` only when the strategy is not
 * "Legacy" (pulumi-awsx `awsx/ec2/vpc.ts` `pickSubnetAllocator`: an explicit layout goes to the
 * ExplicitAllocator, `getSubnetSpecsExplicit` in `awsx/ec2/subnetDistributorNew.ts`, which takes
 * `cidrBlocks[azIndex]`); "Exact" would also refuse the gaps left for zones that do not exist.
 */
export function vpcArgs(zones: string[]): awsx.ec2.VpcArgs {
    return {
        cidrBlock: VPC_CIDR,
        availabilityZoneNames: zones,
        subnetStrategy: "Auto",
        subnetSpecs: [{ type: "Public", cidrBlocks: zones.map(zoneCidr) }],
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
    /** One subnet per zone of the network, in zone order: the load balancer spans them all. */
    public readonly subnets: { zone: string; subnetId: pulumi.Output<string> }[];
    /** The subnets of the zones the fleet runs in. */
    public readonly fleetSubnets: { zone: string; subnetId: pulumi.Output<string> }[];

    constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:Network", name, {}, opts);
        const plan = args.plan;
        if (plan.kind === "existing") {
            this.vpcId = pulumi.output(plan.vpcId);
            this.subnets = plan.subnets.map(({ zone, subnetId }) => ({ zone, subnetId: pulumi.output(subnetId) }));
            this.fleetSubnets = this.subnets;
        } else {
            const vpc = new awsx.ec2.Vpc(name, vpcArgs(plan.vpcZones), { parent: this });
            this.vpcId = vpc.vpcId;
            // awsx creates the subnets zone by zone in availabilityZoneNames' order, and lists them so.
            this.subnets = plan.vpcZones.map((zone, index) => ({ zone, subnetId: vpc.publicSubnetIds.apply((ids) => ids[index]) }));
            this.fleetSubnets = this.subnets.filter((subnet) => plan.fleetZones.includes(subnet.zone));
        }
        this.registerOutputs({ vpcId: this.vpcId, subnets: this.subnets });
    }
}
