import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DescribeLaunchTemplateVersionsCommand, DescribeSecurityGroupRulesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { DescribeListenersCommand, DescribeTargetGroupsCommand, ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { Emulator, motoConnection, useEmulator } from "../rehearsal/emulator";
import { inMoto, MotoStack } from "../rehearsal/materialize";
import { ProgramRun, REGION } from "../rehearsal/program";

/**
 * Day two on the emulator: the dev stack materialised in moto and updated as `pulumi up` updates
 * it (the engine's replacements and in-place updates, the provider's calls), with the deploy
 * function's archive invoked as the provider invokes it: create, then update with `prev_input`.
 */

const LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate";
const TARGET_GROUP = "aws:lb/targetGroup:TargetGroup";
const LISTENER = "aws:lb/listener:Listener";
const LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer";

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
        emulator = await useEmulator();
        const direct = motoConnection(emulator, REGION);
        ec2 = new EC2Client(direct);
        elb = new ElasticLoadBalancingV2Client(direct);
    });
    beforeEach(async () => {
        await emulator.reset();
        stack = inMoto(emulator);
    });

    const up = (config: Record<string, unknown> = {}) => stack.up({ config });

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
            assert.strictEqual(JSON.parse(second.one("aws:lambda/invocation:Invocation").inputs.input).desired.launchTemplateVersion, 2);
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
            const second = await up({ "spot-availability:appPort": 8080 });
            const [before, after] = [first, second].map((run) => run.one(TARGET_GROUP).id);
            assert.notStrictEqual(after, before, "port forces a new target group");
            assert.deepStrictEqual(await listenerTargets(second), [after]);
            await assert.rejects(elb.send(new DescribeTargetGroupsCommand({ TargetGroupArns: [before] })), /TargetGroupNotFound|One or more target groups not found/);
            assert.strictEqual(instanceSecurityGroup(second), instanceSecurityGroup(first), "the instances' security group is kept");
            const loadBalancerGroup = second.one(LOAD_BALANCER).inputs.securityGroups[0];
            assert.deepStrictEqual((await ingressPorts(instanceSecurityGroup(second))).filter((rule) => rule.from === loadBalancerGroup).map((rule) => rule.port), [8080]);
        });
    });
});
