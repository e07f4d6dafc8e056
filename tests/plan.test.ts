import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { vpcArgs } from "../infra/network";
import { Account, DEFAULT_ACCOUNT, REGION_ZONES, runProgram } from "../rehearsal/program";
import { deleted, key, Plan, PlannedResource, planner, REPLACE_ON } from "../rehearsal/replaceOn";

/**
 * Every config edit a user makes on day two, planned as the engine would diff it against the dev
 * stack (`Pulumi.dev.yaml`): what it replaces, creates and deletes, whether the deploy invocation
 * runs (its input changed) and whether it is a release (a new launch template version). The
 * README's "Day two: what each edit does" is this table.
 */

const INVOCATION = "aws:lambda/invocation:Invocation";
const TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate";
/** What running instances use, or the site serves through: a fleet edit replaces none of them. */
const FLEET_DEPENDENCIES = [
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:lb/targetGroup:TargetGroup",
    "aws:lb/listener:Listener",
    TEMPLATE,
];

type Config = Record<string, unknown>;
const zones = (...letters: string[]) => ({ "spot-availability:zones": letters });
const set = (name: string, value: unknown) => ({ [`spot-availability:${name}`]: value });

/** `Subnet spot-network-public-2`: the type's last segment and the logical name. */
const label = (resource: PlannedResource) => `${resource.type.split(":").pop()} ${resource.name}`;

interface Outcome {
    replaced: string[];
    created: string[];
    deleted: string[];
    updated: string[];
    /** The deploy invocation's input changed: `pulumi up` runs the deploy. */
    deploy: boolean;
    /** The launch template has a new version: the deploy rolls the fleet to it. */
    release: boolean;
}

async function planned(config: Config, account: Account, prior?: Plan): Promise<Plan> {
    const plan: Plan = new Map();
    await runProgram({ config, account, materialize: planner(prior, plan) });
    return plan;
}

function outcome(prior: Plan, plan: Plan): Outcome {
    const resources = [...plan.values()];
    const labels = (op: PlannedResource["op"]) => resources.filter((resource) => resource.op === op).map(label).sort();
    return {
        replaced: labels("replace"),
        created: labels("create"),
        deleted: deleted(prior, plan).map(label).sort(),
        updated: labels("update"),
        deploy: plan.get(key(INVOCATION, "spot-handler-deploy"))?.op === "update",
        release: [...plan.values()].some((resource) => resource.type === TEMPLATE && resource.op === "update"),
    };
}

interface Edit {
    edit: string;
    /** The stack before the edit: the dev stack unless given. */
    from?: Config;
    to: Config;
    /** The account after the edit, when AWS changed rather than the config. */
    account?: Account;
    expected: Partial<Outcome>;
}

const belowCount = (zone: string) => `MetricAlarm spot-operations-us-east-2${zone}-below-count`;
const NOTHING = { replaced: [], created: [], deleted: [], deploy: false, release: false };
const DEPLOYS = { replaced: [], created: [], deleted: [], deploy: true, release: false };
const SETTINGS_ONLY = { replaced: [], created: [], deleted: [], updated: ["Function spot-handler", "Function spot-handler-deploy"], deploy: false, release: false };
const RELEASE = { replaced: [], created: [], deleted: [], deploy: true, release: true };

const userDataFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "spot-plan-")), "app.sh");
fs.writeFileSync(userDataFile, "#!/bin/bash\nexec my-app --port 80\n");

