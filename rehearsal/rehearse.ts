import { EC2Client } from "@aws-sdk/client-ec2";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { SQSClient } from "@aws-sdk/client-sqs";
import { describeStackInstances } from "../handler/aws";
import { DETAIL_TYPE } from "../handler/events";
import { ObservedInstance } from "../handler/model";
import { Activity, advance, seededRandom, VirtualClock } from "./clock";
import { RecordedCall } from "./awsProxy";
import { AWS_INTERNAL_ACCESS_KEY, ClockProxy } from "./clockProxy";
import { DeclaredRule, declaredEventPath, DeliveredEvent, EventPath, EventRouter, FunctionModel, AsyncDelivery, QueueMapping } from "./delivery";
import { CREDENTIALS, motoConnection, useEmulator } from "./emulator";
import { computeFigures, Figures } from "./figures";
import { Ec2Signal, ModelledFleet } from "./fleet";
import { declaredFunction, functionCode, inMoto, requireArchive } from "./materialize";
import { DEFAULT_MODEL, logNormal, Model } from "./model";
import { AutoScalingGroup } from "./policies/asg";
import { SEED_PATH, seedHandler } from "./policies/seed";
import { ACCOUNT_ID, ProgramRun, runProgram, subnetsByZone } from "./program";
import { ModelledQueue } from "./queue";
import { createReleaseVersion, DeployOutcome, invokeDeploy, releasedArchive, releaseRequest } from "./release";
import { Scenario, ScenarioName, SCENARIOS } from "./scenarios";
import { PolicyName, Stage, StackFacts } from "./stage";
import type { FleetSummary } from "../infra/fleetSummary";

/**
 * One scenario under one policy on AWS's modelled clock: the dev stack materialised in moto, the
 * policy wired in (the project's own archive through the event path the program declares, or a
 * baseline), the scenario's notices and outages scripted on the clock, and the clock advanced
 * from entry to entry until the scenario's horizon. Returns the figures and the timeline.
 */

export interface TimelineEntry {
    at: number;
    text: string;
}

/** Serving targets of one zone from one moment on. */
export interface ServingPoint {
    at: number;
    zone: string;
    serving: number;
}

export interface Rehearsal {
    scenario: Scenario;
    policy: PolicyName;
    model: Model;
    figures: Figures;
    timeline: TimelineEntry[];
    serving: ServingPoint[];
    /** When the first warning came (the release started, in a release without warnings). */
    firstWarningAt: number;
    /** The release scenario under the project: how the deploy's invocation ended. */
    deploy?: DeployOutcome;
    /** The modelled fleet and target group as the scenario left them. */
    fleet: ModelledFleet;
    /** Every call made through the proxy, the policy's and AWS's own. */
    calls: RecordedCall[];
}

/** Modelled seconds after the horizon that invocations under way get to finish (the function's timeout is less). */
const DRAIN_LIMIT_S = 600;

/** What `Date.now()` answers at modelled second 0: fixed, so event times replay identically. */
const EPOCH_MS = Date.parse("2026-01-05T09:00:00Z");

/** The program's config for a scenario: the dev stack with the scenario's region, zones and count. */
function scenarioConfig(scenario: Scenario): Record<string, unknown> {
    return { "aws:region": scenario.region, "spot-availability:zones": scenario.zones, "spot-availability:instancesPerZone": scenario.instancesPerZone };
}

/** The ALB's behaviour comes from the target group the program declares. */
function declaredTargetGroup(run: ProgramRun): Partial<Model> {
    const group = run.one("aws:lb/targetGroup:TargetGroup").inputs;
    return {
        healthCheckIntervalS: group.healthCheck.interval,
        healthyThreshold: group.healthCheck.healthyThreshold,
        unhealthyThreshold: group.healthCheck.unhealthyThreshold,
        deregistrationDelayS: group.deregistrationDelay,
    };
}

function stackFacts(run: ProgramRun): StackFacts {
    return {
        ...(run.outputs.fleet as FleetSummary),
        subnetsByZone: subnetsByZone(run),
        launchTemplateId: run.one("aws:ec2/launchTemplate:LaunchTemplate").id,
        targetGroupArn: run.outputs.targetGroupArn,
    };
}

/** An id shaped like EventBridge's (a UUID), from a counter: the same rehearsal makes the same ids. */
function eventId(sequence: number): string {
    return `00000000-0000-4000-8000-${sequence.toString(16).padStart(12, "0")}`;
}

