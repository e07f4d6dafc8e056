import * as assert from "assert";
import { ownMessage, parseBatch, parseEvent } from "../handler/events";

/** Every event of the account and region reaches the handler: parsing never throws. */

const warning = {
    version: "0",
    id: "1e5527d7-bb36-4607-3370-4164db56a40e",
    "detail-type": "EC2 Spot Instance Interruption Warning",
    source: "aws.ec2",
    account: "123456789012",
    time: "2026-11-24T10:00:00Z",
    region: "us-east-2",
    resources: ["arn:aws:ec2:us-east-2a:instance/i-1234567890abcdef0"],
    detail: { "instance-id": "i-1234567890abcdef0", "instance-action": "terminate" },
};

describe("parseEvent", () => {
    it("reads an interruption warning", () => {
        assert.deepStrictEqual(parseEvent(warning), {
            kind: "interruption-warning",
            id: warning.id,
            time: warning.time,
            instanceId: "i-1234567890abcdef0",
        });
    });

    it("reads a rebalance recommendation", () => {
        const event = { ...warning, "detail-type": "EC2 Instance Rebalance Recommendation", detail: { "instance-id": "i-1234567890abcdef0" } };
        assert.strictEqual(parseEvent(event).kind, "rebalance-recommendation");
    });

    it("reads a state change with its state", () => {
        const event = { ...warning, "detail-type": "EC2 Instance State-change Notification", detail: { "instance-id": "i-1234567890abcdef0", state: "running" } };
        assert.deepStrictEqual(parseEvent(event), { kind: "state-change", id: warning.id, time: warning.time, instanceId: "i-1234567890abcdef0", state: "running" });
    });

    it("reads the reconcile schedule", () => {
        const event = { ...warning, "detail-type": "Scheduled Event", source: "aws.events", detail: {}, resources: ["arn:aws:events:us-east-2:123456789012:rule/r"] };
        assert.deepStrictEqual(parseEvent(event), { kind: "schedule", id: warning.id, time: warning.time });
    });

    const malformed: [string, unknown][] = [
        ["undefined", undefined],
        ["a string", "EC2 Spot Instance Interruption Warning"],
        ["an array", [warning]],
        ["an event without id", { ...warning, id: undefined }],
        ["an event from another source", { ...warning, source: "aws.autoscaling" }],
        ["an unknown detail-type", { ...warning, "detail-type": "EC2 Instance Launch Successful" }],
        ["a detail without instance-id", { ...warning, detail: {} }],
        ["an instance-id of the wrong type", { ...warning, detail: { "instance-id": 42 } }],
        ["a malformed instance-id", { ...warning, detail: { "instance-id": "i-; DROP TABLE" } }],
        ["a state change with an unknown state", { ...warning, "detail-type": "EC2 Instance State-change Notification", detail: { "instance-id": "i-1234567890abcdef0", state: "melting" } }],
        ["a schedule from another source", { ...warning, "detail-type": "Scheduled Event", source: "aws.ec2" }],
    ];
    for (const [what, event] of malformed) {
        it(`ignores ${what}, saying why`, () => {
            const parsed = parseEvent(event);
            assert.strictEqual(parsed.kind, "ignored");
            assert.ok(parsed.kind === "ignored" && parsed.reason.length > 0);
        });
    }
});

describe("parseEvent: the handler's own timers", () => {
    const check = { ...warning, source: "spot-availability", "detail-type": "Drain Check", detail: { "instance-id": "i-1234567890abcdef0", cause: "replacement-healthy", "replacement-id": "i-0fedcba9876543210" } };

    it("reads a drain check as ownMessage writes it", () => {
        const written = JSON.parse(ownMessage("c1", new Date(warning.time), "Drain Check", check.detail));
        assert.deepStrictEqual(parseEvent(written), { kind: "drain-check", id: "c1", time: "2026-11-24T10:00:00.000Z", instanceId: "i-1234567890abcdef0", cause: "replacement-healthy", replacementId: "i-0fedcba9876543210" });
    });

    const malformed: [string, unknown][] = [
        ["a drain check with an unknown cause", { ...check, detail: { ...check.detail, cause: "whim" } }],
        ["a drain check with a malformed replacement-id", { ...check, detail: { ...check.detail, "replacement-id": "i-?" } }],
        ["an unknown detail-type of its own source", { ...check, "detail-type": "Launch Everything" }],
    ];
    for (const [what, event] of malformed) {
        it(`ignores ${what}`, () => assert.strictEqual(parseEvent(event).kind, "ignored"));
    }
});

describe("parseBatch", () => {
    it("reads every record, and makes a record whose body is not JSON an ignored event", () => {
        const { messages } = parseBatch({ Records: [{ messageId: "m1", body: JSON.stringify(warning) }, { messageId: "m2", body: "{not json" }] });
        assert.deepStrictEqual(messages.map((m) => [m.messageId, m.event.kind]), [["m1", "interruption-warning"], ["m2", "ignored"]]);
    });

    it("names records it cannot read as messages", () => {
        assert.deepStrictEqual(parseBatch({ Records: [{ body: "{}" }] }), { messages: [], rejected: "1 record(s) without a messageId" });
    });

    it("rejects a payload that is not a batch, naming why", () => {
        assert.deepStrictEqual(parseBatch(warning), { messages: [], rejected: "payload is not an SQS batch (no Records)" });
    });
});
