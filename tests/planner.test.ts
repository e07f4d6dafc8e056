import * as assert from "assert";
import { HandlerEvent } from "../handler/events";
import { ObservedInstance, Observation } from "../handler/model";
import { chooseZones, countByZone, launchAttempts, plan, reconcile } from "../handler/planner";
import { HandlerSettings } from "../handler/settings";

/** The planner on plain data: every decision without AWS. */

const settings: HandlerSettings = {
    stack: "spot-availability/test",
    region: "us-east-2",
    instanceName: "web",
    instanceTypes: ["t3.micro", "t3a.micro"],
    instancesPerZone: 1,
    subnetsByZone: { "us-east-2a": "subnet-a", "us-east-2b": "subnet-b", "us-east-2c": "subnet-c" },
    launchTemplateId: "lt-1",
    launchTemplateVersion: "$Default",
    targetGroupArn: "arn:tg",
    spotProductDescription: "Linux/UNIX",
    onDemandFallback: true,
    replaceOnRebalance: true,
};

function instance(id: string, zone: string, extra: Partial<ObservedInstance> = {}): ObservedInstance {
    return { id, zone: `us-east-2${zone}`, state: "running", instanceType: "t3.micro", market: "spot", launchedBy: "pulumi", launchTime: 0, ...extra };
}

const fleet = [instance("i-a", "a"), instance("i-b", "b"), instance("i-c", "c")];
const healthy = { "i-a": "healthy", "i-b": "healthy", "i-c": "healthy" } as const;
const warning = (instanceId: string): HandlerEvent => ({ kind: "interruption-warning", id: "e1", time: "t", instanceId });

describe("chooseZones", () => {
    it("orders zones by fewest instances, then lowest price, then name", () => {
        assert.deepStrictEqual(chooseZones({ "us-east-2a": 1, "us-east-2b": 0, "us-east-2c": 1 }, undefined), ["us-east-2b", "us-east-2a", "us-east-2c"]);
        assert.deepStrictEqual(chooseZones({ "us-east-2a": 1, "us-east-2b": 0, "us-east-2c": 1 }, { "us-east-2a": 0.02, "us-east-2c": 0.01 }), ["us-east-2b", "us-east-2c", "us-east-2a"]);
    });
});

describe("countByZone", () => {
    it("counts live instances that hold a place: not leaving, not draining, not superseded", () => {
        const observation: Observation = {
            instances: [
                ...fleet,
                instance("i-b2", "b", { launchedBy: "handler", replaces: "i-b", state: "pending" }),
                instance("i-old", "c", { state: "terminated" }),
                instance("i-drain", "a", { launchedBy: "handler" }),
            ],
            targets: { "i-drain": "draining" },
        };
        assert.deepStrictEqual(countByZone(observation, settings, new Set(["i-a"])), { "us-east-2a": 0, "us-east-2b": 1, "us-east-2c": 1 });
    });
});

describe("launchAttempts", () => {
    it("tries every type in each zone on spot, then on-demand", () => {
        assert.deepStrictEqual(launchAttempts(["us-east-2b", "us-east-2a"], settings).map((a) => `${a.zone.slice(-1)}/${a.instanceType}/${a.market}`), [
            "b/t3.micro/spot", "b/t3a.micro/spot", "a/t3.micro/spot", "a/t3a.micro/spot",
            "b/t3.micro/on-demand", "b/t3a.micro/on-demand", "a/t3.micro/on-demand", "a/t3a.micro/on-demand",
        ]);
    });

    it("puts the flagged pool last in its zone, and stays on spot when asked", () => {
        assert.deepStrictEqual(
            launchAttempts(["us-east-2b"], settings, { avoid: { zone: "us-east-2b", instanceType: "t3.micro" }, spotOnly: true }).map((a) => a.instanceType),
            ["t3a.micro", "t3.micro"],
        );
    });

    it("never goes on-demand when onDemandFallback is off", () => {
        assert.ok(launchAttempts(["us-east-2a"], { ...settings, onDemandFallback: false }).every((a) => a.market === "spot"));
    });
});

describe("plan", () => {
    it("drains a warned instance first, then replaces it in its own zone", () => {
        const actions = plan(warning("i-b"), { instances: fleet }, settings);
        assert.deepStrictEqual(actions.map((a) => a.kind), ["drain", "launch"]);
        const launch = actions[1];
        assert.ok(launch.kind === "launch");
        assert.strictEqual(launch.attempts[0].zone, "us-east-2b");
        assert.strictEqual(launch.replaces, "i-b");
        assert.strictEqual(launch.idempotencyKey, "e1/replace/i-b");
    });

    it("only drains a warned instance that already has a replacement", () => {
        const instances = [...fleet, instance("i-b2", "b", { launchedBy: "handler", replaces: "i-b" })];
        assert.deepStrictEqual(plan(warning("i-b"), { instances }, settings).map((a) => a.kind), ["drain"]);
    });

    it("does nothing for an instance it does not own", () => {
        assert.deepStrictEqual(plan(warning("i-stranger"), { instances: fleet }, settings), []);
    });

    it("registers a running instance that is not in the target group", () => {
        const event: HandlerEvent = { kind: "state-change", id: "e2", time: "t", instanceId: "i-c", state: "running" };
        assert.deepStrictEqual(plan(event, { instances: fleet, targets: { "i-a": "healthy", "i-b": "healthy" } }, settings), [
            { kind: "register", instanceId: "i-c", reason: "running but not registered" },
        ]);
        assert.deepStrictEqual(plan(event, { instances: fleet, targets: healthy }, settings), []);
    });
});

describe("reconcile", () => {
    it("launches into every zone below its count before swapping or trimming", () => {
        const instances = [instance("i-a", "a"), instance("i-od", "b", { launchedBy: "handler", market: "on-demand" }), instance("i-x", "b", { launchedBy: "handler" })];
        const actions = reconcile({ instances, targets: { "i-a": "healthy", "i-od": "healthy", "i-x": "healthy" } }, settings, "s1");
        assert.deepStrictEqual(actions.map((a) => a.kind === "launch" ? `launch ${a.attempts[0].zone}` : a.kind), ["launch us-east-2c"]);
    });

    it("trims the on-demand extra before a spot one, and never a Pulumi instance", () => {
        const instances = [...fleet, instance("i-od", "b", { launchedBy: "handler", market: "on-demand", launchTime: 1 }), instance("i-p2", "c")];
        const actions = reconcile({ instances, targets: { ...healthy, "i-od": "healthy", "i-p2": "healthy" } }, settings, "s1");
        assert.deepStrictEqual(actions.map((a) => `${a.kind} ${"instanceId" in a ? a.instanceId : ""}`), ["drain i-od", "terminate i-od"]);
    });

    it("during a zone outage tries only the empty zone, never growing the fleet elsewhere", () => {
        const perZone = { ...settings, instancesPerZone: 2 };
        const instances = [
            instance("i-a1", "a"), instance("i-a2", "a"), instance("i-a3", "a", { launchedBy: "handler" }),
            instance("i-c1", "c"), instance("i-c2", "c"), instance("i-c3", "c", { launchedBy: "handler" }),
        ];
        const targets = Object.fromEntries(instances.map((i) => [i.id, "healthy" as const]));
        const actions = reconcile({ instances, targets }, perZone, "s1");
        assert.deepStrictEqual(actions.map((a) => a.kind === "launch" ? `${a.bestEffort ? "try" : "launch"} ${[...new Set(a.attempts.map((t) => t.zone))].join("+")}` : a.kind), [
            "try us-east-2b", "try us-east-2b",
        ]);
    });
});
