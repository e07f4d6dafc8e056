import { setTimeout as sleep } from "timers/promises";
import { AwsClients, createClients, IAM_PROPAGATION_RETRY, StackFleet, WaitLimit } from "./aws";
import { withinCeiling } from "./ceiling";
import { checkDesired, DeployAnswer, deployError, DeployRequest, GuardRequest, parseDeployRequest } from "./deployRequest";
import { describeError, execute } from "./execute";
import { metricLine } from "./metrics";
import { isLive, Observation, ObservedInstance, Outcome, PlannedAction } from "./model";
import { placesByZone } from "./places";
import { reconcile, standalone } from "./reconcile";
import { Report, reportOutcomes, reportRefused } from "./report";
import { HandlerSettings } from "./settings";
import { fleetMemberName, instanceNameTag } from "./tags";

/**
 * The deploy path: what the program's `aws.lambda.Invocation` (lifecycle scope CRUD) calls at
 * `pulumi up` and `pulumi destroy`. The fleet has one owner, as an Auto Scaling group owns its
 * instances: on create and update the deploy reconciles the stack to its settings with the event
 * path's own planner and launcher (same pools, same fallback), in rounds, waiting between them
 * until what it launched runs and what it registered serves, and answers with the fleet. The
 * teardown guard's delete (see `TeardownGuard`) terminates every instance of the stack, and
 * keeps sweeping until nothing of it can still launch. Unlike the event path it may wait: nothing
 * races a two-minute clock here.
 */

/**
 * Rounds at most: a create takes two (launch, register), a release three per batch (launch,
 * register, retire); the deploy's time limit ends it before this, which hands the rest to the schedule.
 */
const MAX_ROUNDS = 40;

/** Between the teardown's sweeps while it waits out the event function's timeout. */
const SWEEP_INTERVAL_SECONDS = 5;

/** The longest any one wait may take, and what is kept back from Lambda's remaining time. */
const MAX_WAIT_SECONDS = 300;
const WAIT_MARGIN_SECONDS = 30;

/** Below this much time left, a release in progress is left to the schedule's reconcile, which finishes it at the same pace. */
const HANDOFF_SECONDS = 2 * WAIT_MARGIN_SECONDS;

/** The instances holding each zone's places, named as the `instances` output names them: oldest first. */
export function fleetNames(observation: Observation, settings: HandlerSettings): Record<string, string> {
    const names: Record<string, string> = {};
    for (const [zone, instances] of Object.entries(placesByZone(observation, settings, new Set()))) {
        const nameTag = instanceNameTag(settings.instanceName, zone, settings.region);
        [...instances]
            .sort((a, b) => a.launchTime - b.launchTime || a.id.localeCompare(b.id))
            .forEach((instance, index) => (names[fleetMemberName(nameTag, index + 1)] = instance.id));
    }
    return names;
}

/**
 * What keeps the fleet from its settings: each zone with fewer running instances in the target
 * group (not draining) than its count. An old instance a release has not retired yet still serves
 * and counts.
 */
export function shortfall(observation: Observation, settings: HandlerSettings): string[] {
    return Object.keys(settings.subnetsByZone).flatMap((zone) => {
        const serving = observation.instances.filter((i) => i.zone === zone && i.state === "running" && ![undefined, "draining"].includes(observation.targets[i.id]));
        return serving.length >= settings.instancesPerZone ? [] : [`${zone} holds ${serving.length} of ${settings.instancesPerZone} registered`];
    });
}

/** Each distinct error once, with the first action it failed and how many more. */
export function summarize(outcomes: readonly Outcome[]): string {
    const bySubject = new Map<string, string[]>();
    for (const outcome of outcomes) {
        const { action } = outcome;
        const subject = `${action.kind} ${"instanceId" in action ? action.instanceId : action.kind === "launch" ? action.key : ""}`.trim();
        const error = outcome.status === "failed" ? outcome.error : outcome.status === "skipped" ? `${outcome.why} (${outcome.tried.join("; ")})` : "done";
        bySubject.set(error, [...(bySubject.get(error) ?? []), subject]);
    }
    return [...bySubject].map(([error, subjects]) => `${subjects[0]}${subjects.length > 1 ? ` (and ${subjects.length - 1} more)` : ""}: ${error}`).join("; ");
}

