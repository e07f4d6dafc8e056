import * as assert from "assert";
import { DescribeInstancesCommand, EC2Client, Instance, RunInstancesCommand, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { CreateAccessKeyCommand, CreateUserCommand, IAMClient, PutUserPolicyCommand } from "@aws-sdk/client-iam";
import { PolicyDocument } from "../infra/interruptionHandling";
import { AuthorizationRequest, authorizationRequests, decide, publicParameterArn, StackFacts } from "./support/authorization";
import { instanceTags, TAG } from "../handler/tags";
import { CREDENTIALS, Emulator, useEmulator } from "../rehearsal/emulator";
import { inMoto, loadLambda } from "../rehearsal/materialize";
import { ProgramRun, REGION, runProgram } from "../rehearsal/program";
import { interruptionWarning, rebalanceRecommendation, scheduledEvent, stateChange, tag } from "../rehearsal/world";

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

    /** An instance the handler launched earlier and no longer needs. */
    async function launchHandlerExtra(zone: string): Promise<string> {
        const launched = await ec2.send(new RunInstancesCommand({
            MinCount: 1,
            MaxCount: 1,
            LaunchTemplate: { LaunchTemplateId: run.one("aws:ec2/launchTemplate:LaunchTemplate").id, Version: "$Default" },
            SubnetId: run.one("aws:ec2/subnet:Subnet", zone).id,
            InstanceMarketOptions: { MarketType: "spot" },
            TagSpecifications: [{
                ResourceType: "instance",
                Tags: Object.entries(instanceTags({ instanceName: "Prometheus", stack: STACK, zone, region: REGION, launchedBy: "handler" })).map(([Key, Value]) => ({ Key, Value })),
            }],
        }));
        return launched.Instances?.[0].InstanceId as string;
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

    describe("each call it made, evaluated against the real policy with resources and conditions", () => {
        let policy: PolicyDocument;
        let role: string;
        let facts: StackFacts;
        beforeEach(async () => {
            policy = JSON.parse(run.one("aws:iam/rolePolicy:RolePolicy").inputs.policy);
            role = run.one("aws:iam/role:Role", "spot-handler").state.arn;
            const template = run.one("aws:ec2/launchTemplate:LaunchTemplate");
            const instances = await ec2.send(new DescribeInstancesCommand({}));
            facts = {
                partition: "aws",
                region: REGION,
                accountId: "123456789012",
                launchTemplate: {
                    id: template.id,
                    arn: template.state.arn,
                    securityGroupIds: template.inputs.vpcSecurityGroupIds,
                    imageId: template.inputs.imageId,
                    instanceRoleArn: run.one("aws:iam/role:Role", "-instance").state.arn,
                },
                instanceTags: Object.fromEntries((instances.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => [
                    i.InstanceId as string,
                    Object.fromEntries((i.Tags ?? []).map((t) => [t.Key as string, t.Value as string])),
                ])),
            };
        });

        it("allows every call of a warning, a rebalance and a reconcile that trims an extra", async () => {
            const { handler } = await loadLambda(run, lambdaEnvironment());
            await handler(interruptionWarning(run.outputs.instances["Prometheus-B"]));
            await handler(rebalanceRecommendation(run.outputs.instances["Prometheus-A"]));
            const extra = await launchHandlerExtra("us-east-2c");
            await handler(scheduledEvent());
            assert.ok(emulator.proxy.callsTo("TerminateInstances").some((call) => call.params["InstanceId.1"] === extra), "the extra was trimmed");

            const instances = await ec2.send(new DescribeInstancesCommand({}));
            for (const i of (instances.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
                facts.instanceTags[i.InstanceId as string] = Object.fromEntries((i.Tags ?? []).map((t) => [t.Key as string, t.Value as string]));
            }
            const actions = new Set<string>();
            for (const call of emulator.proxy.calls) {
                for (const request of authorizationRequests(call, facts)) {
                    actions.add(request.action);
                    assert.strictEqual(await decide(policy, role, request, facts.accountId), "Allowed", `${request.action} on ${request.resource} ${JSON.stringify(request.context)}`);
                }
            }
            const parameter = publicParameterArn(facts.launchTemplate.imageId, facts);
            assert.ok(parameter, "the dev stack launches the latest Amazon Linux through SSM");
            assert.deepStrictEqual(policy.Statement.filter((s) => s.Action.includes("ssm:GetParameters")).map((s) => s.Resource), [parameter]);
            for (const action of ["ec2:RunInstances", "ec2:CreateTags", "iam:PassRole", "ec2:TerminateInstances", "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]) {
                assert.ok(actions.has(action), `the run exercised ${action}`);
            }
        });

        it("denies the same calls on another stack's instance or target group, or launched untagged", async () => {
            const ec2Arn = (resource: string) => `arn:aws:ec2:${REGION}:123456789012:${resource}`;
            const otherGroup = "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/other-stack/0123456789abcdef";
            const denied: AuthorizationRequest[] = [
                { action: "ec2:TerminateInstances", resource: ec2Arn("instance/i-0aaaaaaaaaaaaaaaa"), context: { "aws:ResourceTag/spot-availability:stack": "spot-availability/prod" } },
                { action: "ec2:TerminateInstances", resource: ec2Arn("instance/i-0bbbbbbbbbbbbbbbb"), context: {} },
                { action: "elasticloadbalancing:DeregisterTargets", resource: otherGroup, context: {} },
                { action: "elasticloadbalancing:RegisterTargets", resource: otherGroup, context: {} },
                { action: "ec2:RunInstances", resource: ec2Arn("instance/*"), context: { "ec2:LaunchTemplate": facts.launchTemplate.arn, "aws:RequestTag/spot-availability:stack": "spot-availability/prod" } },
                { action: "ec2:RunInstances", resource: ec2Arn("instance/*"), context: { "ec2:LaunchTemplate": ec2Arn("launch-template/lt-0other"), "aws:RequestTag/spot-availability:stack": "spot-availability/dev" } },
                { action: "ec2:CreateTags", resource: ec2Arn("instance/i-0aaaaaaaaaaaaaaaa"), context: { "ec2:CreateAction": "CreateTags" } },
                { action: "iam:PassRole", resource: "arn:aws:iam::123456789012:role/admin", context: { "iam:PassedToService": "ec2.amazonaws.com" } },
            ];
            for (const request of denied) {
                assert.strictEqual(await decide(policy, role, request, facts.accountId), "ImplicitlyDenied", `${request.action} on ${request.resource}`);
            }
        });
    });

    describe("a zone outage", () => {
        it("restores capacity in the remaining zones, balanced, without duplicates", async () => {
            await emulator.reset();
            run = await runProgram({ config: { "spot-availability:instancesPerZone": 2 }, materialize: inMoto(emulator) });
            const { handler } = await loadLambda(run, lambdaEnvironment());
            // Zone B loses every pool, spot and on-demand, and AWS reclaims both its instances.
            emulator.proxy.capacityFaults = [{ zone: "us-east-2b", code: "InsufficientInstanceCapacity" }];
            const zoneB = [run.outputs.instances["Prometheus-B"], run.outputs.instances["Prometheus-B-2"]];
            // The warnings arrive together; reserved concurrency 1 has Lambda serve them one after another.
            for (const id of zoneB) {
                await handler(interruptionWarning(id));
            }
            await ec2.send(new TerminateInstancesCommand({ InstanceIds: zoneB }));
            for (const id of zoneB) {
                await handler(stateChange(id, "terminated"));
            }
            await handler(scheduledEvent());

            const live = await stackInstances();
            const perZone = (zone: string) => live.filter((i) => i.Placement?.AvailabilityZone === zone).length;
            assert.deepStrictEqual([perZone("us-east-2a"), perZone("us-east-2b"), perZone("us-east-2c")], [3, 0, 3]);
            const replaced = live.map((i) => tag(i, TAG.replaces)).filter((id) => id !== undefined);
            assert.deepStrictEqual(replaced.sort(), [...zoneB].sort(), "one replacement for each, no duplicate");
            const targets = await registered();
            assert.ok(live.every((i) => targets.includes(i.InstanceId as string)), "every live instance serves");
            assert.ok(emulator.proxy.callsTo("RunInstances").filter((call) => call.status === 200).length === 2, "the schedule tried zone B only, without growing the fleet");

            // Zone B recovers: the schedule refills it, then trims the handler's extras elsewhere.
            emulator.proxy.capacityFaults = [];
            await handler(scheduledEvent());
            await handler(scheduledEvent());
            const after = await stackInstances();
            const count = (zone: string) => after.filter((i) => i.Placement?.AvailabilityZone === zone).length;
            assert.deepStrictEqual([count("us-east-2a"), count("us-east-2b"), count("us-east-2c")], [2, 2, 2]);
            assert.ok(Object.values(run.outputs.instances).filter((id) => !zoneB.includes(id as string)).every((id) => after.some((i) => i.InstanceId === id)), "Pulumi's instances all stay");
        });
    });
});
