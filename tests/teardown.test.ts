import * as assert from "assert";
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { TAG } from "../handler/tags";
import { terminateHandlerLaunched } from "../infra/teardown";
import { CREDENTIALS, Emulator } from "../rehearsal/emulator";
import { ProgramRun, runProgram } from "../rehearsal/program";
import { freshWorld, REGION, World } from "../rehearsal/world";

/** `pulumi destroy` leaves nothing: the handler's instances are terminated, in the right order. */

describe("teardown of the instances the handler launched", () => {
    let emulator: Emulator;
    let world: World;
    beforeEach(async () => {
        ({ emulator, world } = await freshWorld());
    });

    it("terminates this stack's handler-launched instances and waits until they are gone, touching nothing else", async () => {
        const ours = [await world.launchOwned("us-east-2a", "handler"), await world.launchOwned("us-east-2b", "handler", "on-demand")];
        const otherStack = (await world.ec2.send(new RunInstancesCommand({
            MinCount: 1,
            MaxCount: 1,
            ImageId: "ami-12c6146b",
            TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: TAG.stack, Value: "spot-availability/prod" }, { Key: TAG.launchedBy, Value: "handler" }] }],
        }))).Instances?.[0].InstanceId as string;
        const untagged = (await world.ec2.send(new RunInstancesCommand({ MinCount: 1, MaxCount: 1, ImageId: "ami-12c6146b" }))).Instances?.[0].InstanceId as string;

        const ec2 = new EC2Client({ region: REGION, endpoint: emulator.endpoint, credentials: CREDENTIALS });
        const terminated = await terminateHandlerLaunched(ec2, world.settings.stack);

        assert.deepStrictEqual(terminated.sort(), ours.sort());
        const terminatedNow = (await world.instances(["shutting-down", "terminated"])).map((i) => i.InstanceId);
        assert.deepStrictEqual(terminatedNow.sort(), ours.sort());
        const live = (await world.instances()).map((i) => i.InstanceId).sort();
        assert.deepStrictEqual(live, Object.values(world.declared).sort(), "Pulumi's own instances are Pulumi's to delete");
        const everyone = await world.ec2.send(new DescribeInstancesCommand({ InstanceIds: [otherStack, untagged] }));
        assert.ok((everyone.Reservations ?? []).flatMap((r) => r.Instances ?? []).every((i) => i.State?.Name === "running"), "other stacks' and untagged instances untouched");
        assert.ok(emulator.proxy.callsTo("DescribeInstances").some((call) => call.params["Filter.1.Name"] === `tag:${TAG.stack}`), "found by tag");
    });

    it("does nothing when the handler launched nothing", async () => {
        const ec2 = new EC2Client({ region: REGION, endpoint: emulator.endpoint, credentials: CREDENTIALS });
        assert.deepStrictEqual(await terminateHandlerLaunched(ec2, world.settings.stack), []);
        assert.deepStrictEqual(emulator.proxy.writeCalls(), []);
    });
});

describe("the order pulumi destroy deletes in", () => {
    let run: ProgramRun;
    before(async () => {
        run = await runProgram();
    });
    const teardown = () => {
        const [resource] = run.resources.filter((r) => r.name === "spot-handler-launched");
        assert.ok(resource, "the teardown resource is declared");
        return resource;
    };

    it("deletes the teardown after everything that can launch: the function and every rule depend on it", () => {
        const launchers = [...run.ofType("aws:lambda/function:Function"), ...run.ofType("aws:cloudwatch/eventRule:EventRule")];
        assert.strictEqual(launchers.length, 5);
        for (const resource of launchers) {
            assert.ok(resource.dependsOn.includes(teardown().name), `${resource.name} depends on the teardown`);
        }
    });

    it("deletes it before the security groups, subnets and launch template, which it depends on", () => {
        const mustOutlive = [
            run.one("aws:ec2/securityGroup:SecurityGroup", "-instance").name,
            run.one("aws:ec2/securityGroup:SecurityGroup", "-alb").name,
            run.one("aws:ec2/launchTemplate:LaunchTemplate").name,
            ...run.ofType("aws:ec2/subnet:Subnet").map((subnet) => subnet.name),
            ...run.ofType("aws:ec2/instance:Instance").map((instance) => instance.name),
        ];
        for (const name of mustOutlive) {
            assert.ok(teardown().dependsOn.includes(name), `the teardown depends on ${name}: ${teardown().dependsOn.join(", ")}`);
        }
        assert.deepStrictEqual(teardown().inputs.stack, "spot-availability/dev");
        assert.deepStrictEqual(teardown().inputs.region, "us-east-2");
    });
});
