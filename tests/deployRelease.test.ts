import * as assert from "assert";
import { CreateLaunchTemplateVersionCommand, DescribeLaunchTemplatesCommand, DescribeVpcsCommand, ModifyLaunchTemplateCommand } from "@aws-sdk/client-ec2";
import { CreateTargetGroupCommand, DeleteTargetGroupCommand, DescribeTargetHealthCommand } from "@aws-sdk/client-elastic-load-balancing-v2";
import { LAUNCH_TEMPLATE_VERSION_TAG } from "../handler/aws";
import { desiredFleet } from "../handler/deployRequest";
import { HandlerSettings } from "../handler/settings";
import { Emulator } from "../rehearsal/emulator";
import { freshWorld, scheduledEvent, stateChange, tag, World } from "../rehearsal/world";
import { emulatorDeployHandler } from "./support/emulator";

/**
 * The deploy's release on moto, as `pulumi up` runs it after a change of the launch template: a
 * new version rolled zone by zone, the new instances registered and healthy before the old ones
 * go, and the new version made the default only once it serves. (The materialised stack's
 * version of this, with a failing release, is in dayTwo.test.ts.)
 */

describe("a release by the deploy, on moto", () => {
    let emulator: Emulator;
    let world: World;
    beforeEach(async () => {
        ({ emulator, world } = await freshWorld({ instancesPerZone: 2 }));
    });

    /** What `pulumi up` does to the template when user data changes: a new version, the default left alone. */
    async function newVersion(): Promise<number> {
        const created = await world.ec2.send(new CreateLaunchTemplateVersionCommand({
            LaunchTemplateId: world.settings.launchTemplateId,
            // moto ignores SourceVersion: the new version holds only what is sent.
            LaunchTemplateData: { ImageId: "ami-12c6146b", InstanceType: "t3.micro", UserData: Buffer.from("#!/bin/bash\necho v2\n").toString("base64") },
        }));
        return created.LaunchTemplateVersion?.VersionNumber as number;
    }

    function deploy(before: HandlerSettings, after: HandlerSettings, log: string[] = [], secondsLeft = 900) {
        const handler = emulatorDeployHandler(emulator, after, (line) => log.push(line));
        return handler({ desired: desiredFleet(after), tf: { action: "update", prev_input: { desired: desiredFleet(before) } } }, { getRemainingTimeInMillis: () => secondsLeft * 1000 });
    }

    const defaultVersion = async () => (await world.ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateIds: [world.settings.launchTemplateId] }))).LaunchTemplates?.[0].DefaultVersionNumber;

    it("rolls every zone to the new version and promotes it to the default once it serves", async () => {
        const old = Object.values(world.declared);
        const version = await newVersion();
        const released = { ...world.settings, launchTemplateVersion: version };
        const answer = await deploy(world.settings, released);

        const live = await world.instances();
        assert.deepStrictEqual(live.map((i) => tag(i, LAUNCH_TEMPLATE_VERSION_TAG)), live.map(() => String(version)), "every instance runs the new version");
        assert.strictEqual(live.length, 6, "each zone at its count");
        assert.ok(live.every((i) => !old.includes(i.InstanceId as string)), "the old ones are gone");
        const targets = await world.registeredTargets();
        assert.deepStrictEqual(live.map((i) => targets[i.InstanceId as string]), live.map(() => "healthy"));
        assert.strictEqual(await defaultVersion(), version);
        assert.strictEqual(Object.keys((answer as { instances: Record<string, string> }).instances).length, 6);
    });

    it("never leaves the target group below the fleet's count: old ones leave only after the new ones joined", async () => {
        const released = { ...world.settings, launchTemplateVersion: await newVersion() };
        await deploy(world.settings, released);
        const calls = emulator.proxy.calls.map((call) => call.action);
        const firstDeregister = calls.indexOf("DeregisterTargets");
        const registersBefore = calls.slice(0, firstDeregister).filter((action) => action === "RegisterTargets").length;
        assert.ok(firstDeregister > 0 && registersBefore === 6, `all six new instances registered before the first drain (${registersBefore})`);
        assert.ok(calls.indexOf("ModifyLaunchTemplate") > calls.indexOf("RegisterTargets"), "promoted after the new version joined");
        const firstTerminate = calls.indexOf("TerminateInstances");
        assert.ok(firstTerminate > firstDeregister && calls.slice(firstDeregister, firstTerminate).includes("DescribeTargetHealth"), "terminated only once the drain is over");
    });

    it("after an appPort edit, fills the new target group while the previous one keeps serving; the schedule retires the old fleet once that group is gone", async () => {
        const [vpc] = (await world.ec2.send(new DescribeVpcsCommand({}))).Vpcs ?? [];
        const created = await world.elb.send(new CreateTargetGroupCommand({ Name: "spot-lb-8080", Protocol: "HTTP", Port: 8080, VpcId: vpc.VpcId, TargetType: "instance" }));
        const targetGroupArn = created.TargetGroups?.[0].TargetGroupArn as string;
        const moved = { ...world.settings, targetGroupArn, launchTemplateVersion: await newVersion() };
        const old = Object.values(world.declared).sort();
        await deploy(world.settings, moved);

        const targetsOf = async (arn: string) => (await world.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: arn }))).TargetHealthDescriptions ?? [];
        const fresh = (await targetsOf(targetGroupArn));
        assert.strictEqual(fresh.length, 6, "the new group holds a whole fleet");
        assert.ok(fresh.every((t) => !old.includes(t.Target?.Id as string) && t.Target?.Port === 8080 && t.TargetHealth?.State === "healthy"), "of new instances, healthy on the new port");
        const previous = await targetsOf(world.settings.targetGroupArn);
        assert.deepStrictEqual(previous.map((t) => t.Target?.Id).sort(), old, "the listeners still forward to the previous group: nothing left it");
        assert.deepStrictEqual((await world.instances()).map((i) => i.InstanceId as string).filter((id) => old.includes(id)).sort(), old, "the old fleet still runs");
        assert.strictEqual(await defaultVersion(), moved.launchTemplateVersion, "promoted as the deploy answers, not before");

        // The listeners move, and the engine deletes the previous group at the end of the update.
        await world.elb.send(new DeleteTargetGroupCommand({ TargetGroupArn: world.settings.targetGroupArn }));
        await world.reconfigured(moved)(scheduledEvent());
        assert.deepStrictEqual((await world.instances()).map((i) => i.InstanceId as string).filter((id) => old.includes(id)), [], "the schedule retired the old fleet");
    });

    it("answers rather than fails when Lambda's time runs short mid-release, leaving the rest to the schedule", async () => {
        const released = { ...world.settings, launchTemplateVersion: await newVersion() };
        const log: string[] = [];
        // A minute left: the first round launches, then the deploy hands off.
        await deploy(world.settings, released, log, 59);
        const last = JSON.parse(log[log.length - 1]);
        assert.strictEqual(last.result, "handed-off");
        assert.strictEqual(last.released, 1, "nothing of the release served yet: the default stays");
        assert.strictEqual((await world.instances()).length, 12, "the release's instances launched beside them");
    });

    it("leaves a release it could not finish to the schedule, which replaces the outdated instances a batch at a time", async () => {
        // As the deploy leaves it when Lambda's time runs out: the new version released, the old instances still serving.
        const version = await newVersion();
        await world.ec2.send(new ModifyLaunchTemplateCommand({ LaunchTemplateId: world.settings.launchTemplateId, DefaultVersion: String(version) }));
        const versions = async () => (await world.instances()).map((i) => tag(i, LAUNCH_TEMPLATE_VERSION_TAG)).sort();

        await world.handle(scheduledEvent());
        assert.deepStrictEqual(await versions(), ["1", "1", "1", "1", "1", "1", "2", "2", "2", "2", "2", "2"], "one batch (100 %: each zone's two) launched beside the old ones");
        for (const fresh of (await world.instances()).filter((i) => tag(i, LAUNCH_TEMPLATE_VERSION_TAG) === "2")) {
            await world.handle(stateChange(fresh.InstanceId as string, "running"));
        }
        await world.handle(scheduledEvent());
        assert.deepStrictEqual(await versions(), ["2", "2", "2", "2", "2", "2"], "the old ones retired once the new ones serve");
    });

    it("answers with nothing to do when the fleet already runs the declared version", async () => {
        await deploy(world.settings, world.settings);
        assert.deepStrictEqual(emulator.proxy.writeCalls(), []);
    });
});