const EDITS: Edit[] = [
    { edit: "zones: one dropped ([a, b, c] → [a, c])", to: zones("a", "c"), expected: { ...DEPLOYS, deleted: [belowCount("b")] } },
    { edit: "zones: the first dropped ([a, b, c] → [b, c])", to: zones("b", "c"), expected: { ...DEPLOYS, deleted: [belowCount("a")] } },
    { edit: "zones: reordered ([a, b, c] → [c, a, b])", to: zones("c", "a", "b"), expected: { ...NOTHING, updated: [] } },
    { edit: "zones: one added ([a, c] → [a, b, c])", from: zones("a", "c"), to: zones("a", "b", "c"), expected: { ...DEPLOYS, created: [belowCount("b")] } },
    { edit: "zoneCount: 3 → 2 (zones empty)", from: zones(), to: set("zoneCount", 2), expected: { ...DEPLOYS, deleted: [belowCount("c")] } },
    {
        edit: "a zone AWS adds to the region later (d)",
        to: {},
        account: { ...DEFAULT_ACCOUNT, zones: { "us-east-2": [...REGION_ZONES, "us-east-2d"] } },
        expected: {
            ...NOTHING,
            created: ["Route spot-network-public-4", "RouteTable spot-network-public-4", "RouteTableAssociation spot-network-public-4", "Subnet spot-network-public-4"],
            updated: ["LoadBalancer spot-lb"],
        },
    },
    { edit: "instanceTypes", to: set("instanceTypes", ["t3a.micro", "t3.micro"]), expected: DEPLOYS },
    { edit: "instancesPerZone: 1 → 2", to: set("instancesPerZone", 2), expected: DEPLOYS },
    { edit: "spotMaxPrice", to: set("spotMaxPrice", "0.01"), expected: SETTINGS_ONLY },
    { edit: "onDemandFallback", to: set("onDemandFallback", false), expected: SETTINGS_ONLY },
    { edit: "replaceOnRebalance", to: set("replaceOnRebalance", false), expected: SETTINGS_ONLY },
    { edit: "drainWhen", to: set("drainWhen", "warning"), expected: SETTINGS_ONLY },
    { edit: "releaseBatchPercent", to: set("releaseBatchPercent", 50), expected: DEPLOYS },
    { edit: "releaseHealthTimeoutSeconds", to: set("releaseHealthTimeoutSeconds", 600), expected: DEPLOYS },
    {
        edit: "appPort: 80 → 8080",
        to: set("appPort", 8080),
        expected: {
            ...RELEASE,
            replaced: ["TargetGroup spot-lb"],
            created: ["SecurityGroupEgressRule spot-instances-alb-to-instance-8080", "SecurityGroupIngressRule spot-instances-instance-app-8080"],
            deleted: ["SecurityGroupEgressRule spot-instances-alb-to-instance-80", "SecurityGroupIngressRule spot-instances-instance-app-80"],
        },
    },
    { edit: "healthCheckPath", to: set("healthCheckPath", "/health"), expected: { ...NOTHING, updated: ["TargetGroup spot-lb"] } },
    { edit: "userDataFile", to: set("userDataFile", userDataFile), expected: RELEASE },
    { edit: "amiId", to: set("amiId", "ami-0123456789abcdef0"), expected: RELEASE },
    { edit: "logRetentionDays", to: set("logRetentionDays", 30), expected: { ...NOTHING, updated: ["LogGroup spot-handler"] } },
];

/** The edits of issue 17's item 1: none may replace what the fleet runs on. */
const FLEET_EDITS = /^(zones|zoneCount|a zone AWS adds|instanceTypes|instancesPerZone|spotMaxPrice|onDemandFallback|replaceOnRebalance|drainWhen)/;

