import * as assert from "assert";
import { DescribeInstancesCommand, EC2Client, Instance } from "@aws-sdk/client-ec2";
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { CreateAccessKeyCommand, CreateUserCommand, IAMClient, PutUserPolicyCommand } from "@aws-sdk/client-iam";
import { PolicyDocument } from "../infra/interruptionHandling";
import { TAG } from "../handler/tags";
import { CREDENTIALS, Emulator, useEmulator } from "./support/emulator";
import { inMoto, loadLambda } from "./support/materialize";
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

    describe("with moto enforcing the role's policy as the program declares it", () => {
        /** A user holding exactly `policy`; moto authenticates and authorises each of its calls. */
        async function credentialsFor(userName: string, policy: PolicyDocument) {
            const iam = new IAMClient({ region: REGION, endpoint: emulator.motoEndpoint, credentials: CREDENTIALS });
            await iam.send(new CreateUserCommand({ UserName: userName }));
            await iam.send(new PutUserPolicyCommand({ UserName: userName, PolicyName: "policy", PolicyDocument: JSON.stringify(policy) }));
            const key = (await iam.send(new CreateAccessKeyCommand({ UserName: userName }))).AccessKey;
            return { AWS_ACCESS_KEY_ID: key?.AccessKeyId as string, AWS_SECRET_ACCESS_KEY: key?.SecretAccessKey as string };
        }

        /**
         * The role's policy, as moto can enforce it: moto authorises EC2 and ELBv2 calls against
         * resource `*` and ignores conditions, so each statement keeps its actions and is widened
         * to `*`. Resources and conditions are checked against the real policy below, by simulation.
         */
        const handlerPolicy = (): PolicyDocument => {
            const declared: PolicyDocument = JSON.parse(run.one("aws:iam/rolePolicy:RolePolicy").inputs.policy);
            return { ...declared, Statement: declared.Statement.map(({ Sid, Effect, Action }) => ({ Sid, Effect, Action, Resource: "*" })) };
        };

        async function enforce(policy: PolicyDocument) {
            const handlerKeys = await credentialsFor("handler", policy);
            const adminKeys = await credentialsFor("admin", { Version: "2012-10-17", Statement: [{ Sid: "Admin", Effect: "Allow", Action: ["*"], Resource: "*" }] });
            const admin = { accessKeyId: adminKeys.AWS_ACCESS_KEY_ID, secretAccessKey: adminKeys.AWS_SECRET_ACCESS_KEY };
            ec2 = new EC2Client({ region: REGION, endpoint: emulator.motoEndpoint, credentials: admin });
            elb = new ElasticLoadBalancingV2Client({ region: REGION, endpoint: emulator.motoEndpoint, credentials: admin });
            await emulator.enforceIam();
            return loadLambda(run, { ...lambdaEnvironment(), ...handlerKeys });
        }

        afterEach(() => {
            ec2 = new EC2Client({ region: REGION, endpoint: emulator.motoEndpoint, credentials: CREDENTIALS });
            elb = new ElasticLoadBalancingV2Client({ region: REGION, endpoint: emulator.motoEndpoint, credentials: CREDENTIALS });
        });

        it("restores capacity with no call denied", async () => {
            const { handler } = await enforce(handlerPolicy());
            const doomed = run.outputs.instances["Prometheus-B"];
            await handler(interruptionWarning(doomed));
            assert.ok(emulator.proxy.calls.length >= 4);
            assert.deepStrictEqual(emulator.proxy.calls.filter((call) => call.status !== 200).map((call) => `${call.action}: ${call.status}`), [], "every call allowed");
            const [replacement] = (await stackInstances()).filter((i) => tag(i, TAG.launchedBy) === "handler");
            assert.strictEqual(replacement?.Placement?.AvailabilityZone, "us-east-2b");
            assert.ok((await registered()).includes(replacement.InstanceId as string));
        });

        it("fails when the policy lacks an action the handler needs", async () => {
            const policy = handlerPolicy();
            const withoutRunInstances = {
                ...policy,
                Statement: policy.Statement.map((s) => ({ ...s, Action: s.Action.filter((action) => action !== "ec2:RunInstances") })).filter((s) => s.Action.length > 0),
            };
            const { handler } = await enforce(withoutRunInstances);
            await assert.rejects(handler(interruptionWarning(run.outputs.instances["Prometheus-B"])), /not authorized|AccessDenied|UnauthorizedOperation/i);
            assert.deepStrictEqual((await stackInstances()).filter((i) => tag(i, TAG.launchedBy) === "handler"), []);
        });
    });
});
