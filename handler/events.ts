/**
 * Parses what the queue delivers into a small typed model: EventBridge's events (every event of
 * the account and region can arrive, well-formed or not) and the handler's own timer messages.
 * Parsing never throws: anything it does not recognise becomes an `ignored` event with the reason.
 */

export const DETAIL_TYPE = {
    interruptionWarning: "EC2 Spot Instance Interruption Warning",
    rebalanceRecommendation: "EC2 Instance Rebalance Recommendation",
    stateChange: "EC2 Instance State-change Notification",
    schedule: "Scheduled Event",
} as const;

/** The source and detail types of the messages the handler sends to its own queue. */
export const OWN_SOURCE = "spot-availability";
export const OWN_DETAIL_TYPE = {
    drainCheck: "Drain Check",
    reconcileRequest: "Reconcile Request",
} as const;

/** Why a drain check was set: the warning's deadline, or a replacement that may be healthy by now. */
export type DrainCheckCause = "deadline" | "replacement-healthy";

export const INSTANCE_STATES = ["pending", "running", "shutting-down", "terminated", "stopping", "stopped"] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

interface EventIdentity {
    /** EventBridge's event id: the same for every delivery of one event. */
    id: string;
    time: string;
}

export type HandlerEvent =
    | (EventIdentity & { kind: "interruption-warning"; instanceId: string })
    | (EventIdentity & { kind: "rebalance-recommendation"; instanceId: string })
    | (EventIdentity & { kind: "state-change"; instanceId: string; state: InstanceState })
    | (EventIdentity & { kind: "schedule" })
    /** A timer the handler set: drain `instanceId` if `cause` says it is time. */
    | (EventIdentity & { kind: "drain-check"; instanceId: string; cause: DrainCheckCause; replacementId?: string })
    /** The handler asks itself to reconcile at once (a replacement landed outside its zone). */
    | (EventIdentity & { kind: "reconcile-request" })
    | { kind: "ignored"; reason: string };

/** One message of a batch, by the id the event source mapping reports failures with. */
export interface QueuedEvent {
    messageId: string;
    event: HandlerEvent;
}

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

function isRecord(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

function ignored(reason: string): HandlerEvent {
    return { kind: "ignored", reason };
}

export function parseEvent(event: unknown): HandlerEvent {
    if (!isRecord(event)) {
        return ignored("event is not an object");
    }
    const { id, time, source } = event;
    const detailType = event["detail-type"];
    if (typeof id !== "string" || id === "") {
        return ignored("event has no id");
    }
    if (typeof time !== "string" || Number.isNaN(Date.parse(time))) {
        return ignored("event has no valid time");
    }
    if (typeof detailType !== "string") {
        return ignored("event has no detail-type");
    }
    const identity = { id, time };

    if (source === OWN_SOURCE) {
        return parseOwnMessage(detailType, event.detail, identity);
    }
    if (detailType === DETAIL_TYPE.schedule) {
        return source === "aws.events" ? { kind: "schedule", ...identity } : ignored(`scheduled event from ${String(source)}`);
    }
    if (source !== "aws.ec2") {
        return ignored(`source ${String(source)} is not aws.ec2`);
    }
    const detail = event.detail;
    if (!isRecord(detail)) {
        return ignored(`${detailType} has no detail`);
    }
    const instanceId = detail["instance-id"];
    if (typeof instanceId !== "string" || !INSTANCE_ID.test(instanceId)) {
        return ignored(`${detailType} has no valid instance-id`);
    }

    switch (detailType) {
        case DETAIL_TYPE.interruptionWarning:
            return { kind: "interruption-warning", ...identity, instanceId };
        case DETAIL_TYPE.rebalanceRecommendation:
            return { kind: "rebalance-recommendation", ...identity, instanceId };
        case DETAIL_TYPE.stateChange: {
            const state = detail.state;
            if (typeof state !== "string" || !(INSTANCE_STATES as readonly string[]).includes(state)) {
                return ignored(`state-change for ${instanceId} has unknown state ${String(state)}`);
            }
            return { kind: "state-change", ...identity, instanceId, state: state as InstanceState };
        }
        default:
            return ignored(`detail-type ${detailType} is not handled`);
    }
}

const DRAIN_CHECK_CAUSES: readonly DrainCheckCause[] = ["deadline", "replacement-healthy"];

function parseOwnMessage(detailType: string, detail: unknown, identity: EventIdentity): HandlerEvent {
    if (detailType === OWN_DETAIL_TYPE.reconcileRequest) {
        return { kind: "reconcile-request", ...identity };
    }
    if (detailType !== OWN_DETAIL_TYPE.drainCheck) {
        return ignored(`detail-type ${detailType} from ${OWN_SOURCE} is not handled`);
    }
    if (!isRecord(detail) || typeof detail["instance-id"] !== "string" || !INSTANCE_ID.test(detail["instance-id"])) {
        return ignored("drain check has no valid instance-id");
    }
    const cause = detail.cause;
    if (typeof cause !== "string" || !(DRAIN_CHECK_CAUSES as readonly string[]).includes(cause)) {
        return ignored(`drain check has unknown cause ${String(cause)}`);
    }
    const replacementId = detail["replacement-id"];
    if (replacementId !== undefined && (typeof replacementId !== "string" || !INSTANCE_ID.test(replacementId))) {
        return ignored("drain check has an invalid replacement-id");
    }
    return { kind: "drain-check", ...identity, instanceId: detail["instance-id"], cause: cause as DrainCheckCause, replacementId };
}

/** The body of a message the handler sends itself, shaped as an EventBridge event so one parser reads both. */
export function ownMessage(id: string, time: Date, detailType: (typeof OWN_DETAIL_TYPE)[keyof typeof OWN_DETAIL_TYPE], detail: Record<string, string> = {}): string {
    return JSON.stringify({ version: "0", id, "detail-type": detailType, source: OWN_SOURCE, time: time.toISOString(), detail });
}

/**
 * Every record of an SQS batch as the event source mapping delivers it. A record whose body is
 * not JSON becomes an ignored event (acknowledged, never retried); a payload that is not a batch,
 * or a record without a message id, has no message to report: `rejected` says so, for the log.
 */
export function parseBatch(payload: unknown): { messages: QueuedEvent[]; rejected?: string } {
    if (!isRecord(payload) || !Array.isArray(payload.Records)) {
        return { messages: [], rejected: "payload is not an SQS batch (no Records)" };
    }
    const messages: QueuedEvent[] = [];
    let unnamed = 0;
    for (const record of payload.Records) {
        if (!isRecord(record) || typeof record.messageId !== "string") {
            // Without a message id it cannot be reported as failed, nor acted on as a message.
            unnamed++;
            continue;
        }
        let body: unknown;
        try {
            body = JSON.parse(String(record.body));
        } catch {
            messages.push({ messageId: record.messageId, event: ignored("message body is not JSON") });
            continue;
        }
        messages.push({ messageId: record.messageId, event: parseEvent(body) });
    }
    return unnamed === 0 ? { messages } : { messages, rejected: `${unnamed} record(s) without a messageId` };
}
