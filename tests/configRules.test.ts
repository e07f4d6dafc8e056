import * as assert from "assert";
import {
    INTEGER_RANGES,
    parseAlarmTopicArn,
    parseAmiId,
    parseDomain,
    parseHealthCheckPath,
    parseInstanceName,
    parseInstanceTypes,
    parseKeyName,
    parseLogRetentionDays,
    parseNetworkSource,
    parseRegion,
    parseSpotMaxPrice,
    parseSpotProductDescription,
    parseSshCidr,
    parseSubnetIds,
    parseUserDataFile,
    parseZones,
    readBoolean,
    readInteger,
    readStringList,
} from "../infra/config";

/** Each config rule on its own, as tables of what it accepts and what it refuses (and why), the way awsx tests its VPC validators. */

interface RuleTable<I, O> {
    accepts: [I, O][];
    refuses: [I, RegExp][];
}

function describeRule<I, O>(name: string, rule: (input: I) => O, table: RuleTable<I, O>): void {
    describe(name, () => {
        for (const [input, expected] of table.accepts) {
            it(`accepts ${JSON.stringify(input)}`, () => assert.deepStrictEqual(rule(input), expected));
        }
        for (const [input, message] of table.refuses) {
            it(`refuses ${JSON.stringify(input)}`, () => assert.throws(() => rule(input), (error: Error) => message.test(error.message) || assert.fail(error.message)));
        }
    });
}

const readFile = (file: string) => {
    if (file === "empty.sh") {
        return "  \n";
    }
    if (file === "app.sh") {
        return "#!/bin/bash\n";
    }
    throw new Error(`ENOENT: no such file or directory, open '${file}'`);
};

describeRule("aws:region", parseRegion, {
    accepts: [["us-east-2", "us-east-2"]],
    refuses: [[undefined, /aws:region: not set; allowed: an AWS region such as us-east-2/], ["", /not set/]],
});

describeRule("readStringList", (text: string) => readStringList("zones", text), {
    accepts: [['["a","b"]', ["a", "b"]], ["[]", []]],
    refuses: [["a, b", /spot-availability:zones: "a, b" is not a list; allowed: a YAML list of strings/], ["[1]", /is not a list of strings/], ['"a"', /is not a list of strings/]],
});

describeRule("readInteger", (text: string) => readInteger("instancesPerZone", text, 1, 20), {
    accepts: [["1", 1], ["20", 20], [" 3 ", 3]],
    refuses: [["0", /instancesPerZone: "0" is not allowed; allowed: a whole number from 1 to 20/], ["21", /from 1 to 20/], ["1.5", /whole number/], ["two", /whole number/]],
});

for (const key of ["releaseBatchPercent", "releaseHealthTimeoutSeconds"] as const) {
    const [min, max] = INTEGER_RANGES[key];
    describeRule(`${key} (${min} to ${max})`, (text: string) => readInteger(key, text, min, max), {
        accepts: [[String(min), min], [String(max), max]],
        refuses: [[String(min - 1), new RegExp(`${key}: "${min - 1}" is not allowed; allowed: a whole number from ${min} to ${max}`)], [String(max + 1), /is not allowed/], ["", /whole number/]],
    });
}

describeRule("readBoolean", (text: string) => readBoolean("drill", text), {
    accepts: [["true", true], ["false", false]],
    refuses: [["yes", /drill: "yes" is not allowed; allowed: true or false/], ["True", /true or false/]],
});

describeRule("instanceName", parseInstanceName, {
    accepts: [["Prometheus", "Prometheus"], ["web-1", "web-1"], ["a", "a"]],
    refuses: [["-web", /instanceName: "-web" is not allowed; allowed: 1 to 64 letters, digits and '-'/], ["web_1", /letters, digits/], ["", /letters, digits/], ["a".repeat(65), /1 to 64/]],
});

describeRule("instanceTypes", parseInstanceTypes, {
    accepts: [
        [["t3.micro", "t3a.micro"], { instanceTypes: ["t3.micro", "t3a.micro"], architecture: "x86_64" }],
        [["t4g.small", "m7g.large"], { instanceTypes: ["t4g.small", "m7g.large"], architecture: "arm64" }],
    ],
    refuses: [
        [[], /instanceTypes: the list is empty; allowed: one or more instance types/],
        [["t3.micro", "t3.micro"], /lists a type twice; allowed: each type once/],
        [["t3.micro", "t4g.micro"], /mixes x86_64 and arm64 types/],
        [["micro"], /"micro" is not an instance type; allowed: names such as t3.micro/],
    ],
});

describeRule("spotProductDescription", parseSpotProductDescription, {
    accepts: [["Linux/UNIX", "Linux/UNIX"], ["Windows (Amazon VPC)", "Windows (Amazon VPC)"]],
    refuses: [["linux", /spotProductDescription: "linux" is not allowed; allowed: Linux\/UNIX, /]],
});

describeRule("amiId", parseAmiId, {
    accepts: [["", undefined], ["ami-0123456789abcdef0", "ami-0123456789abcdef0"]],
    refuses: [["ami-xyz", /amiId: "ami-xyz" is not allowed; allowed: an AMI id such as ami-0123456789abcdef0, or empty/]],
});

describeRule("keyName", parseKeyName, {
    accepts: [["", undefined], ["ops key", "ops key"]],
    refuses: [
        ["ops\u00e9", /keyName: .* allowed: the name of an EC2 key pair/],
        ["*", /keyName: "\*" is not allowed; allowed: .*no \* or \?/],
        ["ops?", /no \* or \?/],
    ],
});