/** Instances that should run another version than `target`: what a release still has to replace. */
export function outdated(observation: Observation, settings: HandlerSettings, target: number): ObservedInstance[] {
    return Object.values(placesByZone(observation, settings, new Set())).flat().filter((i) => i.version !== target);
}

/** Target states of an instance joining the group: registered, its health checks not (yet) passing. */
const JOINING_STATES: readonly (string | undefined)[] = ["initial", "unhealthy"];

/** Instances of the version being released that do not serve yet: starting, or in their first health checks. */
export function joiningRelease(observation: Observation, target: number): ObservedInstance[] {
    return observation.instances.filter((i) => i.version === target && (i.state === "pending" || (i.state === "running" && JOINING_STATES.includes(observation.targets[i.id]))));
}

/**
 * Instances of the version being released that did not pass their health checks in time: the
 * release stops. Not one that is draining or deregistered (an interruption's doing, not the
 * version's).
 */
export function stalledRelease(observation: Observation, settings: HandlerSettings, target: number, now: number): ObservedInstance[] {
    return joiningRelease(observation, target).filter((i) => i.state === "running" && now - i.launchTime > settings.release.healthTimeoutSeconds * 1000);
}

/** What changes between rounds: a round that changed none of it made no progress. */
function fingerprint(observation: Observation): string {
    return JSON.stringify([
        observation.releasedVersion,
        observation.instances.map((i) => `${i.id}:${i.state}`).sort(),
        Object.entries(observation.targets).map(([id, state]) => `${id}:${state}`).sort(),
    ]);
}

export interface DeployDependencies {
    clients?: AwsClients;
    log?: (line: string) => void;
    metrics?: (line: string) => void;
}

/** What Lambda passes as the second argument: the time left before the function's timeout. */
export interface DeployContext {
    getRemainingTimeInMillis(): number;
}

/** Builds the function the invocations call; clients are built once per container. */
export function createDeployHandler(settings: HandlerSettings, dependencies: DeployDependencies = {}) {
    const write = dependencies.log ?? ((line: string) => console.log(line));
    const writeMetric = dependencies.metrics ?? ((line: string) => process.stdout.write(`${line}\n`));
    const propagation = { ...IAM_PROPAGATION_RETRY, onRetry: (retry: object) => write(JSON.stringify({ path: "deploy", action: "retry", reason: "IAM has not propagated yet", ...retry })) };
    const fleet = new StackFleet(dependencies.clients ?? createClients(settings.region, { propagation }), settings, "pulumi");

    return async (payload: unknown, context?: DeployContext): Promise<DeployAnswer> => {
        const started = Date.now();
        const report: Report = {
            log: (fields) => write(JSON.stringify({ path: "deploy", ...fields, ms: Date.now() - started })),
            metric: (values, dimensions, properties) => writeMetric(metricLine(settings.stack, values, dimensions, properties)),
        };
        const secondsLeft = () => Math.floor((context?.getRemainingTimeInMillis() ?? Infinity) / 1000);
        const limit = (cap = MAX_WAIT_SECONDS): WaitLimit => ({ maxWaitSeconds: Math.max(1, Math.min(cap, secondsLeft() - WAIT_MARGIN_SECONDS)) });
        const clock: DeployClock = { fleet, settings, report, secondsLeft, limit };

        const request = parseDeployRequest(payload);
        if ("teardownGuard" in request) {
            return guard(clock, request);
        }
        report.log({ action: request.action, desired: request.desired, result: "started" });
        if (request.action === "delete") {
            // A replaced deploy invocation is deleted too: the fleet stays, and its create converges it.
            report.log({ action: "delete", result: "unchanged", reason: "the teardown guard terminates the fleet at pulumi destroy" });
            return { unchanged: "the teardown guard terminates the fleet" };
        }
        checkDesired(request.desired, settings);
        const run: DeployRun = { ...clock, request };
        const previousGroup = request.previous?.targetGroupArn;
        const keep = previousGroup === undefined || previousGroup === request.desired.targetGroupArn ? new Set<string>() : await servedBy(run, previousGroup);
        return converge(run, request.desired.launchTemplateVersion, keep);
    };
}

