import { LaunchOutcome, SPOT_ROLE_COMMAND, SPOT_ROLE_MISSING, StackFleet } from "./aws";
import { Outcome, PlannedAction, TriedPool } from "./model";

/**
 * Carries out a plan: every action at once (drains and launches in parallel), the drain checks as
 * one round of delayed messages. Returns what became of each action; logging and metrics are the
 * report's (handler/report.ts), what to retry the caller's.
 */

/** An error as a log line or a failed deploy shows it; for a missing spot service-linked role, with the command that creates it. */
export function describeError(error: unknown): string {
    const { name, message } = error as Error;
    const hint = name === SPOT_ROLE_MISSING ? ` EC2 Spot's service-linked role does not exist in this account yet; create it once: ${SPOT_ROLE_COMMAND}` : "";
    return `${name}: ${message}${hint}`;
}

type Launch = Extract<PlannedAction, { kind: "launch" }>;
type Timer = Extract<PlannedAction, { kind: "timer" }>;

function triedPools(outcome: LaunchOutcome): TriedPool[] {
    return outcome.failures.map((failure) => `${failure.attempt.zone}/${failure.attempt.instanceType}/${failure.attempt.market}: ${failure.code}`);
}

/** A launch's outcome: a required launch that found no capacity anywhere fails, naming every pool it tried. */
function launchOutcome(action: Launch, outcome: LaunchOutcome, ms: number): Outcome {
    const tried = triedPools(outcome);
    if (outcome.launched) {
        return { status: "done", action, ms, launched: { instanceId: outcome.instanceId, pool: outcome.attempt, tried } };
    }
    if (outcome.claimed || action.bestEffort) {
        return { status: "skipped", action, ms, why: outcome.claimed ? "already-launched" : "no-capacity", tried };
    }
    const zones = [...new Set(action.attempts.map((a) => a.zone))].join(", ");
    const types = [...new Set(action.attempts.map((a) => a.instanceType))].join(", ");
    const error = `CapacityError: no capacity to ${action.reason}: tried zones ${zones} and types ${types} (${tried.join("; ") || "every pool was already unavailable"})`;
    return { status: "failed", action, ms, error, tried };
}

/** Whether a launch landed outside the zone it was meant for: a replacement holding its place from elsewhere. */
function landedElsewhere(outcome: Outcome): boolean {
    return outcome.status === "done" && outcome.launched !== undefined && outcome.action.kind === "launch" && outcome.launched.pool.zone !== outcome.action.attempts[0]?.zone;
}

export async function execute(actions: readonly PlannedAction[], fleet: StackFleet): Promise<Outcome[]> {
    // Pools that answered a capacity error: no other launch of this plan asks them again.
    const unavailable = new Set<string>();

    const run = async (action: Exclude<PlannedAction, Timer>): Promise<Outcome> => {
        const started = Date.now();
        const ms = () => Date.now() - started;
        try {
            switch (action.kind) {
                case "drain":
                    return { status: "done", action, ms: ms(), drained: await fleet.drain(action.instanceId) };
                case "register":
                    await fleet.register(action.instanceId);
                    break;
                case "terminate":
                    await fleet.terminate([action.instanceId]);
                    break;
                case "promote":
                    await fleet.promote(action.version);
                    break;
                case "request-reconcile":
                    await fleet.requestReconcile(new Date());
                    break;
                case "launch":
                    return launchOutcome(action, await fleet.launch(action, unavailable), ms());
            }
            return { status: "done", action, ms: ms() };
        } catch (error) {
            return { status: "failed", action, ms: ms(), error: describeError(error), tried: [] };
        }
    };
    const setTimers = async (timers: Timer[]): Promise<Outcome[]> => {
        const started = Date.now();
        try {
            await fleet.setTimers(timers.map((t) => t.timer), new Date());
            return timers.map((action) => ({ status: "done", action, ms: Date.now() - started }));
        } catch (error) {
            return timers.map((action) => ({ status: "failed", action, ms: Date.now() - started, error: describeError(error), tried: [] }));
        }
    };

    const timers = actions.filter((a): a is Timer => a.kind === "timer");
    const others = actions.filter((a): a is Exclude<PlannedAction, Timer> => a.kind !== "timer");
    const [outcomes, timerOutcomes] = await Promise.all([Promise.all(others.map(run)), timers.length === 0 ? [] : setTimers(timers)]);
    const all = [...outcomes, ...timerOutcomes];
    if (all.some(landedElsewhere)) {
        // A replacement holds its place from another zone: reconcile now, not at the next schedule,
        // so the short zone gets its own instance back (or an on-demand one) within the minute.
        // Nothing is lost but time if this fails: the schedule reconciles too.
        all.push(await run({ kind: "request-reconcile", reason: "a launch landed outside its zone", messageIds: [] }));
    }
    return all;
}