describeRule("sshCidr", ([cidr, keyName]: [string, string | undefined]) => parseSshCidr(cidr, keyName), {
    accepts: [[["", undefined], undefined], [["203.0.113.7/32", "ops"], "203.0.113.7/32"]],
    refuses: [
        [["203.0.113.7/32", undefined], /sshCidr: is set but keyName is not; allowed: set keyName too, or leave sshCidr empty/],
        [["300.0.0.1/32", "ops"], /allowed: an IPv4 CIDR block/],
        [["10.0.0.0/33", "ops"], /allowed: an IPv4 CIDR block/],
        [["0.0.0.0/0", "ops"], /sshCidr: "0.0.0.0\/0" opens SSH to the whole internet; allowed: the block you connect from/],
        [["10.0.0.0/0", "ops"], /opens SSH to the whole internet/],
    ],
});

describeRule("subnetIds", parseSubnetIds, {
    accepts: [[["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"], ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"]]],
    refuses: [
        [["subnet-0aaaaaaaaaaaaaaa1"], /subnetIds: has one subnet; allowed: subnets in at least two zones/],
        [["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa1"], /lists a subnet twice/],
        [["sn-1", "subnet-0aaaaaaaaaaaaaaa1"], /"sn-1" is not a subnet id/],
    ],
});

describeRule("zones", (zones: string[]) => parseZones(zones, "us-east-2"), {
    accepts: [[[], []], [["a", "us-east-2c"], ["a", "us-east-2c"]]],
    refuses: [[["a"], /zones: has one zone; allowed: at least two zones/], [["a", "us-west-2b"], /"us-west-2b" is not a zone of us-east-2; allowed: zone letters such as a, b, c/]],
});

describeRule("subnetIds with zones or zoneCount", parseNetworkSource, {
    accepts: [
        [{ subnetIds: [], zones: ["a", "b"], zoneCount: 3, zoneCountSet: false, region: "us-east-2" }, { kind: "create", zones: ["a", "b"], zoneCount: 3 }],
        [{ subnetIds: ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"], zones: [], zoneCount: 3, zoneCountSet: false, region: "us-east-2" }, { kind: "existing", subnetIds: ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"] }],
    ],
    refuses: [
        [{ subnetIds: ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"], zones: ["a", "b"], zoneCount: 3, zoneCountSet: false, region: "us-east-2" }, /zones: is set together with subnetIds/],
        [{ subnetIds: ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"], zones: [], zoneCount: 2, zoneCountSet: true, region: "us-east-2" }, /zoneCount: is set together with subnetIds/],
    ],
});

describeRule("spotMaxPrice", parseSpotMaxPrice, {
    accepts: [["", undefined], ["0.0104", "0.0104"], ["1", "1"]],
    refuses: [["0", /spotMaxPrice: "0" is not allowed; allowed: a positive hourly price in USD/], ["$1", /positive hourly price/], ["-1", /positive hourly price/]],
});

describeRule("healthCheckPath", parseHealthCheckPath, {
    accepts: [["/", "/"], ["/health?full=1", "/health?full=1"], ["/api/v1.2/status..ok", "/api/v1.2/status..ok"]],
    refuses: [
        ["health", /healthCheckPath: "health" is not allowed; allowed: a path starting with '\/'/],
        ["/a b", /letters, digits and - \. _ ~ \/ \? = & % \+ , : @/],
        ["/x';touch${IFS}PWNED;'", /healthCheckPath: .* is not allowed/],
        ["/$(reboot)", /is not allowed/],
        ["/`id`", /is not allowed/],
        ["/../../etc/cron.d/x", /with no '\.\.' segment/],
        ["/a/..", /with no '\.\.' segment/],
        ["/a/..?x=1", /with no '\.\.' segment/],
    ],
});

describeRule("userDataFile", (file: string) => parseUserDataFile(file, readFile), {
    accepts: [["", undefined], ["app.sh", "#!/bin/bash\n"]],
    refuses: [["missing.sh", /userDataFile: "missing.sh" cannot be read \(ENOENT/], ["empty.sh", /"empty.sh" is empty; allowed: a script, or leave userDataFile empty/]],
});

describeRule("domainName and hostedZoneName", ([domain, zone]: [string, string]) => parseDomain(domain, zone), {
    accepts: [
        [["", ""], undefined],
        [["Shop.Example.com", ""], { domainName: "shop.example.com", hostedZoneName: "example.com" }],
        [["example.com", ""], { domainName: "example.com", hostedZoneName: "example.com" }],
        [["a.b.example.com", "example.com."], { domainName: "a.b.example.com", hostedZoneName: "example.com" }],
    ],
    refuses: [
        [["", "example.com"], /hostedZoneName: is set but domainName is not/],
        [["shop", ""], /domainName: "shop" is not a domain name/],
        [["shop.example.com", "other.com"], /hostedZoneName: other.com does not hold shop.example.com/],
    ],
});

describeRule("logRetentionDays", parseLogRetentionDays, {
    accepts: [["14", 14], ["3653", 3653]],
    refuses: [["15", /logRetentionDays: 15 is not allowed; allowed: 1, 3, 5, 7, 14/], ["0", /from 1 to 3653/]],
});

describeRule("alarmTopicArn", parseAlarmTopicArn, {
    accepts: [["", undefined], ["arn:aws:sns:us-east-2:123456789012:ops", "arn:aws:sns:us-east-2:123456789012:ops"]],
    refuses: [["ops", /alarmTopicArn: "ops" is not allowed; allowed: an SNS topic ARN/]],
});
