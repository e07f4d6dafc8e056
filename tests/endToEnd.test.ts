import * as assert from "assert";
import { DescribeInstancesCommand, EC2Client, Instance, RunInstancesCommand, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { CreateAccessKeyCommand, CreateUserCommand, IAMClient, PutUserPolicyCommand } from "@aws-sdk/client-iam";
import { PolicyDocument } from "../infra/interruptionHandling";
import { AuthorizationRequest, authorizationRequests, decide, publicParameterArn, StackFacts } from "./support/authorization";
import { instanceTags, TAG } from "../handler/tags";
import { CREDENTIALS, Emulator } from "../rehearsal/emulator";
import { functionCode, inMoto, loadLambda } from "../rehearsal/materialize";
import { ProgramRun, REGION, runProgram, subnetsByZone } from "../rehearsal/program";
import { interruptionWarning, rebalanceRecommendation, scheduledEvent, sentMessages, sqsBatch, stateChange, tag } from "../rehearsal/world";
import { BatchResponse } from "../handler";
import { emulatorClients, lambdaEnvironment } from "./support/emulator";

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
        ({ emulator, ec2, elb } = await emulatorClients());
    });
    beforeEach(async () => {
        await emulator.reset();
        run = await runProgram({ materialize: inMoto(emulator).materialize });
        emulator.proxy.calls.length = 0;
    });

    const environment = () => lambdaEnvironment(emulator);

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
            SubnetId: subnetsByZone(run)[zone],
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

    /** The archive's handler, handed SQS batches as the event source mapping hands them. */
    async function archiveHandler(variables = environment()) {
        const { handler } = await loadLambda(functionCode(run), variables);
        return (...events: unknown[]) => handler(sqsBatch(...events)) as Promise<BatchResponse>;
    }

    /** Each replacement's running state-change, as EventBridge sends it once the instance runs. */
    async function runningEvents() {
        return (await stackInstances()).filter((i) => tag(i, TAG.launchedBy) === "handler").map((i) => stateChange(i.InstanceId as string, "running"));
    }

    it("replaces Prometheus-B in its zone, tagged, on spot; registers it when it runs; drains the old one by its timer", async () => {
        const handle = await archiveHandler();
        const doomed = run.outputs.instances["Prometheus-B"];
        assert.deepStrictEqual((await registered()).sort(), Object.values(run.outputs.instances).sort(), "the stack as Pulumi left it");

        assert.deepStrictEqual(await handle(interruptionWarning(doomed)), { batchItemFailures: [] });

        const replacements = (await stackInstances()).filter((i) => tag(i, TAG.launchedBy) === "handler");
        assert.strictEqual(replacements.length, 1);
        const [replacement] = replacements;
        assert.strictEqual(replacement.Placement?.AvailabilityZone, "us-east-2b");
        assert.strictEqual(tag(replacement, "Name"), "Prometheus-B");
        assert.strictEqual(tag(replacement, TAG.zone), "us-east-2b");
        assert.strictEqual(tag(replacement, TAG.replaces), doomed);
        assert.strictEqual(replacement.InstanceLifecycle, "spot");
        assert.strictEqual(replacement.SubnetId, subnetsByZone(run)["us-east-2b"]);
        assert.strictEqual(tag(replacement, "aws:ec2launchtemplate:id"), run.one("aws:ec2/launchTemplate:LaunchTemplate").id);
        assert.ok((await registered()).includes(doomed), "the old one serves on meanwhile");

        await handle(...(await runningEvents()));
        assert.ok((await registered()).includes(replacement.InstanceId as string), "replacement registered on its running event");
        // The timers went to the queue the program declared; delivered, the deadline drains the old one.
        const timers = sentMessages(emulator.proxy);
        assert.ok(emulator.proxy.callsTo("SendMessageBatch").every((call) => call.params.QueueUrl === run.one("aws:sqs/queue:Queue", "-events").id));
        await handle(...timers.filter((timer) => timer.body.detail.cause === "deadline").map((timer) => timer.body));
        assert.ok(!(await registered()).includes(doomed), "old one drained");
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
         * The role's policy, as moto can enforce it: moto authorises calls against resource `*`
         * and ignores conditions, so each statement keeps its actions and is widened to `*`; and it
         * asks for sqs:SendMessageBatch where AWS authorises a batch as sqs:SendMessage. Resources
         * and conditions are checked against the real policy below, by simulation.
         */
        const handlerPolicy = (): PolicyDocument => {
            const declared: PolicyDocument = JSON.parse(run.one("aws:iam/rolePolicy:RolePolicy").inputs.policy);
            const asMotoNamesIt = (actions: string[]) => actions.flatMap((action) => (action === "sqs:SendMessage" ? [action, "sqs:SendMessageBatch"] : [action]));
            return { ...declared, Statement: declared.Statement.map(({ Sid, Effect, Action }) => ({ Sid, Effect, Action: asMotoNamesIt(Action), Resource: "*" })) };
        };

        async function enforce(policy: PolicyDocument) {
            const handlerKeys = await credentialsFor("handler", policy);
            const adminKeys = await credentialsFor("admin", { Version: "2012-10-17", Statement: [{ Sid: "Admin", Effect: "Allow", Action: ["*"], Resource: "*" }] });
            const admin = { accessKeyId: adminKeys.AWS_ACCESS_KEY_ID, secretAccessKey: adminKeys.AWS_SECRET_ACCESS_KEY };
            ec2 = new EC2Client({ region: REGION, endpoint: emulator.motoEndpoint, credentials: admin });
            elb = new ElasticLoadBalancingV2Client({ region: REGION, endpoint: emulator.motoEndpoint, credentials: admin });
            await emulator.enforceIam();
            return loadLambda(functionCode(run), { ...environment(), ...handlerKeys });
        }

        afterEach(() => {
            ec2 = new EC2Client({ region: REGION, endpoint: emulator.motoEndpoint, credentials: CREDENTIALS });
            elb = new ElasticLoadBalancingV2Client({ region: REGION, endpoint: emulator.motoEndpoint, credentials: CREDENTIALS });
        });

        it("restores capacity with no call denied", async () => {
            const { handler } = await enforce(handlerPolicy());
            const handle = (...events: unknown[]) => handler(sqsBatch(...events));
            const doomed = run.outputs.instances["Prometheus-B"];
            await handle(interruptionWarning(doomed));
            await handle(...(await runningEvents()));
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
            const { handler, logs } = await enforce(withoutRunInstances);
            assert.deepStrictEqual(await handler(sqsBatch(interruptionWarning(run.outputs.instances["Prometheus-B"]))), { batchItemFailures: [{ itemIdentifier: "m1" }] });
            assert.match(logs.find((line) => line.action === "launch")?.error, /not authorized|AccessDenied|UnauthorizedOperation/i);
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
            const handle = await archiveHandler();
            await handle(interruptionWarning(run.outputs.instances["Prometheus-B"]));
            await handle(rebalanceRecommendation(run.outputs.instances["Prometheus-A"]));
            await handle(...(await runningEvents()));
            const extra = await launchHandlerExtra("us-east-2c");
            await handle(scheduledEvent());
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
        it("restores capacity in the remaining zones, balanced, without duplicates, and gives zone B back once it recovers", async () => {
            await emulator.reset();
            run = await runProgram({ config: { "spot-availability:instancesPerZone": 2 }, materialize: inMoto(emulator).materialize });
            emulator.proxy.calls.length = 0;
            const handle = await archiveHandler();
            const perZone = async () => {
                const live = await stackInstances();
                return ["us-east-2a", "us-east-2b", "us-east-2c"].map((zone) => live.filter((i) => i.Placement?.AvailabilityZone === zone).length);
            };
            // Zone B loses every pool, spot and on-demand, and AWS warns both its instances: one batch.
            emulator.proxy.capacityFaults = [{ zone: "us-east-2b", code: "InsufficientInstanceCapacity" }];
            const zoneB = [run.outputs.instances["Prometheus-B"], run.outputs.instances["Prometheus-B-2"]];
            assert.deepStrictEqual(await handle(...zoneB.map((id) => interruptionWarning(id))), { batchItemFailures: [] });
            assert.deepStrictEqual(await perZone(), [3, 2, 3], "one replacement in A, one in C, while B's warned instances still run");
            const reconcileNow = sentMessages(emulator.proxy).filter((m) => m.body["detail-type"] === "Reconcile Request");
            assert.strictEqual(reconcileNow.length, 1, "the replacements landed outside B: reconcile at once");
            await handle(reconcileNow[0].body);

            // AWS reclaims them; their state changes find their places taken.
            await ec2.send(new TerminateInstancesCommand({ InstanceIds: zoneB }));
            await handle(...zoneB.map((id) => stateChange(id, "terminated")), ...(await runningEvents()));
            assert.deepStrictEqual(await perZone(), [3, 0, 3]);
            const live = await stackInstances();
            assert.deepStrictEqual(live.map((i) => tag(i, TAG.replaces)).filter((id) => id !== undefined).sort(), [...zoneB].sort(), "one replacement for each, no duplicate");
            const targets = await registered();
            assert.ok(live.every((i) => targets.includes(i.InstanceId as string)), "every live instance serves");
            assert.strictEqual(emulator.proxy.callsTo("RunInstances").filter((call) => call.status === 200).length, 2, "B was tried again, and nothing grew elsewhere");

            // Zone B recovers: the schedule refills it, then trims the handler's extras elsewhere.
            emulator.proxy.capacityFaults = [];
            await handle(scheduledEvent());
            await handle(...(await runningEvents()));
            await handle(scheduledEvent());
            assert.deepStrictEqual(await perZone(), [2, 2, 2]);
            const after = await stackInstances();
            assert.ok(Object.values(run.outputs.instances).filter((id) => !zoneB.includes(id as string)).every((id) => after.some((i) => i.InstanceId === id)), "the deploy's instances outside B all stay");
        });
    });
});
