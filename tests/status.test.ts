import * as assert from "assert";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { explainError, HelpRequested } from "../tools/cli";
import { DeployedStack } from "../tools/deployedStack";
import { formatAge, formatStatus, parseStatusArgs, readFleetStatus } from "../tools/status";
import { freshWorld, World } from "../rehearsal/world";

/** `npm run status`: the live fleet of a deployed stack, read from the emulator as it would be from AWS. */

describe("npm run status", () => {
    let world: World;
    let deployed: DeployedStack;
    beforeEach(async () => {
        ({ world } = await freshWorld());
        deployed = {
            name: "test",
            targetGroupArn: world.settings.targetGroupArn,
            fleet: {
                region: "us-east-2",
                stack: world.settings.stack,
                instanceName: "Prometheus",
                zones: Object.keys(world.settings.subnetsByZone),
                instancesPerZone: 1,
                instanceTypes: world.settings.instanceTypes,
                spotProductDescription: "Linux/UNIX",
            },
        };
    });

    it("lists every instance of the stack with zone, name, type, market, who launched it, target health and age", async () => {
        const handlers = await world.launchOwned("us-east-2b", "handler", "on-demand");
        const now = Date.now() + 90_000;
        const rows = await readFleetStatus(world, deployed, now);
        assert.deepStrictEqual(rows.map((r) => [r.zone, r.name, r.state, r.type, r.market, r.launchedBy, r.targetHealth]), [
            ["us-east-2a", "Prometheus-A", "running", "t3.micro", "spot", "deploy", "healthy"],
            ["us-east-2b", "Prometheus-B", "running", "t3.micro", "spot", "deploy", "healthy"],
            ["us-east-2b", "Prometheus-B", "running", "t3.micro", "on-demand", "handler", "healthy"],
            ["us-east-2c", "Prometheus-C", "running", "t3.micro", "spot", "deploy", "healthy"],
        ]);
        assert.strictEqual(rows[2].instance, handlers);
        assert.ok(rows.every((r) => r.ageSeconds >= 89 && r.ageSeconds < 200), rows.map((r) => r.ageSeconds).join(", "));

        const [title, table, summary] = formatStatus(rows, deployed);
        assert.strictEqual(title, "stack test (us-east-2)");
        assert.match(table, /zone\s+│ name\s+│ instance\s+│ state\s+│ type\s+│ market\s+│ launched by\s+│ target health\s+│ age/);
        assert.match(table, new RegExp(`us-east-2b\\s+│ Prometheus-B\\s+│ ${handlers}\\s+│ running\\s+│ t3.micro\\s+│ on-demand\\s+│ handler\\s+│ healthy\\s+│ 1m \\d+s`));
        assert.strictEqual(summary, "us-east-2a: 1 of 1 healthy; us-east-2b: 2 of 1 healthy; us-east-2c: 1 of 1 healthy");
    });

    it("shows one zone by its letter, and leaves terminated instances out", async () => {
        await world.ec2.send(new TerminateInstancesCommand({ InstanceIds: [world.declared["Prometheus-A"]] }));
        assert.deepStrictEqual((await readFleetStatus(world, deployed, Date.now(), "b")).map((r) => r.instance), [world.declared["Prometheus-B"]]);
        assert.deepStrictEqual(await readFleetStatus(world, deployed, Date.now(), "a"), []);
        await assert.rejects(readFleetStatus(world, deployed, Date.now(), "d"), /--zone d is not a zone of this stack; allowed: a \(us-east-2a\), b \(us-east-2b\), c \(us-east-2c\)/);
    });
});

describe("the status command line", () => {
    it("takes a stack and optionally a zone; --help asks for the usage", () => {
        assert.deepStrictEqual(parseStatusArgs(["--stack", "dev", "--zone", "b"]), { stack: "dev", zone: "b" });
        assert.throws(() => parseStatusArgs(["--help"]), HelpRequested);
        assert.throws(() => parseStatusArgs([]), /--stack is required\nusage: npm run status -- --stack <name>/);
    });

    it("prints ages in their two largest units", () => {
        assert.deepStrictEqual([0, 59, 61, 3_700, 90_061].map(formatAge), ["0s", "59s", "1m 1s", "1h 1m", "1d 1h"]);
    });
});

describe("the tools' errors", () => {
    const named = (name: string, message: string) => Object.assign(new Error(message), { name });

    it("turn missing or expired credentials into what to do", () => {
        assert.match(explainError(named("CredentialsProviderError", "Could not load credentials from any providers")), /^no AWS credentials found: run `aws configure` or `aws sso login`, or set AWS_PROFILE/);
        assert.match(explainError(named("ExpiredToken", "The security token included in the request is expired")), /^your AWS session has expired: run `aws sso login`/);
    });

    it("leave every other error's message as it is", () => {
        assert.strictEqual(explainError(new Error("stack dev has no targetGroupArn")), "stack dev has no targetGroupArn");
    });
});
