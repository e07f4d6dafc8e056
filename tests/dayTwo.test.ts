import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    CreateLaunchTemplateCommand,
    CreateLaunchTemplateVersionCommand,
    DescribeInstancesCommand,
    DescribeLaunchTemplatesCommand,
    DescribeLaunchTemplateVersionsCommand,
    DescribeSecurityGroupRulesCommand,
    EC2Client,
    GetConsoleOutputCommand,
    Instance,
    RunInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
    CreateTargetGroupCommand,
    DescribeListenersCommand,
    DescribeTargetGroupsCommand,
    DescribeTargetHealthCommand,
    ElasticLoadBalancingV2Client,
    RegisterTargetsCommand,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import { TAG } from "../handler/tags";
import { CREDENTIALS, Emulator } from "../rehearsal/emulator";
import { FAILED_START_CONSOLE_OUTPUT } from "../rehearsal/faultProxy";
import { functionCode, loadLambda, MotoStack } from "../rehearsal/materialize";
import { ProgramRun, REGION, REGION_ZONES } from "../rehearsal/program";
import { scheduledEvent, sqsBatch, tag } from "../rehearsal/world";
import { emulatorClients, freshStack, lambdaEnvironment } from "./support/emulator";

/**
 * Day two on the emulator: the dev stack materialised in moto and updated as `pulumi up` updates
 * it (the engine's replacements and in-place updates, the provider's calls), with the deploy
 * function's archive invoked as the provider invokes it: create, then update with `prev_input`.
 */

const LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate";
const TARGET_GROUP = "aws:lb/targetGroup:TargetGroup";
const STACK = "spot-availability/dev";
/** The tag EC2 sets on every instance launched from a template: which version it runs. */
const VERSION_TAG = "aws:ec2launchtemplate:version";
const LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer";
const LISTENER = "aws:lb/listener:Listener";
const INVOCATION = "aws:lambda/invocation:Invocation";
/** One instance per zone keeps every update short; the invariants are per zone either way. */
const INSTANCES_PER_ZONE = 1;
const EVERY_ZONE_AT_COUNT = REGION_ZONES.map(() => INSTANCES_PER_ZONE);

/** A user data script the release ships, written where `userDataFile` can name it. */
function userDataFile(text: string): string {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "spot-release-")), "app.sh");
    fs.writeFileSync(file, text);
    return file;
}

