import * as assert from "assert";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { FisClient, GetExperimentCommand, ListExperimentResolvedTargetsCommand, StartExperimentCommand } from "@aws-sdk/client-fis";
import { DRILL_TAG } from "../infra/fleetSummary";
import { HelpRequested } from "../tools/cli";
import { DeployedStack, parseStackOutputs, readDeployedStack } from "../tools/deployedStack";
import { chooseTemplate, formatDrillReport, instanceIdsOf, parseDrillArgs, runDrill, Sample, summarizeDrill } from "../tools/drill";
import { AuthorizationRequest, decide } from "./support/authorization";
import { ProgramRun, REGION_ZONES, runProgram } from "../rehearsal/program";
import { TAG } from "../handler/tags";
import { freshWorld, interruptionWarning, REGION, STACK, stateChange, tag, World } from "../rehearsal/world";

/** `npm run drill`: its command line, its reading of the timeline, and its FIS calls against a stub. */

const ZONES = ["us-east-2a", "us-east-2b", "us-east-2c"];
const FLEET = { region: REGION, stack: STACK, instanceName: "Prometheus", zones: ZONES, instancesPerZone: 1, instanceTypes: ["t3.micro"], spotProductDescription: "Linux/UNIX" };
const TEMPLATES = { "instance": "EXT-one", "us-east-2a": "EXT-a", "us-east-2b": "EXT-b", "us-east-2c": "EXT-c" };