/** What every step of an invocation reads: the fleet, the report and Lambda's clock. */
interface DeployClock {
    fleet: StackFleet;
    settings: HandlerSettings;
    report: Report;
    /** Seconds before Lambda ends the invocation. */
    secondsLeft(): number;
    /** How long one wait may take: at most `cap`, and never into the margin kept before the timeout. */
    limit(cap?: number): WaitLimit;
}

/** One invocation of the deploy proper. */
interface DeployRun extends DeployClock {
    request: DeployRequest;
}

/**
 * A replaced target group (an `appPort` edit) starts empty, and the listeners move to it only
 * after this invocation: the instances the previous group serves keep serving through it
 * while the release fills the new group, and retire afterwards (the schedule's reconcile,
 * once the previous group is gone).
 */
async function servedBy(run: DeployRun, previousGroupArn: string): Promise<Set<string>> {
    const serving = (await run.fleet.targetsOf(previousGroupArn).catch(() => [])).filter((t) => ["healthy", "initial", "unhealthy"].includes(t.state));
    run.report.log({ action: "keep", targetGroup: previousGroupArn, instances: serving.map((t) => t.instanceId), result: "serving until the listeners move" });
    return new Set(serving.map((t) => t.instanceId));
}

async function converge(run: DeployRun, target: number, keep: ReadonlySet<string>): Promise<DeployAnswer> {
    let previous = "";
    let unfinished: Outcome[] = [];
    // Out of rounds or time, what is left of a release goes to the schedule.
    let handedOff = true;
    for (let round = 1; round <= MAX_ROUNDS; round++) {
        const observation = await run.fleet.observe({ prices: true, template: true });
        const stalled = stalledRelease(observation, run.settings, target, Date.now());
        if (stalled.length > 0) {
            throw await rollBack(run, observation, stalled, target);
        }
        const actions = reconcile(observation, run.settings, standalone(target, keep));
        const seen = fingerprint(observation);
        const waiting = joiningRelease(observation, target);
        if (waiting.length === 0 && (actions.length === 0 || seen === previous)) {
            handedOff = false;
            break;
        }
        previous = seen;
        if (actions.length === 0) {
            // Nothing to do but wait: the new version's instances serve, or stall the release.
            await settle(run, target);
            continue;
        }
        const plan = withinCeiling(actions.map((action): PlannedAction => ({ ...action, messageIds: [] })), observation, run.settings);
        reportRefused(plan, run.report);
        const outcomes = await drainThenAct(run, plan.actions);
        reportOutcomes(outcomes, run.report, observation.spotPrices);
        const failed = outcomes.filter((o) => o.status === "failed");
        if (failed.length > 0) {
            throw deployError(`could not reconcile ${run.settings.stack} to its settings: ${summarize(failed)}`);
        }
        unfinished = outcomes.filter((o) => o.status === "skipped");
        if (run.secondsLeft() < HANDOFF_SECONDS) {
            break;
        }
        await settle(run, target);
    }
    return answer(run, target, keep, unfinished, handedOff);
}

/**
 * Unlike the event path, which races the two-minute clock, the deploy lets a retired
 * instance drain for the deregistration delay before terminating it: the requests it was
 * serving finish.
 */
async function drainThenAct(run: DeployRun, actions: PlannedAction[]): Promise<Outcome[]> {
    const draining = new Set(actions.flatMap((a) => (a.kind === "drain" ? [a.instanceId] : [])));
    const afterDrain = (a: PlannedAction) => a.kind === "terminate" && draining.has(a.instanceId);
    const first = await execute(actions.filter((a) => !afterDrain(a)), run.fleet);
    const later = actions.filter(afterDrain);
    if (later.length === 0) {
        return first;
    }
    const drained = first.filter((o) => o.status === "done" && o.action.kind === "drain").map((o) => (o.action as { instanceId: string }).instanceId);
    await run.fleet.waitUntilDeregistered(drained, run.limit(run.settings.targetGroup.deregistrationDelaySeconds + WAIT_MARGIN_SECONDS))
        .catch((error) => run.report.log({ action: "wait-deregistered", instances: drained, result: "not yet", error: describeError(error) }));
    return [...first, ...(await execute(later, run.fleet))];
}

