import * as assert from "assert";
import { DescribeInstancesCommand, EC2Client, Instance } from "@aws-sdk/client-ec2";
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { TAG } from "../handler/tags";
import { CREDENTIALS, Emulator, useEmulator } from "./support/emulator";
import { inMoto, LambdaHandler, loadLambda } from "./support/materialize";
import { ProgramRun, REGION, runProgram } from "./support/program";
import { interruptionWarning, tag } from "./support/world";

/**
 * The two sides agree: the dev stack, materialised in moto by the Pulumi mocks, and the Lambda
 * archive exactly as `pulumi up` would upload it, loaded as Lambda loads it.
 */

const STACK = "spot-availability/dev";

describe("the uploaded archive, on the dev stack materialised in moto", () => {
    let emulator: Emulator;
    let run: ProgramRun;
    let ec2: EC2Client;
    let elb: ElasticLoadBalancingV2Client;

    before(async () => {
        emulator = await useEmulator();
        const direct = { region: REGION, endpoint: emulator.motoEndpoint, credentials: CREDENTIALS };
        ec2 = new EC2Client(direct);
        elb = new ElasticLoadBalancingV2Client(direct);
    });
    beforeEach(async () => {
        await emulator.reset();
        run = await runProgram({ materialize: inMoto(emulator) });
        emulator.proxy.calls.length = 0;
    });

    const lambdaEnvironment = () => ({
        AWS_REGION: REGION,
        AWS_ENDPOINT_URL: emulator.endpoint,
        AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    });

    async function stackInstances(): Promise<Instance[]> {
        const result = await ec2.send(new DescribeInstancesCommand({
            Filters: [{ Name: `tag:${TAG.stack}`, Values: [STACK] }, { Name: "instance-state-name", Values: ["pending", "running"] }],
        }));
        return (result.Reservations ?? []).flatMap((r) => r.Instances ?? []);
    }

    async function registered(): Promise<string[]> {
        const health = await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: run.outputs.targetGroupArn }));
        return (health.TargetHealthDescriptions ?? []).map((d) => d.Target?.Id as string);
    }

    it("replaces Prometheus-B in its zone, tagged, on spot, registered, and drains the old one", async () => {
        const { handler } = await loadLambda(run, lambdaEnvironment());
        const doomed = run.outputs.instances["Prometheus-B"];
        assert.deepStrictEqual((await registered()).sort(), Object.values(run.outputs.instances).sort(), "the stack as Pulumi left it");

        await handler(interruptionWarning(doomed));

        const replacements = (await stackInstances()).filter((i) => tag(i, TAG.launchedBy) === "handler");
        assert.strictEqual(replacements.length, 1);
        const [replacement] = replacements;
        assert.strictEqual(replacement.Placement?.AvailabilityZone, "us-east-2b");
        assert.strictEqual(tag(replacement, "Name"), "Prometheus-B");
        assert.strictEqual(tag(replacement, TAG.zone), "us-east-2b");
        assert.strictEqual(tag(replacement, TAG.replaces), doomed);
        assert.strictEqual(replacement.InstanceLifecycle, "spot");
        assert.strictEqual(replacement.SubnetId, run.one("aws:ec2/subnet:Subnet", "us-east-2b").id);
        assert.strictEqual(tag(replacement, "aws:ec2launchtemplate:id"), run.one("aws:ec2/launchTemplate:LaunchTemplate").id);
        const targets = await registered();
        assert.ok(targets.includes(replacement.InstanceId as string), "replacement registered");
        assert.ok(!targets.includes(doomed), "old one drained");
    });
});
