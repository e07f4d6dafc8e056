import { AwsClients, createClients, StackFleet, WaitLimit } from "./aws";
import { describeError, execute, Report } from "./execute";
import { metricLine } from "./metrics";
import { isLive, Observation } from "./model";
import { placesByZone, reconcile } from "./planner";
import { checkDesired, deployError, parseDeployRequest } from "./deployRequest";
import { HandlerSettings } from "./settings";
import { fleetMemberName, instanceNameTag } from "./tags";

/**
 * The deploy path: what the program's `aws.lambda.Invocation` (lifecycle scope CRUD) calls at
 * `pulumi up` and `pulumi destroy`. The fleet has one owner, as an Auto Scaling group owns its
 * instances: on create and update the deploy reconciles the stack to its settings with the event
 * path's own planner and launcher (same pools, same fallback), in rounds, waiting between them
 * until what it launched runs and what it registered serves, and answers with the fleet; on delete
 * it terminates every instance of the stack and waits until they are gone. Unlike the event path
 * it may wait: nothing races a two-minute clock here.
 */

export type DeployAnswer =
    /** The fleet as the deploy left it: `Prometheus-A` (then `Prometheus-A-2` …) → instance id. */
    | { instances: Record<string, string> }
    | { terminated: string[] };

/** Reconcile rounds at most: a create takes two (launch, register), a retype four. */
const MAX_ROUNDS = 8;

/** Passes over the fleet at teardown: a batch already running when its event source mapping was deleted may still finish one launch. */
const TEARDOWN_SWEEPS = 3;

/** The longest any one wait may take, and what is kept back from Lambda's remaining time. */
const MAX_WAIT_SECONDS = 300;
const WAIT_MARGIN_SECONDS = 30;

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

/** What keeps the fleet from its settings: each zone short of its count, or holding an instance that is not registered. */
export function shortfall(observation: Observation, settings: HandlerSettings): string[] {
    return Object.entries(placesByZone(observation, settings, new Set())).flatMap(([zone, instances]) => {
        const registered = instances.filter((i) => i.state === "running" && observation.targets[i.id] !== undefined);
        return registered.length >= settings.instancesPerZone ? [] : [`${zone} holds ${registered.length} of ${settings.instancesPerZone} registered`];
    });
}

/** What went wrong in a round, for the invocation's error. */
interface Failure {
    subject: string;
    error: string;
}

/** Each distinct error once, with the first action it failed and how many more. */
export function summarize(failures: Failure[]): string {
    const bySubject = new Map<string, string[]>();
    for (const { subject, error } of failures) {
        bySubject.set(error, [...(bySubject.get(error) ?? []), subject]);
    }
    return [...bySubject].map(([error, subjects]) => `${subjects[0]}${subjects.length > 1 ? ` (and ${subjects.length - 1} more)` : ""}: ${error}`).join("; ");
}

/** What changes between rounds: a round that changed none of it made no progress. */
function fingerprint(observation: Observation): string {
    return JSON.stringify([
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

/** Builds the function the invocation calls; clients are built once per container. */
export function createDeployHandler(settings: HandlerSettings, dependencies: DeployDependencies = {}) {
    const fleet = new StackFleet(dependencies.clients ?? createClients(settings.region), settings, "pulumi");
    const write = dependencies.log ?? ((line: string) => console.log(line));
    const writeMetric = dependencies.metrics ?? ((line: string) => process.stdout.write(`${line}\n`));

    return async (payload: unknown, context?: DeployContext): Promise<DeployAnswer> => {
        const started = Date.now();
        const failures: Failure[] = [];
        const report: Report = {
            log: (fields) => {
                if (fields.result === "failed" || fields.result === "no-capacity") {
                    failures.push({ subject: `${fields.action} ${fields.instance ?? fields.key ?? ""}`, error: String(fields.error ?? `no capacity (${(fields.tried as string[] | undefined)?.join("; ")})`) });
                }
                write(JSON.stringify({ path: "deploy", ...fields, ms: Date.now() - started }));
            },
            metric: (values, dimensions, properties) => writeMetric(metricLine(settings.stack, values, dimensions, properties)),
        };
        const limit = (): WaitLimit => ({
            maxWaitSeconds: Math.max(1, Math.min(MAX_WAIT_SECONDS, Math.floor((context?.getRemainingTimeInMillis() ?? Infinity) / 1000) - WAIT_MARGIN_SECONDS)),
        });

        const request = parseDeployRequest(payload);
        report.log({ action: request.action, desired: request.desired, result: "started" });
        if (request.action === "delete") {
            return teardown();
        }
        checkDesired(request.desired, settings);
        return converge();

        async function converge(): Promise<DeployAnswer> {
            let previous = "";
            for (let round = 1; round <= MAX_ROUNDS; round++) {
                const observation = await fleet.observe({ prices: true });
                const actions = reconcile(observation, settings);
                const seen = fingerprint(observation);
                if (actions.length === 0 || seen === previous) {
                    break;
                }
                previous = seen;
                failures.length = 0;
                const failed = await execute(actions.map((action) => ({ ...action, messageIds: [`round-${round}`] })), fleet, report, observation.spotPrices);
                if (failed.size > 0) {
                    throw deployError(`could not reconcile ${settings.stack} to its settings: ${summarize(failures)}`);
                }
                await settle();
            }
            const final = await fleet.observe({ prices: false });
            const missing = shortfall(final, settings);
            if (missing.length > 0) {
                throw deployError(`${settings.stack} did not reach its settings: ${missing.join("; ")}${failures.length > 0 ? ` (${summarize(failures)})` : ""}`);
            }
            // A removed zone's subnet is deleted after this invocation: nothing of ours may still use it.
            const leaving = final.instances.filter((i) => ["shutting-down", "stopping"].includes(i.state)).map((i) => i.id);
            if (leaving.length > 0) {
                await fleet.waitUntilTerminated(leaving, limit());
            }
            const instances = fleetNames(final, settings);
            report.log({ action: request.action, instances, result: "converged" });
            return { instances };
        }

        /** Waits until what the round launched runs, and what replaces a serving instance serves too (then the next round retires the old one). */
        async function settle(): Promise<void> {
            const observation = await fleet.observe({ prices: false });
            const pending = observation.instances.filter((i) => i.state === "pending").map((i) => i.id);
            if (pending.length > 0) {
                await fleet.waitUntilRunning(pending, limit());
            }
            const live = new Set(observation.instances.filter(isLive).map((i) => i.id));
            const joining = observation.instances
                .filter((i) => i.replaces !== undefined && live.has(i.replaces) && observation.targets[i.id] === "initial")
                .map((i) => i.id);
            if (joining.length > 0) {
                try {
                    await fleet.waitUntilInService(joining, limit());
                } catch (error) {
                    // The fleet holds its count meanwhile; the schedule retires the old ones once these serve.
                    report.log({ action: "wait-in-service", instances: joining, result: "not yet", error: describeError(error) });
                }
            }
        }

        async function teardown(): Promise<DeployAnswer> {
            const terminated: string[] = [];
            for (let sweep = 0; sweep < TEARDOWN_SWEEPS; sweep++) {
                const ids = (await fleet.instances(["pending", "running", "stopping", "stopped"])).map((i) => i.id);
                if (ids.length === 0) {
                    break;
                }
                await fleet.terminate(ids);
                await fleet.waitUntilTerminated(ids, limit());
                terminated.push(...ids);
            }
            report.log({ action: "delete", terminated, result: "terminated" });
            return { terminated };
        }
    };
}