describe("the plan of each day-two edit, as the engine would diff it", () => {
    const priors = new Map<string, Promise<Plan>>();
    const priorOf = (config: Config) => {
        const id = JSON.stringify(config);
        if (!priors.has(id)) {
            priors.set(id, planned(config, DEFAULT_ACCOUNT));
        }
        return priors.get(id) as Promise<Plan>;
    };

    it("plans nothing for an unchanged stack", async () => {
        const prior = await priorOf({});
        const plan = await planned({}, DEFAULT_ACCOUNT, prior);
        assert.deepStrictEqual(outcome(prior, plan), { replaced: [], created: [], deleted: [], updated: [], deploy: false, release: false });
    });

    it("knows, for every resource type the stack declares, what replaces it", async () => {
        const types = [...(await priorOf({})).values()].map((resource) => resource.type).filter((type) => type.startsWith("aws:"));
        assert.deepStrictEqual([...new Set(types)].filter((type) => REPLACE_ON[type] === undefined), []);
    });

    for (const { edit, from = {}, to, account = DEFAULT_ACCOUNT, expected } of EDITS) {
        describe(edit, () => {
            let result: Outcome;
            let plan: Plan;
            before(async () => {
                const prior = await priorOf(from);
                plan = await planned({ ...from, ...to }, account, prior);
                result = outcome(prior, plan);
            });

            it(`replaces ${expected.replaced?.join(", ") || "nothing"}, creates ${expected.created?.join(", ") || "nothing"}, deletes ${expected.deleted?.join(", ") || "nothing"}`, () => {
                assert.deepStrictEqual({ replaced: result.replaced, created: result.created, deleted: result.deleted }, { replaced: expected.replaced, created: expected.created, deleted: expected.deleted });
            });

            it(`${expected.deploy ? "runs" : "does not run"} the deploy${expected.release ? ", as a release (a new launch template version)" : ""}`, () => {
                assert.deepStrictEqual({ deploy: result.deploy, release: result.release }, { deploy: expected.deploy, release: expected.release });
                assert.notStrictEqual(plan.get(key(INVOCATION, "spot-handler-deploy"))?.op, "replace", "the deploy is never replaced: a replacement would run its create again");
                assert.strictEqual(plan.get(key(INVOCATION, "spot-handler-deploy-teardown-guard"))?.op, "same", "the teardown guard is never replaced or updated: its delete terminates the fleet");
            });

            if (expected.updated !== undefined) {
                it(`updates in place ${expected.updated.join(", ") || "nothing"}`, () => {
                    assert.deepStrictEqual(result.updated, expected.updated);
                });
            }

            if (FLEET_EDITS.test(edit)) {
                it("replaces no VPC, subnet, security group, load balancer, target group, listener or launch template", () => {
                    const replaced = [...plan.values()].filter((resource) => resource.op === "replace" && FLEET_DEPENDENCIES.includes(resource.type));
                    assert.deepStrictEqual(replaced.map(label), []);
                });
            }
        });
    }
});

describe("the plan's model of awsx's subnets", () => {
    it("would catch a VPC that follows the fleet's zones: awsx names subnets by position and sizes them by count", async () => {
        const plan = async (zoneNames: string[], prior?: Plan) => {
            const result: Plan = new Map();
            await planner(prior, result)("awsx:ec2:Vpc", "net", { ...vpcArgs(zoneNames), subnetSpecs: [{ type: "Public" }] });
            return result;
        };
        const before = await plan(REGION_ZONES);
        const after = await plan(["us-east-2a", "us-east-2c"], before);
        const subnets = [...after.values()].filter((resource) => resource.type === "aws:ec2/subnet:Subnet");
        assert.deepStrictEqual(subnets.map((subnet) => [subnet.name, subnet.op, subnet.changed]), [
            ["net-public-1", "replace", ["cidrBlock"]],
            ["net-public-2", "replace", ["availabilityZone", "cidrBlock"]],
        ]);
        assert.deepStrictEqual(deleted(before, after).map(label).filter((name) => name.startsWith("Subnet")), ["Subnet net-public-3"]);
    });

    it("gives the stack's own subnets awsx's position names and their letters' CIDRs", async () => {
        const prior: Plan = new Map();
        await runProgram({ materialize: planner(undefined, prior) });
        const subnets = [...prior.values()].filter((resource) => resource.type === "aws:ec2/subnet:Subnet");
        assert.deepStrictEqual(subnets.map((subnet) => [subnet.name, subnet.inputs.availabilityZone, subnet.inputs.cidrBlock]), [
            ["spot-network-public-1", "us-east-2a", "10.0.0.0/20"],
            ["spot-network-public-2", "us-east-2b", "10.0.16.0/20"],
            ["spot-network-public-3", "us-east-2c", "10.0.32.0/20"],
        ]);
    });
});
