import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { architectureOf, CONFIG_KEYS, ConfigContext, DEFAULTS, defaultHostedZone, parseConfig, parseDrainWhen, RawConfig, scheduleExpression } from "../infra/config";
import { DeclaredResource, ROOT, runProgram } from "../rehearsal/program";

/** Config: validated in full, by a pure function, before any resource is declared. */

const context: ConfigContext = {
    stack: "spot-availability/test",
    region: "us-east-2",
    readFile: (file) => {
        if (file === "app.sh") {
            return "#!/bin/bash\nexec my-app\n";
        }
        throw new Error(`ENOENT: no such file or directory, open '${file}'`);
    },
};

function configError(raw: RawConfig): string {
    try {
        parseConfig(raw, context);
    } catch (error) {
        return (error as Error).message;
    }
    assert.fail(`expected ${JSON.stringify(raw)} to be rejected`);
}

describe("Pulumi.yaml", () => {
    const project = parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8"));

    it("is the spot-availability project on the nodejs runtime with TypeScript", () => {
        assert.strictEqual(project.name, "spot-availability");
        assert.strictEqual(project.runtime.name, "nodejs");
        assert.strictEqual(project.runtime.options.typescript, true);
    });

    it("declares every key the program reads, with type, description and the program's default", () => {
        assert.deepStrictEqual(Object.keys(project.config).sort(), [...CONFIG_KEYS].sort());
        for (const key of CONFIG_KEYS) {
            const declaration = project.config[key];
            assert.ok(["string", "integer", "boolean", "array"].includes(declaration.type), `${key} has a type`);
            assert.ok(typeof declaration.description === "string" && declaration.description.length > 10, `${key} has a description`);
            assert.deepStrictEqual(declaration.default, DEFAULTS[key], `${key}'s default`);
            const jsType = Array.isArray(DEFAULTS[key]) ? "array" : typeof DEFAULTS[key] === "number" ? "integer" : typeof DEFAULTS[key];
            assert.strictEqual(declaration.type, jsType, `${key}'s type`);
        }
    });
});

