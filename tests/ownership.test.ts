import * as assert from "assert";
import { Emulator } from "../rehearsal/emulator";
import { freshWorld, ec2Event, interruptionWarning, rebalanceRecommendation, scheduledEvent, stateChange, World } from "../rehearsal/world";
import { RunInstancesCommand } from "@aws-sdk/client-ec2";

/** Every EC2 event of the account arrives: the handler writes only for its own instances, and never throws on junk. */

describe("events that are not the handler's business", () => {
    let emulator: Emulator;
    let world: World;
    beforeEach(async () => {
        ({ emulator, world } = await freshWorld());
    });

    async function launchForeign(tags: { Key: string; Value: string }[]): Promise<string> {
        const launched = await world.ec2.send(new RunInstancesCommand({
            MinCount: 1,
            MaxCount: 1,
            ImageId: "ami-12c6146b",
            SubnetId: world.settings.subnetsByZone["us-east-2b"],
            ...(tags.length > 0 ? { TagSpecifications: [{ ResourceType: "instance", Tags: tags }] } : {}),
        }));
        return launched.Instances?.[0].InstanceId as string;
    }

    it("makes no write call for another stack's instance", async () => {
        const other = await launchForeign([{ Key: "spot-availability:stack", Value: "spot-availability/prod" }, { Key: "Name", Value: "Prometheus-B" }]);
        await world.handle(interruptionWarning(other));
        await world.handle(rebalanceRecommendation(other));
        await world.handle(stateChange(other, "terminated"));
        assert.deepStrictEqual(emulator.proxy.writeCalls(), []);
        assert.ok(world.logs.every((line) => line.result === "ignored" && line.reason === "not an instance of this stack"));
    });

    it("makes no write call for an untagged instance", async () => {
        const untagged = await launchForeign([]);
        await world.handle(interruptionWarning(untagged));
        assert.deepStrictEqual(emulator.proxy.writeCalls(), []);
    });

    const malformed: [string, unknown][] = [
        ["no event at all", undefined],
        ["null", null],
        ["a number", 42],
        ["a warning without detail", { ...interruptionWarning("i-0123456789abcdef0"), detail: undefined }],
        ["a warning whose instance-id is a number", { ...interruptionWarning("i-0123456789abcdef0"), detail: { "instance-id": 7 } }],
        ["a warning whose detail is a string", { ...interruptionWarning("i-0123456789abcdef0"), detail: "i-0123456789abcdef0" }],
        ["an event whose id is an object", { ...interruptionWarning("i-0123456789abcdef0"), id: {} }],
        ["an unknown detail-type", ec2Event("EC2 AMI State Change", { ImageId: "ami-1" })],
        ["a state change without state", ec2Event("EC2 Instance State-change Notification", { "instance-id": "i-0123456789abcdef0" })],
    ];
    for (const [what, event] of malformed) {
        it(`ignores ${what} without throwing or writing`, async () => {
            await world.handle(event);
            assert.deepStrictEqual(emulator.proxy.writeCalls(), []);
            assert.strictEqual(world.logs.length, 1);
            assert.strictEqual(world.logs[0].result, "ignored");
        });
    }

    it("survives 200 random mutations of real events about its own instances without throwing or writing", async () => {
        const owned = world.declared["Prometheus-B"];
        const bases: Record<string, unknown>[] = [
            interruptionWarning(owned),
            rebalanceRecommendation(owned),
            stateChange(owned, "terminated"),
            scheduledEvent(),
        ];
        const random = seeded(20261124);
        const junk: unknown[] = [null, 0, -1, true, [], {}, "", "i-", "x".repeat(5000), "\u0000\u202e", [owned]];
        for (let mutation = 0; mutation < 200; mutation++) {
            const event = structuredClone(bases[mutation % bases.length]) as Record<string, any>;
            // Each mutation removes, mistypes or garbles a field the handler must read, so no mutant is a valid event.
            const field = pick(random, ["id", "time", "detail-type", "source", "detail", "detail.instance-id", "detail.state"].filter((path) => path === "detail.state" ? event["detail-type"] === "EC2 Instance State-change Notification" : !path.startsWith("detail") || event.source === "aws.ec2"));
            const wrongTypes = junk.filter((value) => typeof value !== "string");
            const replacement =
                field === "detail-type" || field === "source"
                    ? pick(random, [...junk, `EC2 ${random().toString(36)}`])
                    : field === "id" || field === "time"
                      ? pick(random, [...wrongTypes, undefined])
                      : pick(random, [...junk, undefined]);
            const [head, tail] = field.split(".");
            const target = tail === undefined ? event : event[head];
            const key = tail ?? head;
            if (replacement === undefined || random() < 0.2) {
                delete target[key];
            } else {
                target[key] = replacement;
            }
            await world.handle(event);
        }
        assert.deepStrictEqual(emulator.proxy.writeCalls(), []);
        assert.strictEqual(world.logs.length, 200);
        assert.ok(world.logs.every((line) => line.result === "ignored"), JSON.stringify(world.logs.find((line) => line.result !== "ignored")));
    });
});

/** A small deterministic generator, so a failing mutation can be replayed. */
function seeded(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        return state / 2 ** 32;
    };
}

function pick<T>(random: () => number, items: T[]): T {
    return items[Math.floor(random() * items.length)];
}