async function answer(run: DeployRun, target: number, keep: ReadonlySet<string>, unfinished: Outcome[], handedOff: boolean): Promise<DeployAnswer> {
    const final = await run.fleet.observe({ prices: false, template: true });
    const serves = final.instances.some((i) => isLive(i) && i.version === target && final.targets[i.id] === "healthy");
    if (keep.size > 0 && serves && final.releasedVersion !== target) {
        // Held back while the previous target group served (see promote in reconcile.ts): now the listeners move.
        await run.fleet.promote(target);
        run.report.log({ action: "promote", version: target, reason: "the new target group serves", result: "promoted" });
    }
    const missing = shortfall(final, run.settings);
    const old = outdated(final, run.settings, target).map((i) => i.id);
    const why = unfinished.length > 0 ? ` (${summarize(unfinished)})` : "";
    if (missing.length > 0) {
        throw deployError(`${run.settings.stack} did not reach its settings: ${missing.join("; ")}${why}`);
    }
    if (old.length > 0 && !handedOff) {
        throw deployError(`${run.settings.stack} could not release version ${target}: ${old.join(", ")} still run another version${why}; they keep serving, and the schedule's reconcile replaces them once the version is released`);
    }
    // A removed zone's subnet is deleted after this invocation: nothing of ours may still use it.
    const leaving = final.instances.filter((i) => ["shutting-down", "stopping"].includes(i.state)).map((i) => i.id);
    if (leaving.length > 0) {
        await run.fleet.waitUntilTerminated(leaving, run.limit())
            .catch((error) => run.report.log({ action: "wait-terminated", instances: leaving, result: "not yet", error: describeError(error) }));
    }
    const instances = fleetNames(final, run.settings);
    run.report.log({ action: run.request.action, instances, released: final.releasedVersion, outdated: old, result: handedOff ? "handed-off" : "converged" });
    return { instances, desired: run.request.desired };
}

/**
 * A version whose instance did not become healthy in time never stays what interruptions are
 * answered with: its instances that do not serve go (all of them, unless it was already
 * promoted), the outdated ones they were to replace keep serving, a promoted version hands
 * the template's default back to the previous one (the schedule then returns its serving
 * instances at the release's pace), and the invocation fails saying why, with what the
 * instance's console shows.
 */
async function rollBack(run: DeployRun, observation: Observation, stalled: ObservedInstance[], target: number): Promise<Error> {
    const promoted = observation.releasedVersion === target;
    const restored = promoted ? run.request.previous?.launchTemplateVersion : observation.releasedVersion;
    const doomed = observation.instances.filter((i) => isLive(i) && i.version === target && (!promoted || observation.targets[i.id] !== "healthy")).map((i) => i.id);
    const [first] = stalled;
    const [health] = await run.fleet.targetsOf(run.settings.targetGroupArn, [first.id]).catch(() => []);
    const consoleLines = await run.fleet.consoleTail(first.id).catch((error) => [`(console output unavailable: ${describeError(error)})`]);
    await run.fleet.terminate(doomed);
    if (promoted && restored !== undefined && restored !== target) {
        await run.fleet.promote(restored);
    }
    run.report.log({ action: "roll-back", version: target, instances: doomed, restored, result: "terminated" });
    const targetHealth = health === undefined ? "not registered" : `${health.state}${health.reason ? ` (${health.reason}${health.description ? `: ${health.description}` : ""})` : ""}`;
    return deployError([
        `release of launch template version ${target} stopped: ${first.id} in ${first.zone} was not healthy within ${run.settings.release.healthTimeoutSeconds} s; target health: ${targetHealth}.`,
        `Terminated the release's instances that do not serve (${doomed.join(", ")}); the fleet serves version ${restored ?? "unknown"}, the template's default.`,
        "Change what the instances run (userDataFile, amiId, appPort) and run pulumi up: that makes and releases a new version.",
        `Last lines of ${first.id}'s console output:`,
        ...consoleLines.map((line) => `    ${line}`),
    ].join("\n"));
}

/**
 * Waits until what the round launched runs, what drains has drained, and what joins the target group serves: a
 * replacement (the next round retires what it replaces) or an instance of the version being
 * released, at most until its health deadline, after which the next round stops the release.
 */
