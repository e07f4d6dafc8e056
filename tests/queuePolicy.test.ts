import * as assert from "assert";
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { eventQueuePolicy } from "../infra/interruptionHandling";

/**
 * Only this stack's rules and the handler's role may put a message on the event queue, and only
 * over TLS: the queue's policy simulated with @cloud-copilot/iam-simulate, as IAM would evaluate
 * it beside the caller's own policy. A forged interruption warning from anyone else in the account
 * never reaches the planner.
 */

const ACCOUNT = "123456789012";
const QUEUE = `arn:aws:sqs:us-east-2:${ACCOUNT}:spot-handler-events`;
const RULES = ["interruption-warning", "rebalance-recommendation", "state-change", "reconcile"].map((rule) => `arn:aws:events:us-east-2:${ACCOUNT}:rule/spot-handler-${rule}`);
const HANDLER_ROLE = `arn:aws:iam::${ACCOUNT}:role/spot-handler-1a2b3c`;
const OTHER_ROLE = `arn:aws:iam::${ACCOUNT}:role/ci-deployer`;
/** What an account's broad role may hold: SendMessage on every queue. */
const SEND_ANYWHERE = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "sqs:SendMessage", Resource: "*" }] };

interface Sender {
    who: string;
    principal: string;
    identityPolicy?: object;
    context: Record<string, string>;
    expected: "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied";
}

const SENDERS: Sender[] = [
    { who: "EventBridge, for this stack's warning rule", principal: "events.amazonaws.com", context: { "aws:SourceArn": RULES[0], "aws:SecureTransport": "true" }, expected: "Allowed" },
    { who: "EventBridge, for another stack's rule", principal: "events.amazonaws.com", context: { "aws:SourceArn": `arn:aws:events:us-east-2:${ACCOUNT}:rule/forger`, "aws:SecureTransport": "true" }, expected: "ExplicitlyDenied" },
    { who: "the handler's role (its timers)", principal: HANDLER_ROLE, identityPolicy: SEND_ANYWHERE, context: { "aws:PrincipalArn": HANDLER_ROLE, "aws:SecureTransport": "true" }, expected: "Allowed" },
    { who: "another role of the account allowed SendMessage on *", principal: OTHER_ROLE, identityPolicy: SEND_ANYWHERE, context: { "aws:PrincipalArn": OTHER_ROLE, "aws:SecureTransport": "true" }, expected: "ExplicitlyDenied" },
    { who: "the handler's role without TLS", principal: HANDLER_ROLE, identityPolicy: SEND_ANYWHERE, context: { "aws:PrincipalArn": HANDLER_ROLE, "aws:SecureTransport": "false" }, expected: "ExplicitlyDenied" },
];

describe("who may send to the event queue", () => {
    const policy = eventQueuePolicy(QUEUE, RULES, HANDLER_ROLE);

    for (const sender of SENDERS) {
        it(`${sender.expected === "Allowed" ? "allows" : "denies"} ${sender.who}`, async () => {
            const result = await runSimulation({
                request: { principal: sender.principal, action: "sqs:SendMessage", resource: { resource: QUEUE, accountId: ACCOUNT }, contextVariables: sender.context },
                identityPolicies: sender.identityPolicy === undefined ? [] : [{ name: "own", policy: sender.identityPolicy }],
                serviceControlPolicies: [],
                resourceControlPolicies: [],
                resourcePolicy: policy,
            }, {});
            assert.notStrictEqual(result.resultType, "error", JSON.stringify(result));
            assert.strictEqual((result as { overallResult: string }).overallResult, sender.expected);
        });
    }
});