describe("pulumi up after pulumi up, on the emulator", () => {
    let emulator: Emulator;
    let ec2: EC2Client;
    let elb: ElasticLoadBalancingV2Client;
    let stack: MotoStack;

    before(async () => {
        ({ emulator, ec2, elb } = await emulatorClients());
    });
    beforeEach(async () => {
        stack = await freshStack(emulator);
    });

    const up = (config: Record<string, unknown> = {}) => stack.up({ config: { "spot-availability:instancesPerZone": INSTANCES_PER_ZONE, ...config } });

    /** The instances' security group: the launch template's. */
    const instanceSecurityGroup = (run: ProgramRun): string => run.one(LAUNCH_TEMPLATE).inputs.vpcSecurityGroupIds[0];

    async function ingressPorts(groupId: string): Promise<{ port: number | undefined; from: string | undefined }[]> {
        const rules = (await ec2.send(new DescribeSecurityGroupRulesCommand({ Filters: [{ Name: "group-id", Values: [groupId] }] }))).SecurityGroupRules ?? [];
        return rules.filter((rule) => !rule.IsEgress).map((rule) => ({ port: rule.FromPort, from: rule.ReferencedGroupInfo?.GroupId ?? rule.CidrIpv4 }));
    }

    async function listenerTargets(run: ProgramRun): Promise<string[]> {
        const listeners = (await elb.send(new DescribeListenersCommand({ LoadBalancerArn: run.one(LOAD_BALANCER).id }))).Listeners ?? [];
        return listeners.flatMap((listener) => (listener.DefaultActions ?? []).filter((action) => action.Type === "forward").map((action) => action.TargetGroupArn as string));
    }

    /** The stack's instances in those states. */
    async function instancesOf(states = ["pending", "running"]): Promise<Instance[]> {
        const result = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAG.stack}`, Values: [STACK] }, { Name: "instance-state-name", Values: states }] }));
        return (result.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? []);
    }

    const ids = (instances: Instance[]) => instances.map((instance) => instance.InstanceId as string).sort();

    /** Live instances per zone of the region, in REGION_ZONES order. */
    async function livePerZone(): Promise<number[]> {
        const live = await instancesOf();
        return REGION_ZONES.map((zone) => live.filter((instance) => instance.Placement?.AvailabilityZone === zone).length);
    }

    /** Target id → state in a group, as the handler reads it: through the proxy, faults included. */
    async function targetStates(targetGroupArn: string): Promise<Record<string, { state?: string; reason?: string }>> {
        const throughProxy = new ElasticLoadBalancingV2Client({ region: REGION, endpoint: emulator.endpoint, credentials: CREDENTIALS });
        const health = await throughProxy.send(new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn }));
        return Object.fromEntries((health.TargetHealthDescriptions ?? []).map((d) => [d.Target?.Id as string, { state: d.TargetHealth?.State, reason: d.TargetHealth?.Reason }]));
    }

    /** Healthy targets of a group per zone of the region, in REGION_ZONES order. */
    async function healthyPerZone(targetGroupArn: string): Promise<number[]> {
        const states = await targetStates(targetGroupArn);
        const healthy = (await instancesOf()).filter((instance) => states[instance.InstanceId as string]?.state === "healthy");
        return REGION_ZONES.map((zone) => healthy.filter((instance) => instance.Placement?.AvailabilityZone === zone).length);
    }

    /**
     * `pulumi up`, watched: the fewest healthy targets each zone held in the group at any step the
     * harness observes (before every write the deploy makes, and once the update ended).
     */
    async function watchedUp(targetGroupArn: string, config: Record<string, unknown>): Promise<{ run: ProgramRun; fewestHealthy: number[] }> {
        const fewestHealthy = REGION_ZONES.map(() => Infinity);
        const observe = async () => (await healthyPerZone(targetGroupArn)).forEach((count, index) => (fewestHealthy[index] = Math.min(fewestHealthy[index], count)));
        emulator.proxy.beforeWrite = observe;
        try {
            const run = await up(config);
            await observe();
            return { run, fewestHealthy };
        } finally {
            emulator.proxy.beforeWrite = undefined;
        }
    }

    /** Every live instance is a healthy target of the group, and nothing else is registered there. */
    async function assertFleetServes(run: ProgramRun): Promise<void> {
        const states = await targetStates(run.outputs.targetGroupArn);
        assert.deepStrictEqual(Object.keys(states).sort(), ids(await instancesOf()), "registered: exactly the live instances");
        assert.ok(Object.values(states).every((target) => target.state === "healthy"), JSON.stringify(states));
    }

    async function defaultVersion(run: ProgramRun): Promise<number | undefined> {
        const [template] = (await ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateIds: [run.one(LAUNCH_TEMPLATE).id] }))).LaunchTemplates ?? [];
        return template.DefaultVersionNumber;
    }

    describe("the engine's plan, applied with the provider's calls", () => {
        it("a userDataFile edit creates a launch template version holding the whole template, which the deploy's input names", async () => {
            const first = await up();
            const script = "#!/bin/bash\necho release 2\n";
            const second = await up({ "spot-availability:userDataFile": userDataFile(script) });
            const template = second.one(LAUNCH_TEMPLATE);
            assert.strictEqual(template.id, first.one(LAUNCH_TEMPLATE).id, "updated in place");
            assert.strictEqual(template.state.latestVersion, 2);
            const versions = (await ec2.send(new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateId: template.id }))).LaunchTemplateVersions ?? [];
            const [original, release] = [1, 2].map((number) => versions.find((version) => version.VersionNumber === number)?.LaunchTemplateData);
            assert.strictEqual(Buffer.from(release?.UserData as string, "base64").toString("utf8"), script);
            assert.deepStrictEqual(
                { ...release, UserData: undefined },
                { ...original, UserData: undefined },
                "everything but the user data carried over: the provider sends the whole data, not a SourceVersion",
            );
            assert.strictEqual(JSON.parse(second.one(INVOCATION, "-deploy").inputs.input).desired.launchTemplateVersion, 2);
        });

        it("a healthCheckPath edit modifies the target group in place", async () => {
            const first = await up();
            const second = await up({ "spot-availability:healthCheckPath": "/healthz" });
            assert.strictEqual(second.one(TARGET_GROUP).id, first.one(TARGET_GROUP).id);
            const [group] = (await elb.send(new DescribeTargetGroupsCommand({ TargetGroupArns: [first.one(TARGET_GROUP).id] }))).TargetGroups ?? [];
            assert.strictEqual(group.HealthCheckPath, "/healthz");
        });

        it("an appPort edit replaces the target group, moves the listener to it and deletes the old one after the update; the instances admit the new port only", async () => {
            const first = await up();
            const firstSteps = stack.steps.length;
            const second = await up({ "spot-availability:appPort": 8080 });
            const [before, after] = [first, second].map((run) => run.one(TARGET_GROUP).id);
            assert.notStrictEqual(after, before, "port forces a new target group");
            assert.deepStrictEqual(await listenerTargets(second), [after]);
            const expected = [`replace ${TARGET_GROUP}`, `update ${INVOCATION}`, `update ${LISTENER}`, `delete ${TARGET_GROUP}`];
            const order = stack.steps.slice(firstSteps).map(({ type, step }) => `${step} ${type}`);
            assert.deepStrictEqual(order.filter((step) => expected.includes(step)), expected, "the new group, then the deploy fills it, then the listener moves, then the old group goes");
            await assert.rejects(elb.send(new DescribeTargetGroupsCommand({ TargetGroupArns: [before] })), /TargetGroupNotFound|One or more target groups not found/);
            assert.strictEqual(instanceSecurityGroup(second), instanceSecurityGroup(first), "the instances' security group is kept");
            const loadBalancerGroup = second.one(LOAD_BALANCER).inputs.securityGroups[0];
            assert.deepStrictEqual((await ingressPorts(instanceSecurityGroup(second))).filter((rule) => rule.from === loadBalancerGroup).map((rule) => rule.port), [8080]);
        });
    });

    describe("the emulator's failing release", () => {
        it("answers for instances of the failing version, however launched: initial, then unhealthy with Target.FailedHealthChecks, and the console says why", async () => {
            const throughProxy = { region: REGION, endpoint: emulator.endpoint, credentials: CREDENTIALS };
            const data = { ImageId: "ami-12c6146b", InstanceType: "t3.micro" as const };
            const templateId = (await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: "app", LaunchTemplateData: data }))).LaunchTemplate?.LaunchTemplateId as string;
            await ec2.send(new CreateLaunchTemplateVersionCommand({ LaunchTemplateId: templateId, LaunchTemplateData: { ...data, UserData: "ZXhpdCAx" } }));
            const failingVersion = { launchTemplateId: templateId, version: 2, consoleOutput: FAILED_START_CONSOLE_OUTPUT };
            emulator.proxy.failingVersions = [failingVersion];
            const launch = async (version: string) =>
                (await new EC2Client(throughProxy).send(new RunInstancesCommand({ MinCount: 1, MaxCount: 1, LaunchTemplate: { LaunchTemplateId: templateId, Version: version } }))).Instances?.[0] as Instance;
            const [released, failing] = [await launch("$Default"), await launch("2")];
            const group = (await elb.send(new CreateTargetGroupCommand({ Name: "app", Protocol: "HTTP", Port: 80, VpcId: released.VpcId }))).TargetGroups?.[0].TargetGroupArn as string;
            await new ElasticLoadBalancingV2Client(throughProxy).send(new RegisterTargetsCommand({ TargetGroupArn: group, Targets: [released, failing].map((instance) => ({ Id: instance.InstanceId })) }));

            assert.deepStrictEqual(await targetStates(group), {
                [released.InstanceId as string]: { state: "healthy", reason: undefined },
                [failing.InstanceId as string]: { state: "initial", reason: "Elb.InitialHealthChecking" },
            });
            emulator.proxy.failingVersions = [{ ...failingVersion, failedAfterSeconds: 0 }];
            assert.deepStrictEqual(await targetStates(group), {
                [released.InstanceId as string]: { state: "healthy", reason: undefined },
                [failing.InstanceId as string]: { state: "unhealthy", reason: "Target.FailedHealthChecks" },
            });
            const console = await new EC2Client(throughProxy).send(new GetConsoleOutputCommand({ InstanceId: failing.InstanceId }));
            assert.deepStrictEqual(Buffer.from(console.Output as string, "base64").toString("utf8").trim().split("\n"), FAILED_START_CONSOLE_OUTPUT);
        });
    });

    describe("fleet edits and releases through the deploy archive", () => {
        it("zones [a, b, c] → [a, c] → [c, a] → [a, b, c]: each update converges, the kept zones never below their count, no subnet replaced", async function () {
            this.timeout(240_000);
            const first = await up({ "spot-availability:zones": ["a", "b", "c"] });
            const subnets = first.one("awsx:ec2:Vpc").state.publicSubnetIds;
            let previous = ["a", "b", "c"];
            for (const letters of [["a", "c"], ["c", "a"], ["a", "b", "c"]]) {
                const { run, fewestHealthy } = await watchedUp(first.outputs.targetGroupArn, { "spot-availability:zones": letters });
                const wanted = REGION_ZONES.map((zone) => (letters.includes(zone.slice(-1)) ? INSTANCES_PER_ZONE : 0));
                assert.deepStrictEqual(await livePerZone(), wanted, `zones ${letters.join(", ")}`);
                await assertFleetServes(run);
                const keptBelowCount = REGION_ZONES.filter((zone, index) => letters.includes(zone.slice(-1)) && previous.includes(zone.slice(-1)) && fewestHealthy[index] < INSTANCES_PER_ZONE);
                assert.deepStrictEqual(keptBelowCount, [], `fewest healthy per zone during ${previous.join(", ")} → ${letters.join(", ")}: ${fewestHealthy.join(", ")}`);
                assert.deepStrictEqual(run.one("awsx:ec2:Vpc").state.publicSubnetIds, subnets, "the network is untouched");
                previous = letters;
            }
        });

        it("a release (userDataFile changed) rolls every instance to the new version, each zone holding its count healthy at every step", async function () {
            this.timeout(120_000);
            const first = await up();
            const { run, fewestHealthy } = await watchedUp(first.outputs.targetGroupArn, { "spot-availability:userDataFile": userDataFile("#!/bin/bash\necho release 2\n") });
            const version = run.one(LAUNCH_TEMPLATE).state.latestVersion;
            assert.strictEqual(version, 2);
            const live = await instancesOf();
            assert.deepStrictEqual(live.map((instance) => tag(instance, VERSION_TAG)), live.map(() => "2"), "every instance runs the new version");
            assert.deepStrictEqual(await livePerZone(), EVERY_ZONE_AT_COUNT);
            assert.deepStrictEqual(fewestHealthy, EVERY_ZONE_AT_COUNT, "never below instancesPerZone healthy in any zone");
            await assertFleetServes(run);
            assert.strictEqual(await defaultVersion(run), 2, "released: the new version is what replacements launch");
        });

        it("a release whose instances never become healthy is rolled back: pulumi up fails naming the instance, its health and console; the old instances serve on", async function () {
            this.timeout(180_000);
            const first = await up();
            const serving = ids(await instancesOf());
            const release = { launchTemplateId: first.one(LAUNCH_TEMPLATE).id, version: 2, consoleOutput: FAILED_START_CONSOLE_OUTPUT };
            emulator.proxy.failingVersions = [release];

            const failingRelease = { "spot-availability:userDataFile": userDataFile("#!/bin/bash\nexit 1\n"), "spot-availability:releaseHealthTimeoutSeconds": 60 };
            const failure = await up(failingRelease).then(() => undefined, (error: Error) => error);

            assert.ok(failure !== undefined, "pulumi up fails");
            const released = (await instancesOf(["pending", "running", "shutting-down", "terminated"])).filter((instance) => tag(instance, VERSION_TAG) === "2");
            assert.ok(released.length > 0, "the release launched new instances");
            assert.ok(released.some((instance) => failure.message.includes(instance.InstanceId as string)), `names a new instance: ${failure.message}`);
            assert.match(failure.message, /Target\.FailedHealthChecks/);
            assert.ok(failure.message.includes(FAILED_START_CONSOLE_OUTPUT[FAILED_START_CONSOLE_OUTPUT.length - 1]), `shows the console's last lines: ${failure.message}`);
            assert.deepStrictEqual(released.map((instance) => instance.State?.Name).filter((state) => state !== "terminated" && state !== "shutting-down"), [], "the release's instances are terminated");
            assert.deepStrictEqual(ids(await instancesOf()), serving, "the old instances keep serving");
            await assertFleetServes(first);
            assert.strictEqual(await defaultVersion(first), 1, "the failed version is never released");

            const stepsBefore = stack.steps.length;
            await up(failingRelease);
            assert.deepStrictEqual(stack.steps.slice(stepsBefore).filter((step) => step.type === INVOCATION), [], "the provider stored the failed update's input: the same settings do not deploy again");
        });

        it("an appPort edit ends with the whole fleet healthy in the new target group, which the listeners forward to", async function () {
            this.timeout(120_000);
            const first = await up();
            const second = await up({ "spot-availability:appPort": 8080 });
            assert.notStrictEqual(second.outputs.targetGroupArn, first.outputs.targetGroupArn);
            const fresh = await targetStates(second.outputs.targetGroupArn);
            assert.strictEqual(Object.keys(fresh).length, EVERY_ZONE_AT_COUNT.reduce((a, b) => a + b, 0), "the new group holds a whole fleet");
            assert.ok(Object.values(fresh).every((target) => target.state === "healthy"), JSON.stringify(fresh));
            // The old fleet served through the previous group until the listeners moved; the
            // schedule's reconcile (the event path's archive, as uploaded) retires it now.
            const { handler } = await loadLambda(functionCode(second), lambdaEnvironment(emulator));
            await handler(sqsBatch(scheduledEvent()));
            assert.deepStrictEqual(await livePerZone(), EVERY_ZONE_AT_COUNT);
            await assertFleetServes(second);
            const live = await instancesOf();
            assert.deepStrictEqual(live.map((instance) => tag(instance, VERSION_TAG)), live.map(() => String(second.one(LAUNCH_TEMPLATE).state.latestVersion)), "the new port's version runs everywhere");
            assert.deepStrictEqual(await listenerTargets(second), [second.outputs.targetGroupArn]);
        });
    });
});