function ec2Event(id: string, signal: Ec2Signal, region: string, zone: string, time: string): DeliveredEvent {
    const detailType = { "interruption-warning": DETAIL_TYPE.interruptionWarning, "rebalance-recommendation": DETAIL_TYPE.rebalanceRecommendation, "state-change": DETAIL_TYPE.stateChange }[signal.kind];
    const detail = signal.kind === "state-change"
        ? { "instance-id": signal.instanceId, state: signal.state }
        : signal.kind === "interruption-warning" ? { "instance-id": signal.instanceId, "instance-action": "terminate" } : { "instance-id": signal.instanceId };
    // Spot notices name the instance by zone, state changes by region (as AWS's own examples show).
    const resource = signal.kind === "state-change" ? `arn:aws:ec2:${region}:${ACCOUNT_ID}:instance/${signal.instanceId}` : `arn:aws:ec2:${zone}:instance/${signal.instanceId}`;
    return { version: "0", id, "detail-type": detailType, source: "aws.ec2", account: ACCOUNT_ID, time, region, resources: [resource], detail };
}

function describeSignal(signal: Ec2Signal): string {
    return signal.kind === "state-change" ? `${signal.instanceId} ${signal.state}` : `${signal.kind.replace("-", " ")} for ${signal.instanceId}`;
}

/** A line of the project's JSON log as a timeline entry. */
function describeLogLine(line: string): string {
    try {
        const entry = JSON.parse(line);
        const subject = (entry.action === "launch" ? entry.launched ?? `for ${entry.replaces ?? "a place"}` : entry.instance) ?? "";
        const where = [entry.zone, entry.instanceType, entry.market].filter(Boolean).join(" ");
        return `project: ${entry.action} ${subject}${where ? ` (${where})` : ""}: ${entry.result}${entry.reason ? `, ${entry.reason}` : ""}`;
    } catch {
        return `project: ${line}`;
    }
}

