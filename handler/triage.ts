import { HandlerEvent, QueuedEvent } from "./events";
import { Observation, ObservedInstance } from "./model";

/**
 * The event path's one decision per message, made once: ignored (malformed, or nothing the
 * handler acts on), foreign (about an instance of another stack or account: every event of the
 * account arrives), or ours (with the instance it is about, as observed). The planner sees only
 * ours; the report logs the rest.
 *
 * Sample: `{ kind: "interruption-warning", instanceId: "i-0abc…" }` about an instance without this
 * stack's tag is foreign; `{ kind: "ignored", reason: "detail-type … is not one the handler acts on" }` is ignored.
 */

/** Event kinds that are about an instance. */
type InstanceEvent = Extract<HandlerEvent, { instanceId: string }>;
type FleetEvent = Exclude<HandlerEvent, InstanceEvent | { kind: "ignored" }>;

export type OurMessage =
    | { messageId: string; event: InstanceEvent; instance: ObservedInstance }
    | { messageId: string; event: FleetEvent; instance?: undefined };

export interface Triage {
    ignored: { messageId: string; reason: string }[];
    foreign: { messageId: string; event: InstanceEvent }[];
    ours: OurMessage[];
}

/** Messages worth observing the stack for: anything not ignored. */
export function actionable(messages: readonly QueuedEvent[]): QueuedEvent[] {
    return messages.filter(({ event }) => event.kind !== "ignored");
}

/** Whether the batch may launch: then the observation reads spot prices, which rank the zones. */
export function mayLaunch(messages: readonly QueuedEvent[]): boolean {
    return messages.some(({ event }) => !["ignored", "drain-check"].includes(event.kind) && !(event.kind === "state-change" && event.state === "running"));
}

/** Whether the batch holds the schedule: then it reports the fleet per zone and reads the released version. */
export function isScheduled(messages: readonly QueuedEvent[]): boolean {
    return messages.some(({ event }) => event.kind === "schedule");
}

export function triage(messages: readonly QueuedEvent[], observation: Observation): Triage {
    const owned = new Map(observation.instances.map((i) => [i.id, i]));
    const result: Triage = { ignored: [], foreign: [], ours: [] };
    for (const { messageId, event } of messages) {
        if (event.kind === "ignored") {
            result.ignored.push({ messageId, reason: event.reason });
        } else if (!("instanceId" in event)) {
            result.ours.push({ messageId, event });
        } else {
            const instance = owned.get(event.instanceId);
            if (instance === undefined) {
                result.foreign.push({ messageId, event });
            } else {
                result.ours.push({ messageId, event, instance });
            }
        }
    }
    return result;
}