describe("the drill's command line", () => {
    it("takes a stack, and optionally a zone and a timeout", () => {
        assert.deepStrictEqual(parseDrillArgs(["--stack", "dev"]), { stack: "dev", zone: undefined, timeoutMinutes: 10 });
        assert.deepStrictEqual(parseDrillArgs(["--stack", "org/dev", "--zone", "us-east-2b", "--timeout-minutes", "5"]), { stack: "org/dev", zone: "us-east-2b", timeoutMinutes: 5 });
    });

    const rejected: [string, string[], RegExp][] = [
        ["no stack", [], /--stack is required\nusage: npm run drill -- --stack <name>/],
        ["a stack without a name", ["--stack"], /--stack <value>' argument missing; allowed: --stack, --zone, --timeout-minutes/],
        ["an unknown option", ["--stack", "dev", "--zones", "a"], /Unknown option '--zones'; allowed: --stack, --zone, --timeout-minutes/],
        ["a stray argument", ["dev"], /positional argument.*allowed: --stack/],
        ["an unknown option, naming --help among those allowed", ["--stacks", "dev"], /allowed: --stack, --zone, --timeout-minutes, --help/],
        ["a timeout of 0", ["--stack", "dev", "--timeout-minutes", "0"], /--timeout-minutes "0" is not allowed; allowed: a whole number from 1 to 60/],
        ["a timeout in words", ["--stack", "dev", "--timeout-minutes", "ten"], /--timeout-minutes "ten" is not allowed/],
    ];
    for (const [what, argv, message] of rejected) {
        it(`rejects ${what}`, () => assert.throws(() => parseDrillArgs(argv), message));
    }

    it("asks for its usage with --help or -h, whatever else is given", () => {
        for (const argv of [["--help"], ["-h"], ["--stack", "dev", "--help"]]) {
            assert.throws(() => parseDrillArgs(argv), (error: Error) => error instanceof HelpRequested && /^npm run drill -- --stack <name> \[--zone <letter or zone>\]/.test(error.usage));
        }
    });

    it("picks the zone's template, by letter or name, or the one-instance template without a zone", () => {
        const deployed: DeployedStack = { name: "dev", targetGroupArn: "arn:tg", fleet: FLEET, drillTemplates: TEMPLATES };
        assert.deepStrictEqual(chooseTemplate(deployed), { scope: "instance", templateId: "EXT-one" });
        assert.deepStrictEqual(chooseTemplate(deployed, "us-east-2c"), { scope: "us-east-2c", templateId: "EXT-c" });
        assert.deepStrictEqual(chooseTemplate(deployed, "b"), { scope: "us-east-2b", templateId: "EXT-b" });
        assert.throws(() => chooseTemplate(deployed, "us-east-2d"), /--zone us-east-2d is not a zone of this stack; allowed: a \(us-east-2a\), b \(us-east-2b\), c \(us-east-2c\)/);
        assert.throws(() => chooseTemplate(deployed, "d"), /--zone d is not a zone of this stack/);
    });

    it("says how to enable drills on a stack deployed without them", () => {
        assert.throws(() => chooseTemplate({ name: "dev", targetGroupArn: "arn:tg", fleet: FLEET }), /no drill templates; enable them with `pulumi config set spot-availability:drill true --stack dev`/);
    });

    it("reads the stack's outputs through the Pulumi CLI", async () => {
        const asked: string[][] = [];
        const deployed = await readDeployedStack("dev", async (args) => {
            asked.push(args);
            return JSON.stringify({ targetGroupArn: "arn:tg", fleet: FLEET, drillTemplates: TEMPLATES, url: "http://x" });
        });
        assert.deepStrictEqual(asked, [["stack", "output", "--json", "--stack", "dev"]]);
        assert.deepStrictEqual(deployed, { name: "dev", targetGroupArn: "arn:tg", fleet: FLEET, drillTemplates: TEMPLATES });
    });

    it("names what is missing from a stack deployed by another version", () => {
        assert.throws(() => parseStackOutputs("dev", JSON.stringify({ targetGroupArn: "arn:tg" })), /stack dev has no targetGroupArn and fleet outputs.*pulumi up --stack dev/);
        assert.throws(() => parseStackOutputs("dev", "error: no stack named 'dev' found"), /is not JSON/);
    });

    it("finds instance ids in FIS's resolved targets, by id or by ARN", () => {
        assert.deepStrictEqual(instanceIdsOf([{ identifier: "arn:aws:ec2:us-east-2:123456789012:instance/i-0abc12345def67890" }, { instanceId: "i-0123456789abcdef0" }]), ["i-0abc12345def67890", "i-0123456789abcdef0"]);
    });
});

/** Samples as the drill takes them: instance → zone and target health. */
function sample(at: number, instances: Record<string, [string, string]>): Sample {
    return { at, instances: Object.fromEntries(Object.entries(instances).map(([id, [zone, health]]) => [id, { zone, health }])) };
}

const NOTICE = 1_000_000;
const s = (seconds: number) => NOTICE + seconds * 1000;

describe("the drill's timeline", () => {
    it("times an interruption warning: drained at once, the zone empty until its replacement is InService", () => {
        const samples = [
            sample(s(-5), { "i-a": ["us-east-2a", "healthy"], "i-b": ["us-east-2b", "healthy"], "i-c": ["us-east-2c", "healthy"] }),
            sample(s(5), { "i-a": ["us-east-2a", "healthy"], "i-b": ["us-east-2b", "draining"], "i-c": ["us-east-2c", "healthy"], "i-new": ["us-east-2b", "unregistered"] }),
            sample(s(30), { "i-a": ["us-east-2a", "healthy"], "i-b": ["us-east-2b", "draining"], "i-c": ["us-east-2c", "healthy"], "i-new": ["us-east-2b", "initial"] }),
            sample(s(70), { "i-a": ["us-east-2a", "healthy"], "i-b": ["us-east-2b", "draining"], "i-c": ["us-east-2c", "healthy"], "i-new": ["us-east-2b", "healthy"] }),
        ];
        const summary = summarizeDrill(samples, NOTICE, ["i-b"], FLEET);
        assert.deepStrictEqual(summary.replacements, [{ noticed: "i-b", zone: "us-east-2b", replacement: "i-new", replacementZone: "us-east-2b", seenAfterMs: 5000, inServiceAfterMs: 70_000 }]);
        assert.strictEqual(summary.complete, true);
        assert.strictEqual(summary.droppedBelowCount, true);
        assert.strictEqual(summary.belowCountMs, 65_000, "from the first sample that saw the zone short to the first that saw it whole");
        assert.deepStrictEqual(summary.lowestInService, { "us-east-2a": 1, "us-east-2b": 0, "us-east-2c": 1 });
    });

    it("sees no drop when the replacement was InService before the old instance left", () => {
        const samples = [
            sample(s(-5), { "i-a": ["us-east-2a", "healthy"], "i-b": ["us-east-2b", "healthy"], "i-c": ["us-east-2c", "healthy"] }),
            sample(s(60), { "i-a": ["us-east-2a", "healthy"], "i-b": ["us-east-2b", "healthy"], "i-c": ["us-east-2c", "healthy"], "i-new": ["us-east-2b", "healthy"] }),
            sample(s(65), { "i-a": ["us-east-2a", "healthy"], "i-b": ["us-east-2b", "draining"], "i-c": ["us-east-2c", "healthy"], "i-new": ["us-east-2b", "healthy"] }),
        ];
        const summary = summarizeDrill(samples, NOTICE, ["i-b"], FLEET);
        assert.strictEqual(summary.droppedBelowCount, false);
        assert.strictEqual(summary.belowCountMs, 0);
        assert.deepStrictEqual(summary.lowestInService, { "us-east-2a": 1, "us-east-2b": 1, "us-east-2c": 1 });
    });

    it("pairs a whole zone's instances with their replacements in the order they became InService", () => {
        const fleet = { ...FLEET, instancesPerZone: 2 };
        const samples = [
            sample(s(-5), { "i-a1": ["us-east-2a", "healthy"], "i-a2": ["us-east-2a", "healthy"], "i-b1": ["us-east-2b", "healthy"], "i-b2": ["us-east-2b", "healthy"] }),
            sample(s(50), { "i-b1": ["us-east-2b", "healthy"], "i-b2": ["us-east-2b", "healthy"], "i-n1": ["us-east-2a", "initial"], "i-n2": ["us-east-2a", "healthy"] }),
            sample(s(80), { "i-b1": ["us-east-2b", "healthy"], "i-b2": ["us-east-2b", "healthy"], "i-n1": ["us-east-2a", "healthy"], "i-n2": ["us-east-2a", "healthy"] }),
        ];
        const summary = summarizeDrill(samples, NOTICE, ["i-a2", "i-a1"], { ...fleet, zones: ["us-east-2a", "us-east-2b"] });
        assert.deepStrictEqual(summary.replacements.map((r) => [r.noticed, r.replacement, r.inServiceAfterMs]), [["i-a1", "i-n2", 50_000], ["i-a2", "i-n1", 80_000]]);
        assert.deepStrictEqual(summary.lowestInService, { "us-east-2a": 1, "us-east-2b": 2 });
    });

    it("follows a replacement the handler had to put in another zone", () => {
        const samples = [
            sample(s(-5), { "i-a": ["us-east-2a", "healthy"], "i-b": ["us-east-2b", "healthy"], "i-c": ["us-east-2c", "healthy"] }),
            sample(s(60), { "i-a": ["us-east-2a", "healthy"], "i-c": ["us-east-2c", "healthy"], "i-new": ["us-east-2c", "healthy"] }),
        ];
        const summary = summarizeDrill(samples, NOTICE, ["i-b"], FLEET);
        assert.deepStrictEqual(summary.replacements[0], { noticed: "i-b", zone: "us-east-2b", replacement: "i-new", replacementZone: "us-east-2c", seenAfterMs: 60_000, inServiceAfterMs: 60_000 });
        assert.match(formatDrillReport(summary, FLEET)[1], /i-b → i-new \(us-east-2c, not us-east-2b\)/);
    });

    it("is incomplete while a replacement is not InService, and says so", () => {
        const samples = [
            sample(s(-5), { "i-a": ["us-east-2a", "healthy"], "i-b": ["us-east-2b", "healthy"], "i-c": ["us-east-2c", "healthy"] }),
            sample(s(10), { "i-a": ["us-east-2a", "healthy"], "i-b": ["us-east-2b", "draining"], "i-c": ["us-east-2c", "healthy"] }),
        ];
        const summary = summarizeDrill(samples, NOTICE, ["i-b"], FLEET);
        assert.strictEqual(summary.complete, false);
        assert.deepStrictEqual(formatDrillReport(summary, FLEET).slice(1), [
            "i-b (us-east-2b): no replacement seen",
            "serving capacity dropped below 1 InService per zone, for about 0.0 s; lowest InService: us-east-2a 1, us-east-2b 0, us-east-2c 1",
        ]);
    });

    it("reports the time to InService against the 90 s goal and the interruption at 120 s", () => {
        const samples = [
            sample(s(-5), { "i-b": ["us-east-2b", "healthy"] }),
            sample(s(95), { "i-new": ["us-east-2b", "healthy"] }),
        ];
        const lines = formatDrillReport(summarizeDrill(samples, NOTICE, ["i-b"], { ...FLEET, zones: ["us-east-2b"] }), { ...FLEET, zones: ["us-east-2b"] });
        assert.strictEqual(lines[0], `notice sent at ${new Date(NOTICE).toISOString()} to i-b (us-east-2b)`);
        assert.strictEqual(lines[1], "i-b → i-new (us-east-2b): seen +95.0 s, InService +95.0 s (outside the 90 s goal; before the interruption at +120 s)");
    });
});

/**
 * FIS as the drill sees it: StartExperiment "sends" the notice by handing the warning to the real
 * handler (as EventBridge would), GetExperiment reports the action's start, and
 * ListExperimentResolvedTargets names the instance.
 */
class FisStub {
    readonly calls: { command: string; input: any }[] = [];
    delivered: Promise<void> | undefined;
    status = "running";
    reason: string | undefined;
    private noticeAt: Date | undefined;

    constructor(private readonly world: World, private readonly target: string | undefined) {}

    async send(command: { input: any }): Promise<unknown> {
        this.calls.push({ command: command.constructor.name, input: command.input });
        if (command instanceof StartExperimentCommand) {
            if (this.target !== undefined) {
                this.noticeAt = new Date();
                // The warning, then the running state-change EventBridge sends once the replacement runs.
                this.delivered = this.world.handle(interruptionWarning(this.target)).then(async () => {
                    const replacement = (await this.world.instances()).find((i) => tag(i, TAG.replaces) === this.target);
                    await this.world.handle(stateChange(replacement?.InstanceId as string, "running"));
                });
            }
            return { experiment: { id: "EXP-drill", state: { status: "initiating" } } };
        }
        if (command instanceof GetExperimentCommand) {
            return { experiment: { id: "EXP-drill", state: { status: this.status, reason: this.reason }, actions: this.noticeAt === undefined ? {} : { interrupt: { startTime: this.noticeAt } } } };
        }
        if (command instanceof ListExperimentResolvedTargetsCommand) {
            return { resolvedTargets: [{ resourceType: "aws:ec2:spot-instance", targetName: "spot-instances", targetInformation: { identifier: `arn:aws:ec2:${REGION}:123456789012:instance/${this.target}` } }] };
        }
        throw new Error(`the drill sent ${command.constructor.name}, which it has no business sending`);
    }
}

describe("a drill against a stubbed FIS, on the emulated stack", () => {
    let world: World;
    let deployed: DeployedStack;
    const lines: string[] = [];
    const follow = { intervalMs: 20, timeoutMs: 20_000, print: (line: string) => lines.push(line) };
    beforeEach(async () => {
        ({ world } = await freshWorld());
        deployed = { name: "test", targetGroupArn: world.settings.targetGroupArn, fleet: FLEET, drillTemplates: TEMPLATES };
        lines.length = 0;
    });

    it("starts the experiment, sees the notice, and times the replacement to InService in the same zone", async () => {
        const fis = new FisStub(world, world.declared["Prometheus-B"]);
        const result = await runDrill({ fis: fis as unknown as FisClient, ec2: world.ec2, elb: world.elb }, deployed, "EXT-b", follow);
        await fis.delivered;

        const start = fis.calls.find((call) => call.command === "StartExperimentCommand");
        assert.strictEqual(start?.input.experimentTemplateId, "EXT-b");
        assert.match(start?.input.clientToken, /^[0-9a-f-]{36}$/);
        assert.ok(fis.calls.some((call) => call.command === "ListExperimentResolvedTargetsCommand" && call.input.experimentId === "EXP-drill" && call.input.targetName === "spot-instances"));
        assert.strictEqual(result.timedOut, false);
        const [replacement] = result.summary!.replacements;
        assert.strictEqual(replacement.noticed, world.declared["Prometheus-B"]);
        assert.strictEqual(replacement.replacementZone, "us-east-2b");
        assert.ok(replacement.inServiceAfterMs !== undefined && replacement.inServiceAfterMs >= 0);
        const launched = (await world.instances()).find((i) => i.InstanceId === replacement.replacement);
        assert.ok(launched, "the replacement the drill reports is the instance the handler launched");
        assert.deepStrictEqual(result.summary!.lowestInService["us-east-2a"], 1);
        assert.ok(lines[0].startsWith("started FIS experiment EXP-drill from template EXT-b"));
    });

    it("refuses to start on a fleet already short, and sends FIS nothing", async () => {
        await world.ec2.send(new TerminateInstancesCommand({ InstanceIds: [world.declared["Prometheus-C"]] }));
        const fis = new FisStub(world, world.declared["Prometheus-B"]);
        await assert.rejects(
            runDrill({ fis: fis as unknown as FisClient, ec2: world.ec2, elb: world.elb }, deployed, "EXT-b", follow),
            /stack test is not at full strength \(us-east-2c: 0 of 1 InService\); .* none was started/,
        );
        assert.deepStrictEqual(fis.calls, []);
    });

    it("stops with FIS's reason when the experiment fails", async () => {
        const fis = new FisStub(world, undefined);
        fis.status = "failed";
        fis.reason = "Target resolution returned empty set";
        await assert.rejects(
            runDrill({ fis: fis as unknown as FisClient, ec2: world.ec2, elb: world.elb }, deployed, "EXT-a", follow),
            /FIS experiment EXP-drill failed: Target resolution returned empty set/,
        );
    });

    it("gives up at the timeout when no notice arrives", async () => {
        const fis = new FisStub(world, undefined);
        const result = await runDrill({ fis: fis as unknown as FisClient, ec2: world.ec2, elb: world.elb }, deployed, "EXT-a", { ...follow, timeoutMs: 200 });
        assert.deepStrictEqual([result.timedOut, result.summary], [true, undefined]);
    });
});

describe("the drill templates, with drill: true", () => {
    const TEMPLATE = "aws:fis/experimentTemplate:ExperimentTemplate";
    let run: ProgramRun;
    before(async () => {
        run = await runProgram({ config: { "spot-availability:drill": "true" } });
    });

    it("are absent unless asked for", async () => {
        const plain = await runProgram();
        assert.deepStrictEqual([plain.ofType(TEMPLATE).length, "drillTemplates" in plain.outputs], [0, false]);
    });

    it("interrupt one running spot instance of this stack, or every one in a zone, chosen by the stack tag", () => {
        const templates = run.ofType(TEMPLATE);
        assert.deepStrictEqual(templates.map((t) => t.inputs.tags[DRILL_TAG]).sort(), ["instance", ...REGION_ZONES]);
        for (const template of templates) {
            const scope = template.inputs.tags[DRILL_TAG];
            const [target] = template.inputs.targets;
            assert.strictEqual(target.resourceType, "aws:ec2:spot-instance");
            assert.deepStrictEqual(target.resourceTags, [{ key: "spot-availability:stack", value: "spot-availability/dev" }]);
            assert.deepStrictEqual(target.filters, [
                { path: "State.Name", values: ["running"] },
                ...(scope === "instance" ? [] : [{ path: "Placement.AvailabilityZone", values: [scope] }]),
            ]);
            assert.strictEqual(target.selectionMode, scope === "instance" ? "COUNT(1)" : "ALL");
            assert.deepStrictEqual(template.inputs.actions, [{
                name: "interrupt",
                actionId: "aws:ec2:send-spot-instance-interruptions",
                parameters: [{ key: "durationBeforeInterruption", value: "PT2M" }],
                target: { key: "SpotInstances", value: target.name },
            }]);
            assert.deepStrictEqual(template.inputs.stopConditions, [{ source: "none" }]);
        }
        assert.deepStrictEqual(run.outputs.drillTemplates, Object.fromEntries(templates.map((t) => [t.inputs.tags[DRILL_TAG], t.id])));
    });

    it("run as a role only FIS can assume", () => {
        const template = run.ofType(TEMPLATE)[0];
        const role = run.ofType("aws:iam/role:Role").find((r) => r.state.arn === template.inputs.roleArn);
        assert.ok(role, "the templates' role is declared");
        assert.deepStrictEqual(role.inputs.assumeRolePolicy.Statement.map((s: any) => s.Principal), [{ Service: "fis.amazonaws.com" }]);
    });

    const stackInstance = "arn:aws:ec2:us-east-2:123456789012:instance/i-0123456789abcdef0";
    const cases: [string, AuthorizationRequest, string][] = [
        ["interrupting this stack's instance", { action: "ec2:SendSpotInstanceInterruptions", resource: stackInstance, context: { "aws:ResourceTag/spot-availability:stack": "spot-availability/dev" } }, "Allowed"],
        ["interrupting another stack's instance", { action: "ec2:SendSpotInstanceInterruptions", resource: stackInstance, context: { "aws:ResourceTag/spot-availability:stack": "spot-availability/prod" } }, "ImplicitlyDenied"],
        ["interrupting an untagged instance", { action: "ec2:SendSpotInstanceInterruptions", resource: stackInstance, context: {} }, "ImplicitlyDenied"],
        ["finding the targets", { action: "ec2:DescribeInstances", resource: "*", context: {} }, "Allowed"],
        ["terminating an instance", { action: "ec2:TerminateInstances", resource: stackInstance, context: { "aws:ResourceTag/spot-availability:stack": "spot-availability/dev" } }, "ImplicitlyDenied"],
    ];
    for (const [what, request, expected] of cases) {
        it(`policy: ${what} is ${expected}`, async () => {
            const policy = JSON.parse(run.one("aws:iam/rolePolicy:RolePolicy", "-drill").inputs.policy);
            assert.strictEqual(await decide(policy, "arn:aws:iam::123456789012:role/spot-drill", request, "123456789012"), expected);
        });
    }
});