/** `scenario`: one of the named scenarios, or a variant of one (a smaller fleet, for a quick test). */
export async function rehearse(scenarioOrName: ScenarioName | Scenario, policy: PolicyName, overrides: Partial<Model> = {}): Promise<Rehearsal> {
    const scenario = typeof scenarioOrName === "string" ? SCENARIOS[scenarioOrName] : scenarioOrName;
    const emulator = await useEmulator();
    await emulator.reset();
    const run = await runProgram({ config: scenarioConfig(scenario), materialize: inMoto(emulator, scenario.region).materialize });
    const model: Model = { ...DEFAULT_MODEL, ...declaredTargetGroup(run), ...overrides };
    const clock = new VirtualClock(EPOCH_MS);
    const activity = new Activity();
    const random = seededRandom(model.seed);
    const fleet = new ModelledFleet(clock, model);
    const proxy = new ClockProxy(emulator.motoEndpoint, clock, fleet, activity);
    const endpoint = await proxy.listen();
    const stack = stackFacts(run);
    proxy.subnetZones = Object.fromEntries(Object.entries(stack.subnetsByZone).map(([zone, id]) => [id, zone]));
    proxy.targetGroupArn = stack.targetGroupArn;

    // The fleet `pulumi up` left: running and serving since before the scenario, in declared order per zone.
    const direct = motoConnection(emulator, scenario.region);
    const described = new Map((await describeStackInstances(new EC2Client(direct), stack.stack)).map((instance) => [instance.id, instance]));
    const byZone: Record<string, string[]> = Object.fromEntries(stack.zones.map((zone) => [zone, []]));
    for (const id of Object.values(run.outputs.instances as Record<string, string>)) {
        const { zone, instanceType, market } = described.get(id) as ObservedInstance;
        fleet.adopt(id, { zone, instanceType, market });
        byZone[zone].push(id);
    }
    // The release's template version exists before the scenario begins, as `pulumi up` made it; the policy rolls it out.
    const release = scenario.release === undefined ? undefined : { atS: scenario.release.atS, version: await createReleaseVersion(new EC2Client(direct), stack.launchTemplateId) };
    let deploy: DeployOutcome | undefined;

    const timeline: TimelineEntry[] = [];
    const log = (text: string) => timeline.push({ at: clock.now, text });
    const failures: unknown[] = [];
    const spawn = (work: Promise<unknown>) => void work.catch((error) => failures.push(error));
    let stopped = false;
    const instanceOf = (notice: { zone: string; index: number }) => byZone[`${scenario.region}${notice.zone}`][notice.index];
    const lost = new Set((scenario.lost ?? []).map(instanceOf));
    const router = new EventRouter(new EventBridgeClient(direct), new SQSClient(direct), activity);
    const eventBridgeDelay = () => logNormal(model.eventBridgeDelayS, model.eventBridgeDelaySigma, random);
    let events = 0;
    const nextEventId = () => eventId(++events);

    const deliver = async (path: EventPath, handler: (payload: unknown) => Promise<unknown>): Promise<FunctionModel> => {
        const fn = new FunctionModel(clock, model, activity, handler, { timeoutS: path.timeoutS, concurrency: path.reservedConcurrency ?? model.accountConcurrency });
        const asynchronous = new AsyncDelivery(clock, model, fn);
        const queues = new Map(path.queues.map((config) => [config.arn, new ModelledQueue(clock, config)]));
        for (const queue of queues.values()) {
            proxy.queues.set(queue.config.url, queue);
        }
        for (const mapping of path.mappings) {
            const queue = queues.get(mapping.queueArn);
            if (queue === undefined) {
                throw new Error(`the event source mapping reads ${mapping.queueArn}, which the program does not declare`);
            }
            new QueueMapping(clock, model, queue, fn, mapping, scenario.region);
        }
        const send = (rule: DeclaredRule, event: DeliveredEvent) => {
            for (let copy = 0; copy < (scenario.everyEventTwice ? 2 : 1); copy++) {
                clock.after(eventBridgeDelay(), () => {
                    for (const target of rule.targets) {
                        const queue = queues.get(target);
                        if (target === path.functionArn) {
                            asynchronous.enqueue(event);
                        } else if (queue !== undefined) {
                            queue.send(JSON.stringify(event));
                        } else {
                            throw new Error(`rule ${rule.name} targets ${target}, which the rehearsal cannot deliver to`);
                        }
                    }
                });
            }
        };
        await router.install(path.rules);
        fleet.onSignal((signal) => {
            if (signal.kind !== "state-change" && lost.has(signal.instanceId)) {
                log(`EventBridge loses the ${signal.kind} for ${signal.instanceId}`);
                return;
            }
            const instance = fleet.instances.get(signal.instanceId);
            const event = ec2Event(nextEventId(), signal, scenario.region, instance?.zone ?? "", clock.dateAt(clock.now).toISOString());
            if (!stopped) {
                spawn(router.matching(event).then((names) => path.rules.filter((rule) => names.includes(rule.name)).forEach((rule) => send(rule, event))));
            }
        });
        for (const rule of path.rules.filter((r) => r.everyS !== undefined)) {
            const every = rule.everyS as number;
            const fire = () => {
                if (stopped) {
                    return;
                }
                send(rule, { version: "0", id: nextEventId(), "detail-type": DETAIL_TYPE.schedule, source: "aws.events", account: ACCOUNT_ID, time: clock.dateAt(clock.now).toISOString(), region: scenario.region, resources: [rule.arn], detail: {} });
                clock.after(every, fire);
            };
            clock.at(random() * every, fire);
        }
        return fn;
    };

    const stage: Stage = {
        clock,
        model,
        fleet,
        endpoint,
        stack,
        log,
        spawn,
        deliver,
        get stopped() {
            return stopped;
        },
    };
    fleet.onSignal((signal) => log(describeSignal(signal)));
    const lambdaEnvironment = { AWS_REGION: scenario.region, AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey };
    const savedEnvironment = { ...process.env };
    Object.assign(process.env, lambdaEnvironment);
    const { log: consoleLog } = console;
    const { write } = process.stdout;
    let functions: FunctionModel[] = [];
    try {
        switch (policy) {
            case "project": {
                let eventPath = await requireArchive(functionCode(run));
                functions = [await deliver(declaredEventPath(run), (payload) => eventPath(payload))];
                if (release !== undefined) {
                    const [releasedEventPath, deployHandler] = await Promise.all([releasedArchive(functionCode(run), release.version), releasedArchive(functionCode(run, "deploy"), release.version)]);
                    const invoke = async () => {
                        eventPath = releasedEventPath;
                        log(`pulumi up updates both functions and invokes the deploy: launch template version ${release.version}`);
                        deploy = await invokeDeploy(clock, deployHandler, releaseRequest(run, release.version), declaredFunction(run, "deploy").inputs.timeout);
                        log(`the deploy ${deploy.ok ? "answered" : "failed"}: ${deploy.detail}`);
                    };
                    clock.at(release.atS, () => spawn(invoke()));
                }
                break;
            }
            case "seed":
                functions = [await deliver(SEED_PATH, seedHandler(stage))];
                break;
            case "asg":
            case "asg-cr": {
                const group = new AutoScalingGroup(stage, policy === "asg-cr");
                group.start();
                if (release !== undefined) {
                    clock.at(release.atS, () => group.startInstanceRefresh(release.version));
                }
                break;
            }
        }
        for (const notice of scenario.notices) {
            const id = instanceOf(notice);
            if (notice.rebalanceAt !== undefined) {
                clock.at(notice.rebalanceAt, () => fleet.recommendRebalance(id));
            }
            clock.at(notice.warningAt, () => fleet.warn(id));
        }
        const firstNoticeAt = Math.min(...scenario.notices.map((n) => n.rebalanceAt ?? n.warningAt));
        if (scenario.spotOutage !== undefined) {
            fleet.outages.push({ zone: `${scenario.region}${scenario.spotOutage.zone}`, market: "spot", from: firstNoticeAt, to: firstNoticeAt + scenario.spotOutage.forS });
        }

        // The function's log lines join the timeline; its metric lines are not the rehearsal's business.
        console.log = (line: string) => timeline.push({ at: clock.now, text: describeLogLine(String(line)) });
        process.stdout.write = (() => true) as unknown as typeof process.stdout.write;
        const uninstall = clock.install(model.seed);
        try {
            const failed = () => failures[0];
            await advance(clock, activity, { until: scenario.horizonS, failed });
            // The scenario is over: nothing new starts, and what is under way finishes on the clock.
            stopped = true;
            functions.forEach((fn) => (fn.closed = true));
            await advance(clock, activity, { until: scenario.horizonS + DRAIN_LIMIT_S, failed, while: () => proxy.held > 0 || functions.some((fn) => fn.active > 0) });
        } finally {
            uninstall();
        }
    } finally {
        console.log = consoleLog;
        process.stdout.write = write;
        process.env = savedEnvironment;
        await proxy.close();
    }
    clock.now = scenario.horizonS;

    const figures = computeFigures({
        fleet,
        zones: stack.zones,
        instancesPerZone: scenario.instancesPerZone,
        horizonS: scenario.horizonS,
        invocations: functions.reduce((sum, fn) => sum + fn.invocations.length, 0),
        awsCalls: proxy.calls.filter((call) => call.accessKeyId !== AWS_INTERNAL_ACCESS_KEY).length,
        release,
    });
    for (const invocation of functions.flatMap((fn) => fn.invocations)) {
        if (invocation.cold) {
            timeline.push({ at: invocation.startedAt, text: "Lambda starts a new execution environment (cold start)" });
        }
        if (invocation.ok === false) {
            timeline.push({ at: invocation.endedAt as number, text: `the invocation failed: ${invocation.error}` });
        }
    }
    for (const instance of fleet.instances.values()) {
        const servingAt = instance.initial ? undefined : fleet.firstHealthyAt(instance.id);
        if (servingAt !== undefined && servingAt <= scenario.horizonS) {
            timeline.push({ at: servingAt, text: `${instance.id} healthy in ${instance.zone}: serving` });
        }
    }
    timeline.sort((a, b) => a.at - b.at);
    const points = [0, ...fleet.changePoints().filter((t) => t > 0 && t < scenario.horizonS), scenario.horizonS];
    const serving = points.flatMap((at) => stack.zones.map((zone) => ({ at, zone, serving: fleet.servingIn(zone, at) })));
    const firstWarningAt = Math.min(...scenario.notices.map((n) => n.warningAt), ...(scenario.notices.length === 0 && release !== undefined ? [release.atS] : []));
    return { scenario, policy, model, figures, timeline, serving, firstWarningAt, deploy, fleet, calls: proxy.calls };
}

/** Every scenario under every policy, one after another on the one emulator; `done` hears of each scenario as it ends. */
export async function rehearseAll(
    scenarios: readonly ScenarioName[],
    policies: readonly PolicyName[],
    done: (scenario: ScenarioName, runs: Rehearsal[]) => void | Promise<void> = () => undefined,
): Promise<Map<ScenarioName, Rehearsal[]>> {
    const all = new Map<ScenarioName, Rehearsal[]>();
    for (const scenario of scenarios) {
        const runs: Rehearsal[] = [];
        for (const policy of policies.filter((p) => SCENARIOS[scenario].policies?.includes(p) ?? true)) {
            runs.push(await rehearse(scenario, policy));
        }
        all.set(scenario, runs);
        await done(scenario, runs);
    }
    return all;
}
