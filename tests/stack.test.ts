import * as assert from "assert";
import { DETAIL_TYPE } from "../handler/events";
import { DEREGISTRATION_DELAY_SECONDS } from "../infra/loadBalancer";
import { functionCode } from "../rehearsal/materialize";
import { ProgramRun, REGION_ZONES, runProgram, subnetsByZone } from "../rehearsal/program";

/** The dev stack (`Pulumi.dev.yaml`) and its variants, declared under Pulumi's runtime mocks. */

const INSTANCE = "aws:ec2/instance:Instance";
const INVOCATION = "aws:lambda/invocation:Invocation";
const ATTACHMENT = "aws:lb/targetGroupAttachment:TargetGroupAttachment";
const TARGET_GROUP = "aws:lb/targetGroup:TargetGroup";
const LISTENER = "aws:lb/listener:Listener";
const LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer";
const RULE = "aws:cloudwatch/eventRule:EventRule";
const EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget";
const PERMISSION = "aws:lambda/permission:Permission";
const FUNCTION = "aws:lambda/function:Function";
const QUEUE = "aws:sqs/queue:Queue";
const RECORD = "aws:route53/record:Record";
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";

describe("the dev stack", () => {
    let run: ProgramRun;
    before(async () => {
        run = await runProgram();
    });

    it("declares no instance: the deploy invocation launches the fleet, and the listener forwards to the target group", () => {
        for (const type of [INSTANCE, ATTACHMENT, "pulumi-nodejs:dynamic:Resource"]) {
            assert.deepStrictEqual(run.ofType(type), [], `no ${type}`);
        }
        const desired = JSON.parse(run.one(INVOCATION, "-deploy").inputs.input).desired;
        assert.deepStrictEqual([desired.zones, desired.instancesPerZone, desired.instanceTypes], [REGION_ZONES, 1, ["t3.micro", "t3a.micro", "t2.micro"]]);
        const targetGroup = run.one(TARGET_GROUP);
        const listener = run.one(LISTENER);
        assert.strictEqual(listener.inputs.port, 80);
        assert.deepStrictEqual(listener.inputs.defaultActions, [{ type: "forward", targetGroupArn: targetGroup.state.arn }]);
        assert.strictEqual(listener.inputs.loadBalancerArn, run.one(LOAD_BALANCER).state.arn);
    });

    it("bakes each zone's subnet and the spot settings into what the handler launches with", async () => {
        const text: string = await (await functionCode(run, "deploy").assets)["__index.js"].text;
        for (const [zone, subnetId] of Object.entries(subnetsByZone(run))) {
            assert.ok(text.includes(zone) && text.includes(subnetId), `the deploy knows ${zone}'s subnet ${subnetId}`);
        }
    });

    it("checks health every 5 s, healthy after 2, and drains well inside the two-minute warning", () => {
        const targetGroup = run.one(TARGET_GROUP);
        assert.strictEqual(targetGroup.inputs.healthCheck.interval, 5);
        assert.strictEqual(targetGroup.inputs.healthCheck.healthyThreshold, 2);
        assert.ok(targetGroup.inputs.healthCheck.timeout < 5, "timeout must be shorter than the interval");
        assert.strictEqual(targetGroup.inputs.deregistrationDelay, DEREGISTRATION_DELAY_SECONDS);
        assert.ok(targetGroup.inputs.deregistrationDelay < 120);
    });

    it("requires IMDSv2 and encrypts the root volume", () => {
        const template = run.one("aws:ec2/launchTemplate:LaunchTemplate");
        assert.strictEqual(template.inputs.metadataOptions.httpTokens, "required");
        assert.deepStrictEqual(template.inputs.blockDeviceMappings.map((m: any) => [m.deviceName, m.ebs.encrypted]), [["/dev/xvda", "true"]]);
        assert.match(template.inputs.imageId, /^resolve:ssm:\/aws\/service\/ami-amazon-linux-latest\/al2023-ami-kernel-default-x86_64$/);
        const userData = Buffer.from(template.inputs.userData, "base64").toString("utf8");
        assert.match(userData, /meta-data\/\$1/);
        assert.match(userData, /instance-id/);
        assert.match(userData, /placement\/availability-zone/);
    });

    it("admits the app port on the instances only from the load balancer's group, and opens no SSH", () => {
        const instanceGroup = run.one("aws:ec2/securityGroup:SecurityGroup", "-instance");
        const albGroup = run.one("aws:ec2/securityGroup:SecurityGroup", "-alb");
        const toInstances = run.ofType(INGRESS).filter((rule) => rule.inputs.securityGroupId === instanceGroup.id);
        assert.deepStrictEqual(toInstances.map((rule) => [rule.inputs.fromPort, rule.inputs.toPort, rule.inputs.referencedSecurityGroupId, rule.inputs.cidrIpv4]), [
            [80, 80, albGroup.id, undefined],
        ]);
        const toAlb = run.ofType(INGRESS).filter((rule) => rule.inputs.securityGroupId === albGroup.id);
        assert.deepStrictEqual(toAlb.map((rule) => [rule.inputs.fromPort, rule.inputs.cidrIpv4]), [[80, "0.0.0.0/0"]], "no certificate, no HTTPS: 443 stays closed");
    });

    it("creates the VPC as an awsx.ec2.Vpc with public subnets only, each at its zone letter's CIDR, and no NAT gateway", () => {
        const vpc = run.one("awsx:ec2:Vpc");
        assert.deepStrictEqual(vpc.inputs.subnetSpecs, [{ type: "Public", cidrBlocks: ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"] }]);
        assert.strictEqual(vpc.inputs.subnetStrategy, "Auto", "awsx honours explicit cidrBlocks only with Auto or Exact");
        assert.deepStrictEqual(vpc.inputs.natGateways, { strategy: "None" });
        assert.deepStrictEqual(vpc.inputs.availabilityZoneNames, REGION_ZONES);
        assert.strictEqual(run.one(TARGET_GROUP).inputs.vpcId, vpc.state.vpcId);
        assert.strictEqual(run.ofType("aws:ec2/natGateway:NatGateway").length, 0);
    });

    it("declares no Route 53 resources and serves the ALB's name over HTTP", () => {
        assert.strictEqual(run.ofType(RECORD).length, 0);
        assert.strictEqual(run.ofType("aws:acm/certificate:Certificate").length, 0);
        assert.strictEqual(run.outputs.url, `http://${run.one(LOAD_BALANCER).state.dnsName}`);
    });

    it("exports url, albDnsName, targetGroupArn, instances, zones, handlerName, logGroupName, dashboardName and fleet", () => {
        const fn = run.one(FUNCTION, "-handler");
        assert.deepStrictEqual(Object.keys(run.outputs).sort(), ["albDnsName", "dashboardName", "fleet", "handlerName", "instances", "logGroupName", "targetGroupArn", "url", "zones"]);
        assert.deepStrictEqual(run.outputs.fleet, {
            region: "us-east-2",
            stack: "spot-availability/dev",
            instanceName: "Prometheus",
            zones: REGION_ZONES,
            instancesPerZone: 1,
            instanceTypes: ["t3.micro", "t3a.micro", "t2.micro"],
            spotProductDescription: "Linux/UNIX",
        });
        assert.deepStrictEqual(run.outputs.instances, JSON.parse(run.one(INVOCATION, "-deploy").state.result).instances, "the deploy invocation's answer");
        assert.deepStrictEqual(Object.keys(run.outputs.instances), ["Prometheus-A", "Prometheus-B", "Prometheus-C"]);
        assert.deepStrictEqual(run.outputs.zones, REGION_ZONES);
        assert.strictEqual(run.outputs.targetGroupArn, run.one(TARGET_GROUP).state.arn);
        assert.strictEqual(run.outputs.handlerName, fn.state.name);
        assert.strictEqual(run.outputs.logGroupName, run.one("aws:cloudwatch/logGroup:LogGroup").state.name);
        assert.strictEqual(fn.inputs.loggingConfig.logGroup, run.outputs.logGroupName);
    });

    it("routes the three EC2 detail-types and a schedule to one encrypted queue, which only these rules may send to", () => {
        const rules = run.ofType(RULE);
        const patterns = rules.filter((rule) => rule.inputs.eventPattern).map((rule) => JSON.parse(rule.inputs.eventPattern));
        assert.ok(patterns.every((pattern) => JSON.stringify(pattern.source) === '["aws.ec2"]'));
        assert.ok(patterns.every((pattern) => JSON.stringify(pattern.account) === '["123456789012"]'), "only this account's instances");
        assert.deepStrictEqual(patterns.map((pattern) => pattern["detail-type"]).sort(), [
            [DETAIL_TYPE.rebalanceRecommendation],
            [DETAIL_TYPE.stateChange],
            [DETAIL_TYPE.interruptionWarning],
        ].sort());
        assert.deepStrictEqual(rules.filter((rule) => rule.inputs.scheduleExpression).map((rule) => rule.inputs.scheduleExpression), ["rate(5 minutes)"]);

        const queue = run.one(QUEUE, "-events");
        assert.strictEqual(queue.inputs.sqsManagedSseEnabled, true);
        const targets = run.ofType(EVENT_TARGET);
        assert.deepStrictEqual(targets.map((t) => t.inputs.rule).sort(), rules.map((r) => r.state.name).sort());
        assert.ok(targets.every((t) => t.inputs.arn === queue.state.arn), "every rule delivers to the queue");
        assert.deepStrictEqual(run.ofType(PERMISSION), [], "nothing invokes the function but the event source mapping");

        const queuePolicy = run.one("aws:sqs/queuePolicy:QueuePolicy");
        assert.strictEqual(queuePolicy.inputs.queueUrl, queue.id);
        const [statement, ...denials] = JSON.parse(queuePolicy.inputs.policy).Statement;
        assert.deepStrictEqual([statement.Effect, statement.Principal, statement.Action, statement.Resource], ["Allow", { Service: "events.amazonaws.com" }, ["sqs:SendMessage"], queue.state.arn]);
        assert.deepStrictEqual([...statement.Condition.ArnEquals["aws:SourceArn"]].sort(), rules.map((r) => r.state.arn).sort());
        assert.deepStrictEqual(denials.map((d: { Sid: string; Effect: string }) => [d.Sid, d.Effect]), [["NoOtherSenders", "Deny"], ["OnlyOverTls", "Deny"]], "who else is refused: queuePolicy.test.ts");
        assert.deepStrictEqual(denials[0].Condition.ArnNotEquals["aws:PrincipalArn"], [run.one("aws:iam/role:Role", "spot-handler").state.arn]);
    });

    it("hands the queue to the function in batches, and dead-letters a message after five failed receives", () => {
        const fn = run.one(FUNCTION, "-handler");
        const queue = run.one(QUEUE, "-events");
        const mapping = run.one("aws:lambda/eventSourceMapping:EventSourceMapping");
        assert.strictEqual(mapping.inputs.eventSourceArn, queue.state.arn);
        assert.strictEqual(mapping.inputs.functionName, fn.state.arn);
        assert.deepStrictEqual(mapping.inputs.functionResponseTypes, ["ReportBatchItemFailures"]);
        assert.ok(mapping.inputs.maximumBatchingWindowInSeconds <= 1, "a batch waits at most a second");
        assert.ok(mapping.inputs.batchSize > 10, "a zone's events fit one batch");
        const concurrency = mapping.inputs.scalingConfig.maximumConcurrency;
        assert.ok(concurrency >= 2 && concurrency <= 10, `bounded, and within a new account's quota of 10: ${concurrency}`);

        const redrive = JSON.parse(queue.inputs.redrivePolicy);
        assert.deepStrictEqual(redrive, { deadLetterTargetArn: run.one(QUEUE, "-dlq").state.arn, maxReceiveCount: 5 });
        assert.ok(queue.inputs.visibilityTimeoutSeconds >= 6 * fn.inputs.timeout, "AWS: at least six times the function's timeout");
    });

    it("runs the function on nodejs22.x, with no reserved concurrency, and a log group with retention", () => {
        const fn = run.one(FUNCTION, "-handler");
        assert.strictEqual(fn.inputs.runtime, "nodejs22.x");
        assert.strictEqual(fn.inputs.handler, "__index.handler");
        assert.strictEqual(fn.inputs.reservedConcurrentExecutions, undefined, "a new account, whose quota is 10, cannot reserve any");
        assert.strictEqual(fn.inputs.deadLetterConfig, undefined, "the queue's redrive dead-letters, not asynchronous invocation");
        assert.strictEqual(run.one("aws:cloudwatch/logGroup:LogGroup").inputs.retentionInDays, 14);
        assert.strictEqual(fn.inputs.role, run.one("aws:iam/role:Role", "spot-handler").state.arn);
    });
});

describe("a stack whose fleet runs in some of the region's zones", () => {
    let run: ProgramRun;
    before(async () => {
        run = await runProgram({ config: { "spot-availability:zones": ["c", "a"] } });
    });

    it("still spans every zone with the VPC and the load balancer", () => {
        const vpc = run.one("awsx:ec2:Vpc");
        assert.deepStrictEqual(vpc.inputs.availabilityZoneNames, REGION_ZONES);
        assert.deepStrictEqual([...run.one(LOAD_BALANCER).inputs.subnets].sort(), [...vpc.state.publicSubnetIds].sort());
    });

    it("runs the fleet, the alarms and the outputs in the configured zones only", () => {
        const desired = JSON.parse(run.one(INVOCATION, "-deploy").inputs.input).desired;
        assert.deepStrictEqual(desired.zones, ["us-east-2a", "us-east-2c"]);
        assert.deepStrictEqual(run.outputs.zones, ["us-east-2a", "us-east-2c"]);
        assert.deepStrictEqual(Object.keys(run.outputs.instances), ["Prometheus-A", "Prometheus-C"]);
        const belowCount = run.ofType("aws:cloudwatch/metricAlarm:MetricAlarm").filter((alarm) => alarm.name.endsWith("-below-count"));
        assert.deepStrictEqual(belowCount.map((alarm) => alarm.name).sort(), ["spot-operations-us-east-2a-below-count", "spot-operations-us-east-2c-below-count"]);
    });

    it("spans a region's standard zones only, not the Local Zones the account opted into", async () => {
        const virginia = await runProgram({ config: { "aws:region": "us-east-1", "spot-availability:zones": [] } });
        const names = ["a", "b", "c", "d", "e", "f"].map((letter) => `us-east-1${letter}`);
        assert.deepStrictEqual(virginia.one("awsx:ec2:Vpc").inputs.availabilityZoneNames, names);
        assert.deepStrictEqual(virginia.outputs.zones, names.slice(0, 3));
    });

    it("takes the first zoneCount zones by name when zones is empty", async () => {
        const two = await runProgram({ config: { "spot-availability:zones": [], "spot-availability:zoneCount": 2 } });
        assert.deepStrictEqual(two.outputs.zones, ["us-east-2a", "us-east-2b"]);
        assert.deepStrictEqual(two.one("awsx:ec2:Vpc").inputs.availabilityZoneNames, REGION_ZONES);
    });
});

describe("the deploy invocation, in the order pulumi up runs it", () => {
    let run: ProgramRun;
    before(async () => {
        run = await runProgram();
    });

    it("has a stable identity: no triggers, no qualifier, and the deploy function's name", () => {
        const invocation = run.one(INVOCATION, "-deploy");
        assert.strictEqual(invocation.name, "spot-handler-deploy");
        assert.strictEqual(invocation.inputs.triggers, undefined);
        assert.strictEqual(invocation.inputs.qualifier, undefined);
        assert.strictEqual(invocation.inputs.functionName, run.one(FUNCTION, "-deploy").state.name);
    });

    it("runs after both functions have the new settings, and after everything the instances use", () => {
        const dependsOn = run.one(INVOCATION, "-deploy").dependsOn;
        for (const name of ["spot-handler", "spot-handler-deploy", "spot-network", "spot-instances-instance", "spot-instances-instance-app-80", "spot-instances-alb-to-instance-80", "spot-instances", "spot-lb", "spot-lb-alb"]) {
            assert.ok(dependsOn.includes(name), `the invocation depends on ${name}: ${dependsOn.join(", ")}`);
        }
        assert.ok(!dependsOn.includes("spot-lb-http"), "not on the listeners: they follow it");
    });

    it("carries the release settings in the desired fleet", async () => {
        const tuned = await runProgram({ config: { "spot-availability:releaseBatchPercent": 50, "spot-availability:releaseHealthTimeoutSeconds": 120 } });
        assert.deepStrictEqual(JSON.parse(tuned.one(INVOCATION, "-deploy").inputs.input).desired.release, { batchPercent: 50, healthTimeoutSeconds: 120 });
        assert.deepStrictEqual(JSON.parse(run.one(INVOCATION, "-deploy").inputs.input).desired.release, { batchPercent: 100, healthTimeoutSeconds: 300 });
    });

    it("comes before the listeners, which switch target group only once the fleet serves in it", () => {
        for (const listener of run.ofType(LISTENER)) {
            assert.ok(listener.dependsOn.includes("spot-handler-deploy"), `${listener.name} depends on the invocation: ${listener.dependsOn.join(", ")}`);
        }
    });

    it("moves the listeners out of the load balancer component by alias, so existing stacks keep them", () => {
        const [http] = run.ofType(LISTENER);
        assert.strictEqual(http.name, "spot-lb-http");
        const parents = http.formerParents.map((urn) => urn.split("::").slice(-2).join("::"));
        assert.ok(parents.includes("spot-availability:index:SpotWebService$spot-availability:index:LoadBalancer::spot-lb"), `aliased to its former parent: ${parents.join(", ")}`);
    });
});

describe("a stack with domainName", () => {
    let run: ProgramRun;
    before(async () => {
        run = await runProgram({ config: { "spot-availability:domainName": "shop.example.com" } });
    });

    it("aliases the domain to the ALB in the parent hosted zone", () => {
        const alias = run.ofType(RECORD).find((record) => record.inputs.type === "A");
        assert.ok(alias, "an A alias record");
        assert.strictEqual(alias.inputs.zoneId, "Z0123456789EXAMPLE");
        assert.strictEqual(alias.inputs.name, "shop.example.com");
        const alb = run.one(LOAD_BALANCER);
        assert.deepStrictEqual(alias.inputs.aliases, [{ name: alb.state.dnsName, zoneId: alb.state.zoneId, evaluateTargetHealth: true }]);
        assert.strictEqual(run.outputs.url, "https://shop.example.com");
    });

    it("serves HTTPS with the DNS-validated certificate and redirects HTTP to it", () => {
        const certificate = run.one("aws:acm/certificate:Certificate");
        assert.strictEqual(certificate.inputs.domainName, "shop.example.com");
        assert.strictEqual(certificate.inputs.validationMethod, "DNS");
        const validation = run.one("aws:acm/certificateValidation:CertificateValidation");
        const validationRecord = run.ofType(RECORD).find((record) => record.inputs.type === "CNAME");
        assert.ok(validationRecord);
        assert.deepStrictEqual(validation.inputs.validationRecordFqdns, [validationRecord.state.fqdn]);
        assert.strictEqual(validationRecord.inputs.records[0], certificate.state.domainValidationOptions[0].resourceRecordValue);

        const https = run.one(LISTENER, "-https");
        assert.strictEqual(https.inputs.protocol, "HTTPS");
        assert.strictEqual(https.inputs.port, 443);
        // The listener waits for validation: it takes the validation's ARN, not the bare certificate's.
        assert.strictEqual(https.inputs.certificateArn, validation.id);
        assert.strictEqual(https.inputs.defaultActions[0].targetGroupArn, run.one(TARGET_GROUP).state.arn);

        assert.strictEqual(https.inputs.sslPolicy, "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09");
        const http = run.one(LISTENER, "-http");
        assert.deepStrictEqual(http.inputs.defaultActions, [{ type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } }]);
        const albGroup = run.one("aws:ec2/securityGroup:SecurityGroup", "-alb");
        assert.deepStrictEqual(run.ofType(INGRESS).filter((rule) => rule.inputs.securityGroupId === albGroup.id).map((rule) => rule.inputs.fromPort), [80, 443]);
    });
});

describe("a stack on existing subnets", () => {
    it("reads the zones from the subnets and creates no VPC", async () => {
        const run = await runProgram({
            config: {
                "spot-availability:zones": [],
                "spot-availability:subnetIds": ["subnet-0bbbbbbbbbbbbbbb2", "subnet-0aaaaaaaaaaaaaaa1"],
            },
        });
        assert.strictEqual(run.ofType("awsx:ec2:Vpc").length, 0);
        assert.deepStrictEqual(run.outputs.zones, ["us-east-2a", "us-east-2b"]);
        const deploy = await (await functionCode(run, "deploy").assets)["__index.js"].text;
        assert.ok(deploy.includes('["us-east-2a"]: "subnet-0aaaaaaaaaaaaaaa1", ["us-east-2b"]: "subnet-0bbbbbbbbbbbbbbb2"'), "each zone's instances go to its subnet");
        assert.strictEqual(run.one(TARGET_GROUP).inputs.vpcId, "vpc-0123456789abcdef0");
    });

    it("keeps instancesPerZone instances in each zone, and opens SSH only with keyName and sshCidr", async () => {
        const run = await runProgram({
            config: {
                "spot-availability:instancesPerZone": 2,
                "spot-availability:keyName": "ops",
                "spot-availability:sshCidr": "203.0.113.7/32",
                "spot-availability:spotMaxPrice": "0.005",
            },
        });
        assert.deepStrictEqual(Object.keys(run.outputs.instances).sort(), [
            "Prometheus-A", "Prometheus-A-2", "Prometheus-B", "Prometheus-B-2", "Prometheus-C", "Prometheus-C-2",
        ]);
        assert.strictEqual(JSON.parse(run.one(INVOCATION, "-deploy").inputs.input).desired.instancesPerZone, 2);
        const deploy = await (await functionCode(run, "deploy").assets)["__index.js"].text;
        assert.ok(deploy.includes('spotMaxPrice = "0.005"'), "launches carry the max price");
        const ssh = run.ofType(INGRESS).filter((rule) => rule.inputs.fromPort === 22);
        assert.deepStrictEqual(ssh.map((rule) => rule.inputs.cidrIpv4), ["203.0.113.7/32"]);
        assert.strictEqual(run.one("aws:ec2/launchTemplate:LaunchTemplate").inputs.keyName, "ops");
    });
});
