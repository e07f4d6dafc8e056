/**
 * Parses whatever EventBridge delivers into a small typed model. Every event of the account and
 * region can arrive here, well-formed or not, so parsing never throws: anything it does not
 * recognise becomes an `ignored` event carrying the reason.
 */

export const DETAIL_TYPE = {
    interruptionWarning: "EC2 Spot Instance Interruption Warning",
    rebalanceRecommendation: "EC2 Instance Rebalance Recommendation",
    stateChange: "EC2 Instance State-change Notification",
    schedule: "Scheduled Event",
} as const;

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
    | { kind: "ignored"; reason: string };

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