async function settle(run: DeployRun, target: number): Promise<void> {
    const observation = await run.fleet.observe({ prices: false });
    const pending = observation.instances.filter((i) => i.state === "pending").map((i) => i.id);
    if (pending.length > 0) {
        await run.fleet.waitUntilRunning(pending, run.limit())
            .catch((error) => run.report.log({ action: "wait-running", instances: pending, result: "not yet", error: describeError(error) }));
    }
    const draining = observation.instances.filter((i) => isLive(i) && observation.targets[i.id] === "draining").map((i) => i.id);
    if (draining.length > 0) {
        await run.fleet.waitUntilDeregistered(draining, run.limit(run.settings.targetGroup.deregistrationDelaySeconds + WAIT_MARGIN_SECONDS))
            .catch((error) => run.report.log({ action: "wait-deregistered", instances: draining, result: "not yet", error: describeError(error) }));
    }
    const live = new Set(observation.instances.filter(isLive).map((i) => i.id));
    const joining = observation.instances.filter((i) =>
        JOINING_STATES.includes(observation.targets[i.id]) && ((i.replaces !== undefined && live.has(i.replaces)) || (isLive(i) && i.version === target)));
    if (joining.length === 0) {
        return;
    }
    const deadline = Math.min(...joining.map((i) => i.launchTime)) + run.settings.release.healthTimeoutSeconds * 1000;
    const untilDeadline = Math.max(1, Math.ceil((deadline - Date.now()) / 1000) + 1);
    await run.fleet.waitUntilInService(joining.map((i) => i.id), run.limit(untilDeadline))
        .catch((error) => run.report.log({ action: "wait-in-service", instances: joining.map((i) => i.id), result: "not yet", error: describeError(error) }));
}

/** The teardown guard: nothing to do at create and update; at delete, the teardown. */
async function guard(clock: DeployClock, request: GuardRequest): Promise<DeployAnswer> {
    if (request.action !== "delete") {
        clock.report.log({ action: request.action, guard: request.teardownGuard, result: "unchanged", reason: "the teardown guard acts only at pulumi destroy" });
        return { unchanged: "the teardown guard acts only at pulumi destroy" };
    }
    return teardown(clock, request.teardownGuard.quietSeconds);
}

/**
 * Terminates every instance of the stack, in sweeps, until a sweep finds none left and
 * `quietSeconds` have passed since the first: by then the event path's last batch, begun before
 * its event source mapping was deleted, has ended, and whatever it launched was swept. A sweep
 * loop because the SDK has no waiter for "nothing new appears"; the waits within it are the SDK's.
 * The terminated-waiter fails at once on a `pending` or `stopping` read, which DescribeInstances
 * can return right after TerminateInstances: the next sweep terminates again and waits again.
 */
async function teardown(clock: DeployClock, quietSeconds: number): Promise<DeployAnswer> {
    const started = Date.now();
    const terminated = new Set<string>();
    for (let sweep = 1; ; sweep++) {
        // Shutting-down instances still hold their network interface: the subnets and security groups wait for them too.
        const present = await clock.fleet.instances(["pending", "running", "stopping", "stopped", "shutting-down"]);
        const quietFor = (Date.now() - started) / 1000;
        if (present.length === 0 && quietFor >= quietSeconds) {
            break;
        }
        const live = present.filter((i) => i.state !== "shutting-down").map((i) => i.id);
        if (live.length > 0) {
            await clock.fleet.terminate(live);
            live.forEach((id) => terminated.add(id));
            clock.report.log({ action: "terminate", sweep, instances: live, result: "terminating" });
        }
        if (clock.secondsLeft() < WAIT_MARGIN_SECONDS) {
            throw deployError(`teardown of ${clock.settings.stack} ran out of time with ${present.length > 0 ? `${present.map((i) => i.id).join(", ")} still there` : "its quiet period unfinished"}; run pulumi destroy again`);
        }
        if (present.length === 0) {
            await sleep(Math.min(SWEEP_INTERVAL_SECONDS, quietSeconds - quietFor) * 1000);
            continue;
        }
        const leaving = present.map((i) => i.id);
        await clock.fleet.waitUntilTerminated(leaving, clock.limit()).catch(async (error) => {
            clock.report.log({ action: "wait-terminated", sweep, instances: leaving, result: "not yet", error: describeError(error) });
            await sleep(SWEEP_INTERVAL_SECONDS * 1000);
        });
    }
    clock.report.log({ action: "delete", terminated: [...terminated], result: "terminated" });
    return { terminated: [...terminated] };
}
