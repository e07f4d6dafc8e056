import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { HandlerSettings } from "../handler/settings";
import { TAG } from "../handler/tags";
import { PolicyDocument } from "../infra/interruptionHandling";
import { CREDENTIALS, useEmulator } from "../rehearsal/emulator";
import { declaredFunction, FunctionRole, functionCode, inMoto, loadLambda, RUNTIME_SDK_MODULES } from "../rehearsal/materialize";
import { ACCOUNT_ID, ProgramRun, runProgram, subnetsByZone } from "../rehearsal/program";
import { interruptionWarning, sqsBatch } from "../rehearsal/world";
import { authorizationRequests, decide, StackFacts } from "./support/authorization";
import { RecordedCall } from "../rehearsal/faultProxy";

/**
 * The Lambda as `pulumi up` would upload it: the archive's contents, the settings baked into it,
 * and the role it runs under.
 */

async function archiveOf(run: ProgramRun, role: FunctionRole = "events"): Promise<Record<string, any>> {
    return functionCode(run, role).assets;
}

describe("the handler's packaging", () => {
    let run: ProgramRun;
    before(async () => {
        run = await runProgram();
    });

    for (const role of ["events", "deploy"] as const) {
        it(`uploads __index.js and leaves the AWS SDK and Pulumi out of the ${role} function's archive`, async () => {
            const paths = Object.keys(await archiveOf(run, role));
            assert.ok(paths.includes("__index.js"), `archive holds ${paths.join(", ")}`);
            assert.deepStrictEqual(paths.filter((p) => /node_modules\/@(aws-sdk|pulumi)\//.test(`${p}/`)), []);
        });
    }

    it("builds the deploy function from the same code with Lambda's longest timeout, and leaves the event path's at 60 s", () => {
        assert.strictEqual(declaredFunction(run, "deploy").inputs.timeout, 900);
        assert.strictEqual(declaredFunction(run, "events").inputs.timeout, 60);
        assert.strictEqual(declaredFunction(run, "deploy").inputs.role, declaredFunction(run, "events").inputs.role, "one role, one set of actions");
    });

    it("bakes the stack's names, ARNs and settings into the closure", async () => {
        const text: string = await (await archiveOf(run))["__index.js"].text;
        const targetGroupArn = run.one("aws:lb/targetGroup:TargetGroup").state.arn;
        const templateId = run.one("aws:ec2/launchTemplate:LaunchTemplate").id;
        for (const expected of ["spot-availability/dev", targetGroupArn, templateId, "Prometheus", ...Object.values(subnetsByZone(run))]) {
            assert.ok(text.includes(expected), `archive names ${expected}`);
        }
    });

    it("loads as Lambda loads it and answers a batch through the SDK an older nodejs22.x runtime provides (3.699.0)", async () => {
        const emulator = await useEmulator();
        await emulator.reset();
        // The stack exists (its target group, its queue) as `pulumi up` would leave it.
        const deployed = await runProgram({ materialize: inMoto(emulator).materialize });
        emulator.proxy.calls.length = 0;
        // What Lambda's environment would provide: credentials, and here the emulator's endpoint.
        const { handler, logs } = await loadLambda(functionCode(deployed), {
            AWS_ENDPOINT_URL: emulator.endpoint,
            AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
            AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
        }, { nodeModules: RUNTIME_SDK_MODULES });
        const response = await handler(sqsBatch({
            version: "0",
            id: "7e3b1c52-7a5f-4b8e-9c1d-0f6a2b3c4d5e",
            "detail-type": "EC2 Spot Instance Interruption Warning",
            source: "aws.ec2",
            account: ACCOUNT_ID,
            time: "2026-11-24T10:00:00Z",
            region: "us-east-2",
            resources: ["arn:aws:ec2:us-east-2a:instance/i-0123456789abcdef0"],
            detail: { "instance-id": "i-0123456789abcdef0", "instance-action": "terminate" },
        }, "not an event", interruptionWarning(deployed.outputs.instances["Prometheus-B"])));
        assert.deepStrictEqual(response, { batchItemFailures: [] });
        // That SDK launched (through the capacity-aware retry strategy) and set the drain timer.
        assert.strictEqual(JSON.parse(fs.readFileSync(path.join(RUNTIME_SDK_MODULES, "@aws-sdk/client-ec2/package.json"), "utf8")).version, "3.699.0");
        assert.deepStrictEqual(logs.filter((line) => line.result === "launched" || line.result === "set").map((line) => line.action).sort(), ["launch", "timer"]);
        const foreign = logs.find((line) => line.reason === "not an instance of this stack") ?? {};
        const malformed = logs.find((line) => line.message === "m2") ?? {};
        assert.deepStrictEqual([foreign.event, foreign.instance, foreign.result, foreign.reason], ["interruption-warning", "i-0123456789abcdef0", "ignored", "not an instance of this stack"]);
        assert.deepStrictEqual([malformed.message, malformed.result, malformed.reason], ["m2", "ignored", "message body is not JSON"]);
        // The archive's handler asked the emulator which instances carry this stack's tag.
        const [describe] = emulator.proxy.callsTo("DescribeInstances");
        assert.strictEqual(describe.params["Filter.1.Name"], "tag:spot-availability:stack");
        assert.strictEqual(describe.params["Filter.1.Value.1"], "spot-availability/dev");
    });

    describe("its role's policy", () => {
        let policy: PolicyDocument;
        let settings: Pick<HandlerSettings, "stack" | "targetGroupArn">;
        before(() => {
            policy = JSON.parse(run.one("aws:iam/rolePolicy:RolePolicy").inputs.policy);
            settings = { stack: "spot-availability/dev", targetGroupArn: run.one("aws:lb/targetGroup:TargetGroup").state.arn };
        });
        const statementsFor = (action: string) => policy.Statement.filter((s) => s.Action.includes(action));

        it("names every action exactly: no wildcard action, no ec2:*", () => {
            const actions = policy.Statement.flatMap((s) => s.Action);
            assert.ok(actions.length > 0);
            assert.deepStrictEqual(actions.filter((action) => action.includes("*")), []);
            assert.ok(policy.Statement.every((s) => s.Effect === "Allow"));
        });

        it("passes only the instance role, and only to EC2", () => {
            const [passRole, ...others] = statementsFor("iam:PassRole");
            assert.strictEqual(others.length, 0);
            assert.deepStrictEqual(passRole.Action, ["iam:PassRole"]);
            assert.strictEqual(passRole.Resource, run.one("aws:iam/role:Role", "-instance").state.arn);
            assert.deepStrictEqual(passRole.Condition, { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } });
        });

        it("launches and terminates only instances carrying this stack's tag", () => {
            const launch = statementsFor("ec2:RunInstances").find((s) => s.Resource === `arn:aws:ec2:us-east-2:${ACCOUNT_ID}:instance/*`);
            assert.ok(launch, "a RunInstances statement on instances");
            assert.strictEqual(launch.Condition?.StringEquals[`aws:RequestTag/${TAG.stack}`], settings.stack);
            assert.strictEqual(launch.Condition?.ArnLike["ec2:LaunchTemplate"], run.one("aws:ec2/launchTemplate:LaunchTemplate").state.arn);
            const [terminate] = statementsFor("ec2:TerminateInstances");
            assert.strictEqual(terminate.Condition?.StringEquals[`aws:ResourceTag/${TAG.stack}`], settings.stack);
            const [tag] = statementsFor("ec2:CreateTags");
            assert.deepStrictEqual(tag.Condition, { StringEquals: { "ec2:CreateAction": "RunInstances" } });
        });

        it("registers and drains targets of this stack's target group only", () => {
            const [targets] = statementsFor("elasticloadbalancing:RegisterTargets");
            assert.deepStrictEqual(statementsFor("elasticloadbalancing:DeregisterTargets"), [targets]);
            assert.strictEqual(targets.Resource, settings.targetGroupArn);
        });

        it("allows a release's calls on this stack's template and instances, as IAM evaluates them, and denies them on another's", async () => {
            const template = run.one("aws:ec2/launchTemplate:LaunchTemplate");
            const ours = "i-0aaaaaaaaaaaaaaa1";
            const theirs = "i-0bbbbbbbbbbbbbbb2";
            const facts: StackFacts = {
                partition: "aws",
                region: "us-east-2",
                accountId: ACCOUNT_ID,
                launchTemplate: { id: template.id, arn: template.state.arn, securityGroupIds: template.inputs.vpcSecurityGroupIds, imageId: template.inputs.imageId, instanceRoleArn: "" },
                instanceTags: { [ours]: { [TAG.stack]: settings.stack }, [theirs]: { [TAG.stack]: "spot-availability/prod" } },
            };
            const call = (action: string, params: Record<string, string>): RecordedCall => ({ service: "ec2", action, params });
            const verdicts = async (action: string, params: Record<string, string>) =>
                Promise.all(authorizationRequests(call(action, params), facts).map((request) => decide(policy, "arn:aws:iam::123456789012:role/spot-handler", request, ACCOUNT_ID)));
            assert.deepStrictEqual(await verdicts("DescribeLaunchTemplates", { "LaunchTemplateId.1": template.id }), ["Allowed"]);
            assert.deepStrictEqual(await verdicts("ModifyLaunchTemplate", { LaunchTemplateId: template.id, DefaultVersion: "2" }), ["Allowed"]);
            assert.deepStrictEqual(await verdicts("ModifyLaunchTemplate", { LaunchTemplateId: "lt-0other0000000000", DefaultVersion: "2" }), ["ImplicitlyDenied"]);
            assert.deepStrictEqual(await verdicts("GetConsoleOutput", { InstanceId: ours, Latest: "true" }), ["Allowed"]);
            assert.deepStrictEqual(await verdicts("GetConsoleOutput", { InstanceId: theirs, Latest: "true" }), ["ImplicitlyDenied"]);
        });

        it("grants * resources only to describe calls, which support nothing narrower", () => {
            const unscoped = policy.Statement.filter((s) => s.Resource === "*").flatMap((s) => s.Action);
            assert.deepStrictEqual(unscoped.sort(), ["ec2:DescribeInstances", "ec2:DescribeLaunchTemplates", "ec2:DescribeSpotPriceHistory", "elasticloadbalancing:DescribeTargetHealth"]);
        });

        it("promotes a version of this stack's launch template only, and reads the console of its own instances only", () => {
            const [promote, ...others] = statementsFor("ec2:ModifyLaunchTemplate");
            assert.strictEqual(others.length, 0);
            assert.deepStrictEqual([promote.Action, promote.Resource], [["ec2:ModifyLaunchTemplate"], run.one("aws:ec2/launchTemplate:LaunchTemplate").state.arn]);
            const [console] = statementsFor("ec2:GetConsoleOutput");
            assert.strictEqual(console.Resource, `arn:aws:ec2:us-east-2:${ACCOUNT_ID}:instance/*`);
            assert.deepStrictEqual(console.Condition, { StringEquals: { [`aws:ResourceTag/${TAG.stack}`]: settings.stack } });
        });
    });
});
