import { AwsClients, createClients, LaunchOutcome, StackFleet } from "./aws";
import { HandlerEvent, parseEvent } from "./events";
import { Action, Observation, SpotPrices } from "./model";
import { METRIC, metricLine } from "./metrics";
import { placesByZone, plan } from "./planner";
import { HandlerSettings } from "./settings";

/**
 * The Lambda's controller: parse the event, observe the stack, plan, act, and log one JSON line
 * per decision. It never throws on a malformed or foreign event; it throws (so the event
 * reaches the dead-letter queue) only when it could not restore capacity.
 */

export type Log = (line: string) => void;

export interface HandlerDependencies {
    clients?: AwsClients;
    log?: Log;
    /** Where metric lines go: stdout as is, so Lambda's JSON log format does not wrap them. */
    metrics?: Log;
}

/** Thrown when every pool was tried and none had capacity. */
export class CapacityError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "CapacityError";
    }
}

function needsTargets(event: HandlerEvent): boolean {
    return event.kind === "schedule" || event.kind === "state-change";
}

/** Builds the function Lambda calls for each event; clients are built once, here, per container. */
export function createHandler(settings: HandlerSettings, dependencies: HandlerDependencies = {}) {
    const fleet = new StackFleet(dependencies.clients ?? createClients(settings.region), settings);
    const write: Log = dependencies.log ?? ((line) => console.log(line));
    const writeMetric: Log = dependencies.metrics ?? ((line) => process.stdout.write(`${line}\n`));

    return async (raw: unknown): Promise<void> => {
        const started = Date.now();
        const event = parseEvent(raw);
        const context = {
            event: event.kind,
            ...(event.kind === "ignored" ? {} : { eventId: event.id }),
            ...("instanceId" in event ? { instance: event.instanceId } : {}),
        };
        const log = (fields: Record<string, unknown>) => write(JSON.stringify({ ...context, ...fields, ms: Date.now() - started }));
        const metric = (values: Parameters<typeof metricLine>[1], dimensions?: Record<string, string>, properties?: Record<string, unknown>) =>
            writeMetric(metricLine(settings.stack, values, dimensions, properties));

        if (event.kind === "ignored") {
            log({ action: "none", result: "ignored", reason: event.reason });
            return;
        }
        const noticedAt = Date.parse(event.time);
        const [instances, targets] = await Promise.all([
            fleet.describeInstances(),
            needsTargets(event) ? fleet.describeTargets() : Promise.resolve(undefined),
        ]);
        const observation: Observation = { instances, targets };
        if ("instanceId" in event && !instances.some((instance) => instance.id === event.instanceId)) {
            log({ action: "none", result: "ignored", reason: "not an instance of this stack" });
            return;
        }
        if (event.kind === "interruption-warning") {
            metric({ [METRIC.warnings]: 1 }, {}, { instance: event.instanceId });
        }
        if (event.kind === "schedule") {
            for (const [zone, instances] of Object.entries(placesByZone(observation, settings, new Set()))) {
                metric({ [METRIC.instancesInZone]: instances.length, [METRIC.onDemandInZone]: instances.filter((i) => i.market === "on-demand").length }, { Zone: zone });
            }
        }

        let actions = plan(event, observation, settings);
        if (actions.length === 0) {
            log({ action: "none", result: "nothing to do" });
            return;
        }
        // Drains go out at once; the spot prices that rank zones are read meanwhile, only if a launch needs them.
        const drains = actions.filter((action) => action.kind === "drain");
        const [prices]: [SpotPrices | undefined, unknown] = await Promise.all([
            actions.some((action) => action.kind === "launch") ? fleet.spotPrices() : Promise.resolve(undefined),
            Promise.all(drains.map((action) => execute(action))),
        ]);
        if (prices !== undefined) {
            // Zones are ranked by the preferred type's price.
            const preferred = settings.instanceTypes[0];
            actions = plan(event, { ...observation, prices: Object.fromEntries(Object.entries(prices).filter(([, byType]) => preferred in byType).map(([zone, byType]) => [zone, byType[preferred]])) }, settings);
        }
        const results = await Promise.allSettled(actions.filter((action) => action.kind !== "drain").map((action) => execute(action)));
        const failures = results.filter((result): result is PromiseRejectedResult => result.status === "rejected").map((result) => result.reason as Error);
        if (failures.length > 0) {
            throw failures.length === 1 ? failures[0] : new AggregateError(failures, failures.map((error) => error.message).join("; "));
        }

        async function execute(action: Action): Promise<void> {
            const actionStarted = Date.now();
            switch (action.kind) {
                case "drain":
                    log({ action: "drain", instance: action.instanceId, reason: action.reason, result: await fleet.drain(action.instanceId) });
                    return;
                case "register":
                    await fleet.register(action.instanceId);
                    log({ action: "register", instance: action.instanceId, reason: action.reason, result: "registered" });
                    return;
                case "terminate":
                    await fleet.terminate(action.instanceId);
                    log({ action: "terminate", instance: action.instanceId, reason: action.reason, result: "terminated" });
                    return;
                case "launch":
                    return launchAndRegister(action, actionStarted);
            }
        }

        async function launchAndRegister(action: Extract<Action, { kind: "launch" }>, actionStarted: number): Promise<void> {
            const outcome: LaunchOutcome = await fleet.launch(action.attempts, action.idempotencyKey, action.replaces);
            const tried = outcome.failures.map((failure) => `${failure.attempt.zone}/${failure.attempt.instanceType}/${failure.attempt.market}: ${failure.code}`);
            if (!outcome.launched) {
                const zones = [...new Set(action.attempts.map((attempt) => attempt.zone))].join(", ");
                const types = [...new Set(action.attempts.map((attempt) => attempt.instanceType))].join(", ");
                log({ action: "launch", replaces: action.replaces, reason: action.reason, result: "no-capacity", tried });
                if (action.bestEffort) {
                    return;
                }
                metric({ [METRIC.failures]: 1 }, {}, { reason: action.reason, tried });
                throw new CapacityError(`no capacity to ${action.reason}: tried zones ${zones} and types ${types} (${tried.join("; ")})`);
            }
            const { instanceId, attempt } = outcome;
            const price = attempt.market === "spot" ? prices?.[attempt.zone]?.[attempt.instanceType] : undefined;
            log({
                action: "launch",
                replaces: action.replaces,
                reason: action.reason,
                zone: attempt.zone,
                instanceType: attempt.instanceType,
                market: attempt.market,
                price,
                launched: instanceId,
                result: "launched",
                tried,
                launchMs: Date.now() - actionStarted,
            });
            try {
                await fleet.waitUntilRunning(instanceId);
                await fleet.register(instanceId);
                log({ action: "register", instance: instanceId, reason: "replacement running", result: "registered" });
                metric(
                    { [METRIC.replacements]: 1, [METRIC.noticeToRegistered]: Date.now() - noticedAt },
                    {},
                    { zone: attempt.zone, instanceType: attempt.instanceType, market: attempt.market, price, launched: instanceId },
                );
            } catch (error) {
                // Capacity is restored; the running state-change event or the next reconcile registers it.
                log({ action: "register", instance: instanceId, reason: "replacement running", result: "failed", error: `${(error as Error).name}: ${(error as Error).message}` });
            }
        }
    };
}