describe("parseConfig", () => {
    it("applies the defaults of SPEC to an empty config", () => {
        const config = parseConfig({}, context);
        assert.strictEqual(config.instanceName, "web");
        assert.deepStrictEqual(config.instanceTypes, ["t3.micro", "t3a.micro", "t2.micro"]);
        assert.deepStrictEqual(config.network, { kind: "create", zones: [], zoneCount: 3 });
        assert.strictEqual(config.instancesPerZone, 1);
        assert.strictEqual(config.spotMaxPrice, undefined);
        assert.strictEqual(config.onDemandFallback, true);
        assert.strictEqual(config.replaceOnRebalance, true);
        assert.strictEqual(config.appPort, 80);
        assert.strictEqual(config.healthCheckPath, "/");
        assert.strictEqual(config.userData, undefined);
        assert.strictEqual(config.domain, undefined);
        assert.strictEqual(config.reconcileMinutes, 5);
        assert.strictEqual(config.logRetentionDays, 14);
        assert.strictEqual(config.architecture, "x86_64");
        assert.strictEqual(config.stack, "spot-availability/test");
        assert.deepStrictEqual(config.release, { batchPercent: 100, healthTimeoutSeconds: 300 });
    });

    it("reads the release settings as whole numbers", () => {
        const config = parseConfig({ releaseBatchPercent: "34", releaseHealthTimeoutSeconds: "600" }, context);
        assert.deepStrictEqual(config.release, { batchPercent: 34, healthTimeoutSeconds: 600 });
    });

    it("reads lists as Pulumi passes them (JSON) and numbers and booleans from text", () => {
        const config = parseConfig({
            instanceTypes: '["m7g.large","c7g.large"]',
            instancesPerZone: "2",
            onDemandFallback: "false",
            zones: '["a","us-east-2c"]',
            userDataFile: "app.sh",
            domainName: "Shop.Example.com",
        }, context);
        assert.deepStrictEqual(config.instanceTypes, ["m7g.large", "c7g.large"]);
        assert.strictEqual(config.architecture, "arm64");
        assert.strictEqual(config.instancesPerZone, 2);
        assert.strictEqual(config.onDemandFallback, false);
        assert.deepStrictEqual(config.network, { kind: "create", zones: ["a", "us-east-2c"], zoneCount: 3 });
        assert.strictEqual(config.userData, "#!/bin/bash\nexec my-app\n");
        assert.deepStrictEqual(config.domain, { domainName: "shop.example.com", hostedZoneName: "example.com" });
    });

    const rejected: [string, RawConfig, RegExp][] = [
        ["an instanceName with a space", { instanceName: "my app" }, /spot-availability:instanceName: "my app" is not allowed; allowed: 1 to 64 letters, digits and '-'/],
        ["an instanceName ending in '-'", { instanceName: "web-" }, /instanceName/],
        ["an empty instanceTypes", { instanceTypes: "[]" }, /spot-availability:instanceTypes: the list is empty; allowed: one or more instance types/],
        ["instanceTypes that is not a list", { instanceTypes: "t3.micro" }, /instanceTypes: "t3.micro" is not a list/],
        ["a malformed instance type", { instanceTypes: '["t3micro"]' }, /instanceTypes: "t3micro" is not an instance type/],
        ["instanceTypes of two architectures", { instanceTypes: '["t3.micro","t4g.micro"]' }, /instanceTypes: .* mixes x86_64 and arm64/],
        ["instancesPerZone of 0", { instancesPerZone: "0" }, /spot-availability:instancesPerZone: "0" is not allowed; allowed: a whole number from 1 to 20/],
        ["a fractional instancesPerZone", { instancesPerZone: "1.5" }, /instancesPerZone/],
        ["subnetIds together with zones", { subnetIds: '["subnet-0aaaaaaaaaaaaaaa1","subnet-0bbbbbbbbbbbbbbb2"]', zones: '["a","b"]' }, /spot-availability:zones: is set together with subnetIds.*allowed: subnetIds or zones, not both/],
        ["subnetIds together with zoneCount", { subnetIds: '["subnet-0aaaaaaaaaaaaaaa1","subnet-0bbbbbbbbbbbbbbb2"]', zoneCount: "2" }, /zoneCount: is set together with subnetIds/],
        ["a single subnet", { subnetIds: '["subnet-0aaaaaaaaaaaaaaa1"]' }, /subnetIds: has one subnet; allowed: subnets in at least two zones/],
        ["a malformed subnet id", { subnetIds: '["subnet-1","subnet-0aaaaaaaaaaaaaaa1"]' }, /subnetIds: "subnet-1" is not a subnet id/],
        ["an unknown zone letter", { zones: '["a","7"]' }, /spot-availability:zones: "7" is not a zone of us-east-2; allowed: zone letters such as a, b, c/],
        ["a zone of another region", { zones: '["us-west-2a","us-east-2b"]' }, /zones: "us-west-2a" is not a zone of us-east-2/],
        ["a single zone", { zones: '["a"]' }, /zones: has one zone; allowed: at least two zones/],
        ["zoneCount of 1", { zoneCount: "1" }, /zoneCount: "1" is not allowed; allowed: a whole number from 2 to 26/],
        ["a malformed domainName", { domainName: "shop..example.com" }, /spot-availability:domainName: "shop..example.com" is not a domain name; allowed: a fully qualified name/],
        ["a domainName with a scheme", { domainName: "https://example.com" }, /domainName: "https:\/\/example.com" is not a domain name/],
        ["a hosted zone that does not hold the domain", { domainName: "shop.example.com", hostedZoneName: "example.org" }, /hostedZoneName: example.org does not hold shop.example.com/],
        ["hostedZoneName without domainName", { hostedZoneName: "example.com" }, /hostedZoneName: is set but domainName is not/],
        ["sshCidr without keyName", { sshCidr: "203.0.113.7/32" }, /sshCidr: is set but keyName is not/],
        ["a malformed sshCidr", { keyName: "ops", sshCidr: "203.0.113.700/32" }, /sshCidr: "203.0.113.700\/32" is not allowed; allowed: an IPv4 CIDR block/],
        ["a negative spotMaxPrice", { spotMaxPrice: "-1" }, /spotMaxPrice: "-1" is not allowed; allowed: a positive hourly price/],
        ["an unknown spotProductDescription", { spotProductDescription: "Linux" }, /spotProductDescription: "Linux" is not allowed; allowed: Linux\/UNIX, /],
        ["a malformed amiId", { amiId: "ami-xyz" }, /amiId: "ami-xyz" is not allowed; allowed: an AMI id/],
        ["appPort 0", { appPort: "0" }, /appPort: "0" is not allowed; allowed: a whole number from 1 to 65535/],
        ["a healthCheckPath without '/'", { healthCheckPath: "health" }, /healthCheckPath: "health" is not allowed; allowed: a path starting with '\/'/],
        ["onDemandFallback yes", { onDemandFallback: "yes" }, /onDemandFallback: "yes" is not allowed; allowed: true or false/],
        ["an unreadable userDataFile", { userDataFile: "missing.sh" }, /userDataFile: "missing.sh" cannot be read \(ENOENT.*allowed: a path to a readable script/],
        ["a retention CloudWatch does not offer", { logRetentionDays: "10" }, /logRetentionDays: 10 is not allowed; allowed: 1, 3, 5, 7, 14, 30/],
        ["an alarm topic that is not an SNS ARN", { alarmTopicArn: "ops@example.com" }, /alarmTopicArn: "ops@example.com" is not allowed; allowed: an SNS topic ARN/],
        ["reconcileMinutes of 0", { reconcileMinutes: "0" }, /reconcileMinutes: "0" is not allowed; allowed: a whole number from 1 to 60/],
        ["releaseBatchPercent of 0", { releaseBatchPercent: "0" }, /spot-availability:releaseBatchPercent: "0" is not allowed; allowed: a whole number from 1 to 100/],
        ["releaseBatchPercent over 100", { releaseBatchPercent: "150" }, /releaseBatchPercent: "150" is not allowed; allowed: a whole number from 1 to 100/],
        ["a fractional releaseBatchPercent", { releaseBatchPercent: "33.3" }, /releaseBatchPercent: "33.3" is not allowed/],
        ["releaseHealthTimeoutSeconds below a minute", { releaseHealthTimeoutSeconds: "30" }, /spot-availability:releaseHealthTimeoutSeconds: "30" is not allowed; allowed: a whole number from 60 to 600/],
        ["releaseHealthTimeoutSeconds past what the deploy's 900 s can wait", { releaseHealthTimeoutSeconds: "900" }, /releaseHealthTimeoutSeconds: "900" is not allowed; allowed: a whole number from 60 to 600/],
    ];
    for (const [what, raw, message] of rejected) {
        it(`rejects ${what}, naming the key and what is allowed`, () => {
            assert.match(configError(raw), message);
        });
    }

    it("rejects a stack without a region", () => {
        assert.throws(() => parseConfig({}, { ...context, region: undefined }), /aws:region: not set/);
    });
});

describe("config helpers", () => {
    it("tells Graviton types from x86 ones", () => {
        assert.deepStrictEqual(["t4g.micro", "m7gd.large", "c7gn.xlarge", "a1.medium", "t3.micro", "g4dn.xlarge", "m5a.large"].map(architectureOf), [
            "arm64", "arm64", "arm64", "arm64", "x86_64", "x86_64", "x86_64",
        ]);
    });

    it("finds the hosted zone of a domain", () => {
        assert.strictEqual(defaultHostedZone("www.example.com"), "example.com");
        assert.strictEqual(defaultHostedZone("example.com"), "example.com");
    });

    it("writes EventBridge rate expressions in AWS's singular and plural", () => {
        assert.strictEqual(scheduleExpression(1), "rate(1 minute)");
        assert.strictEqual(scheduleExpression(5), "rate(5 minutes)");
    });
});

describe("a stack with invalid config", () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
        ["a bad instanceName", { "spot-availability:instanceName": "Prometheus!" }, /spot-availability:instanceName/],
        ["an empty instanceTypes", { "spot-availability:instanceTypes": [] }, /spot-availability:instanceTypes/],
        ["instancesPerZone below 1", { "spot-availability:instancesPerZone": 0 }, /spot-availability:instancesPerZone/],
        ["subnetIds together with zones", { "spot-availability:subnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"] }, /spot-availability:zones: is set together with subnetIds/],
        ["a zone letter the region lacks", { "spot-availability:zones": ["a", "d"] }, /spot-availability:zones: "d" is not an available zone of us-east-2; allowed: a, b, c/],
        ["a malformed domainName", { "spot-availability:domainName": "not a domain" }, /spot-availability:domainName/],
        ["a hosted zone the account lacks", { "spot-availability:domainName": "shop.example.net" }, /spot-availability:hostedZoneName: no public hosted zone example.net/],
        ["two subnets in one zone", { "spot-availability:zones": [], "spot-availability:subnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0ddddddddddddddd4"] }, /subnetIds: subnet-0aaaaaaaaaaaaaaa1 and subnet-0ddddddddddddddd4 are both in us-east-2a/],
        ["subnets of two VPCs", { "spot-availability:zones": [], "spot-availability:subnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0eeeeeeeeeeeeeee5"] }, /subnetIds: the subnets belong to several VPCs/],
        ["a subnet the account lacks", { "spot-availability:zones": [], "spot-availability:subnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0999999999999999f"] }, /subnetIds: subnet-0999999999999999f cannot be read/],
        ["an AMI of the wrong architecture", { "spot-availability:amiId": "ami-0fedcba9876543210" }, /amiId: ami-0fedcba9876543210 is arm64 but instanceTypes are x86_64/],
        ["a releaseBatchPercent of 0", { "spot-availability:releaseBatchPercent": 0 }, /spot-availability:releaseBatchPercent/],
    ];
    for (const [what, config, message] of cases) {
        it(`fails on ${what}, naming the key, and declares no resource`, async () => {
            const declared: DeclaredResource[] = [];
            await assert.rejects(runProgram({ config }, declared), message);
            assert.deepStrictEqual(declared.map((r) => `${r.type} ${r.name}`), []);
        });
    }

    it("declares the stack with a configured AMI's own root device", async () => {
        const run = await runProgram({ config: { "spot-availability:amiId": "ami-0123456789abcdef0" } });
        const template = run.one("aws:ec2/launchTemplate:LaunchTemplate");
        assert.strictEqual(template.inputs.imageId, "ami-0123456789abcdef0");
        assert.strictEqual(template.inputs.blockDeviceMappings[0].deviceName, "/dev/sda1");
        const policy = JSON.parse(run.one("aws:iam/rolePolicy:RolePolicy").inputs.policy);
        assert.ok(!JSON.stringify(policy).includes("ssm:GetParameters"), "no SSM parameter to read");
    });
});

describe("parseDrainWhen", () => {
    for (const value of ["replacement-healthy", "warning"]) {
        it(`accepts ${value}`, () => assert.strictEqual(parseDrainWhen(value), value));
    }
    for (const value of ["", "Warning", "healthy", "never"]) {
        it(`refuses ${JSON.stringify(value)}, naming the key and what is allowed`, () => {
            assert.throws(() => parseDrainWhen(value), /spot-availability:drainWhen: .* is not allowed; allowed: replacement-healthy .* or warning/);
        });
    }

    it("defaults to replacement-healthy in parseConfig", () => {
        assert.strictEqual(parseConfig({}, { stack: "spot-availability/test", region: "us-east-2", readFile: () => "" }).drainWhen, "replacement-healthy");
    });
});
