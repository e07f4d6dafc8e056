import * as assert from "assert";
import { checkSubnets, resolveZones, vpcArgs, zoneCidr } from "../infra/network";

/** Zones and subnets: resolved and checked before anything is declared. */

const AVAILABLE = ["us-east-2c", "us-east-2a", "us-east-2b"];

describe("resolveZones", () => {
    it("takes the region's first zoneCount zones when none are listed", () => {
        assert.deepStrictEqual(resolveZones([], 2, AVAILABLE, "us-east-2"), ["us-east-2a", "us-east-2b"]);
    });

    it("accepts letters and full names alike", () => {
        assert.deepStrictEqual(resolveZones(["c", "us-east-2a"], 3, AVAILABLE, "us-east-2"), ["us-east-2c", "us-east-2a"]);
    });

    it("rejects a zone the region lacks, listing the letters it has", () => {
        assert.throws(() => resolveZones(["a", "f"], 3, AVAILABLE, "us-east-2"), /zones: "f" is not an available zone of us-east-2; allowed: a, b, c/);
    });

    it("rejects a zone listed twice", () => {
        assert.throws(() => resolveZones(["a", "us-east-2a"], 3, AVAILABLE, "us-east-2"), /zones: .* names a zone twice/);
    });

    it("rejects a zoneCount larger than the region", () => {
        assert.throws(() => resolveZones([], 4, AVAILABLE, "us-east-2"), /zoneCount: 4 zones asked for, but us-east-2 offers 3/);
    });
});

describe("checkSubnets", () => {
    it("orders subnets by zone and keeps their VPC", () => {
        assert.deepStrictEqual(checkSubnets([
            { id: "subnet-b", zone: "us-east-2b", vpcId: "vpc-1" },
            { id: "subnet-a", zone: "us-east-2a", vpcId: "vpc-1" },
        ]), {
            kind: "existing",
            vpcId: "vpc-1",
            subnets: [{ zone: "us-east-2a", subnetId: "subnet-a" }, { zone: "us-east-2b", subnetId: "subnet-b" }],
        });
    });
});

describe("zoneCidr", () => {
    it("fixes each zone's /20 by its letter, whatever other zones exist", () => {
        assert.deepStrictEqual(["us-east-1a", "us-east-1b", "us-east-1f", "eu-west-1p"].map(zoneCidr), ["10.0.0.0/20", "10.0.16.0/20", "10.0.80.0/20", "10.0.240.0/20"]);
    });

    it("refuses a zone whose letter does not fit the VPC", () => {
        assert.throws(() => zoneCidr("us-east-1q"), /us-east-1q: only zones a to p fit the VPC's 10.0.0.0\/16/);
    });
});

describe("the stack-created VPC, as awsx.ec2.Vpc arguments", () => {
    it("spans the given zones with public subnets at their letters' CIDRs (explicit, so strategy Auto), and no NAT gateway", () => {
        assert.deepStrictEqual(vpcArgs(["us-east-2a", "us-east-2c"]), {
            cidrBlock: "10.0.0.0/16",
            availabilityZoneNames: ["us-east-2a", "us-east-2c"],
            subnetStrategy: "Auto",
            subnetSpecs: [{ type: "Public", cidrBlocks: ["10.0.0.0/20", "10.0.32.0/20"] }],
            natGateways: { strategy: "None" },
            enableDnsHostnames: true,
            enableDnsSupport: true,
        });
    });
});
