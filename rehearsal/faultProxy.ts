import { Answer, AwsProxy, ec2Error, elbError, escapeXml, EC2_VERSION, listParam, RecordedCall, WRITE_ACTIONS } from "./awsProxy";

/**
 * A loopback proxy in front of moto for what moto cannot do: capacity errors per zone, type and
 * market; throttling; a failing RegisterTargets; spot prices per zone; target health overrides;
 * a release whose instances never pass the health check; and the ClientToken idempotency of RunInstances that AWS documents (same token and parameters:
 * the same reservation back). It also records every call, so tests can count and inspect them.
 */

export type { RecordedCall } from "./awsProxy";
export { WRITE_ACTIONS } from "./awsProxy";

export interface CapacityFault {
    zone?: string;
    instanceType?: string;
    market?: "spot" | "on-demand";
    code: "InsufficientInstanceCapacity" | "InsufficientCapacity" | "UnfulfillableCapacity" | "SpotMaxPriceTooLow" | "MaxSpotInstanceCountExceeded" | "Unsupported";
    /** The pools still have room for this many launches; the fault answers every one after them. */
    room?: number;
}

/**
 * A launch template version whose application never starts: its instances run, but the target
 * group never finds them healthy, and their console shows why. As an ALB reports such a target:
 * `initial` while its first health checks run, then `unhealthy` once they have failed.
 */
export interface FailingVersion {
    launchTemplateId: string;
    version: number;
    /** What GetConsoleOutput answers for its instances, line by line. */
    consoleOutput: string[];
    /** Seconds from registration until the checks have failed: the dev stack's unhealthy threshold × interval (2 × 5 s) unless set. */
    failedAfterSeconds?: number;
}

/** An error answered in place of a call, a number of times: a refusal IAM propagation explains, for example. */
export interface ScriptedError {
    action: string;
    status: number;
    code: string;
    message: string;
    /** How many more calls of `action` get it. */
    times: number;
}

/** What EC2 answers while a new instance profile has not propagated: https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency */
export const PROFILE_NOT_PROPAGATED = { status: 400, code: "InvalidParameterValue", message: "Value (arn:aws:iam::123456789012:instance-profile/spot-instances) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN" };

/** What EC2 answers while a freshly attached policy has not propagated. */
export const POLICY_NOT_PROPAGATED = { status: 403, code: "UnauthorizedOperation", message: "You are not authorized to perform this operation." };

/** What an instance's console shows when the application's unit fails at boot, as systemd logs it to the serial console. */
export const FAILED_START_CONSOLE_OUTPUT = [
    "[   12.341567] cloud-init[1602]: + systemctl enable --now spot-page.service",
    "[   12.873310] python3[1711]: OSError: [Errno 98] Address already in use",
    "[   12.874022] systemd[1]: spot-page.service: Main process exited, code=exited, status=1/FAILURE",
    "[   12.874311] systemd[1]: spot-page.service: Failed with result 'exit-code'.",
];

/** ELB's answers for a target whose health checks run, then have failed. https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetHealth.html */
const INITIAL_HEALTH_CHECKS = { state: "initial", reason: "Elb.InitialHealthChecking", description: "Initial health checks in progress" };
const FAILED_HEALTH_CHECKS = { state: "unhealthy", reason: "Target.FailedHealthChecks", description: "Health checks failed" };
const DEFAULT_FAILED_AFTER_SECONDS = 10;

export class FaultProxy extends AwsProxy {
    /** Subnet id → zone, so RunInstances faults can be set per zone. */
    subnetZones: Record<string, string> = {};
    capacityFaults: CapacityFault[] = [];
    /** Action → how many more times to answer it as throttled. */
    throttles: Record<string, number> = {};
    /** How many more RegisterTargets calls fail. */
    failingRegistrations = 0;
    /** Spot price by zone, for every type or by type; undefined lets moto answer (0.00001 everywhere). */
    spotPrices: Record<string, number | Record<string, number>> | undefined;
    /** Target health to report instead of moto's, by instance id. */
    targetHealth: Record<string, string> = {};
    /** A new account without EC2 Spot's service-linked role: every spot launch is refused as AWS refuses it. */
    spotRoleMissing = false;
    failingVersions: FailingVersion[] = [];
    scriptedErrors: ScriptedError[] = [];
    /**
     * How many more DescribeInstances answers that list a shutting-down or terminated instance show
     * it as `pending`: what an eventually consistent read right after TerminateInstances can return.
     */
    staleReads = 0;
    /** Runs before each write is forwarded, so a test can observe the world at every step the handler takes. */
    beforeWrite: ((call: RecordedCall) => Promise<void>) | undefined;
    /** Instance id → the launch template and version RunInstances launched it from (the tags EC2 sets). */
    private readonly launchedFrom = new Map<string, { launchTemplateId: string; version: number }>();
    /** Instance id → when RegisterTargets last registered it (ms). */
    private readonly registeredAt = new Map<string, number>();

    reset(): void {
        super.reset();
        this.subnetZones = {};
        this.capacityFaults = [];
        this.throttles = {};
        this.failingRegistrations = 0;
        this.spotPrices = undefined;
        this.targetHealth = {};
        this.spotRoleMissing = false;
        this.failingVersions = [];
        this.scriptedErrors = [];
        this.staleReads = 0;
        this.launchedFrom.clear();
        this.registeredAt.clear();
        this.beforeWrite = undefined;
    }

    protected async answer(call: RecordedCall, forward: () => Promise<Answer>): Promise<Answer> {
        const { service, action, params } = call;
        if (WRITE_ACTIONS.includes(action)) {
            await this.beforeWrite?.(call);
        }
        const injected = this.fault(service, action, params);
        if (injected) {
            call.injected = injected.body.match(/<Code>([^<]+)<\/Code>/)?.[1] ?? "answer";
            return injected;
        }
        if (action === "RunInstances") {
            const answer = await this.idempotentRunInstances(params, forward);
            this.recordLaunches(answer);
            return answer;
        }
        if (action === "RegisterTargets") {
            for (const id of listParam(params, /^Targets\.member\.\d+\.Id$/)) {
                this.registeredAt.set(id, Date.now());
            }
        }
        if (action === "DescribeInstances" && this.staleReads > 0) {
            const answer = await forward();
            const stale = answer.body.replace(/<instanceState>\s*<code>(32|48)<\/code>\s*<name>(shutting-down|terminated)<\/name>\s*<\/instanceState>/g, "<instanceState><code>0</code><name>pending</name></instanceState>");
            this.staleReads -= stale === answer.body ? 0 : 1;
            return { ...answer, body: stale };
        }
        if (action === "DescribeTargetHealth" && (Object.keys(this.targetHealth).length > 0 || this.failingVersions.length > 0)) {
            const answer = await forward();
            return { ...answer, body: this.overrideTargetHealth(answer.body) };
        }
        const failing = action === "GetConsoleOutput" ? this.failingVersionOf(params.InstanceId) : undefined;
        if (failing !== undefined) {
            return consoleOutput(params.InstanceId, failing.consoleOutput);
        }
        return forward();
    }

    private fault(service: RecordedCall["service"], action: string, params: Record<string, string>): Answer | undefined {
        const scripted = this.scriptedErrors.find((error) => error.action === action && error.times > 0);
        if (scripted !== undefined) {
            scripted.times -= 1;
            return service === "elbv2" ? elbError(scripted.status, scripted.code, scripted.message) : ec2Error(scripted.status, scripted.code, scripted.message);
        }
        if ((this.throttles[action] ?? 0) > 0) {
            this.throttles[action] -= 1;
            return service === "elbv2" ? elbError(400, "Throttling", "Rate exceeded") : ec2Error(503, "RequestLimitExceeded", "Request limit exceeded.");
        }
        if (action === "RegisterTargets" && this.failingRegistrations > 0) {
            this.failingRegistrations -= 1;
            return elbError(400, "InvalidConfigurationRequest", "injected: RegisterTargets fails");
        }
        if (action === "RunInstances") {
            const zone = this.subnetZones[params.SubnetId];
            const instanceType = params.InstanceType;
            const market = params["InstanceMarketOptions.MarketType"] === "spot" ? "spot" : "on-demand";
            if (this.spotRoleMissing && market === "spot") {
                return ec2Error(403, "AuthFailure.ServiceLinkedRoleCreationNotPermitted", "The provided credentials do not have permission to create the service-linked role for EC2 Spot Instances.");
            }
            const fault = this.capacityFaults.find(
                (f) => (f.zone === undefined || f.zone === zone) && (f.instanceType === undefined || f.instanceType === instanceType) && (f.market === undefined || f.market === market),
            );
            if (fault?.room !== undefined && fault.room > 0) {
                fault.room -= 1;
                return undefined;
            }
            if (fault) {
                // AWS answers capacity errors with HTTP 500.
                return ec2Error(500, fault.code, `injected: no ${market} ${instanceType} capacity in ${zone}`);
            }
        }
        if (action === "DescribeSpotPriceHistory" && this.spotPrices !== undefined) {
            return this.spotPriceHistory(params);
        }
        return undefined;
    }

    private spotPriceHistory(params: Record<string, string>): Answer {
        const types = Object.entries(params).filter(([key]) => key.startsWith("InstanceType.")).map(([, value]) => value);
        const description = params["ProductDescription.1"] ?? "Linux/UNIX";
        const items = Object.entries(this.spotPrices ?? {}).flatMap(([zone, prices]) =>
            types.filter((type) => typeof prices === "number" || type in prices).map((type) => ({ type, price: typeof prices === "number" ? prices : prices[type] })).map(({ type, price }) =>
                `<item><instanceType>${type}</instanceType><productDescription>${escapeXml(description)}</productDescription><spotPrice>${price}</spotPrice><timestamp>${new Date().toISOString()}</timestamp><availabilityZone>${zone}</availabilityZone></item>`));
        return {
            status: 200,
            body: `<?xml version="1.0" encoding="UTF-8"?><DescribeSpotPriceHistoryResponse xmlns="http://ec2.amazonaws.com/doc/${EC2_VERSION}/"><requestId>fault-proxy</requestId><spotPriceHistorySet>${items.join("")}</spotPriceHistorySet><nextToken></nextToken></DescribeSpotPriceHistoryResponse>`,
        };
    }

    /** Every instance of a launch lists the same template and version: RunInstances launches from one. */
    private recordLaunches(answer: Answer): void {
        const launchTemplateId = /<key>aws:ec2launchtemplate:id<\/key>\s*<value>([^<]+)<\/value>/.exec(answer.body)?.[1];
        const version = /<key>aws:ec2launchtemplate:version<\/key>\s*<value>([^<]+)<\/value>/.exec(answer.body)?.[1];
        if (answer.status !== 200 || launchTemplateId === undefined || version === undefined) {
            return;
        }
        for (const [, id] of answer.body.matchAll(/<instanceId>(i-[0-9a-f]+)<\/instanceId>/g)) {
            this.launchedFrom.set(id, { launchTemplateId, version: Number(version) });
        }
    }

    private failingVersionOf(instanceId: string): FailingVersion | undefined {
        const launched = this.launchedFrom.get(instanceId);
        return launched && this.failingVersions.find((failing) => failing.launchTemplateId === launched.launchTemplateId && failing.version === launched.version);
    }

    private overrideTargetHealth(xml: string): string {
        return xml.replace(/<member>((?:(?!<\/member>)[\s\S])*?<Id>(i-[0-9a-f]+)<\/Id>[\s\S]*?)<\/member>/g, (member, _inner, id: string) => {
            const failing = this.failingVersionOf(id);
            if (failing !== undefined) {
                const checking = Date.now() - (this.registeredAt.get(id) ?? 0) < (failing.failedAfterSeconds ?? DEFAULT_FAILED_AFTER_SECONDS) * 1000;
                const { state, reason, description } = checking ? INITIAL_HEALTH_CHECKS : FAILED_HEALTH_CHECKS;
                return member.replace(/<TargetHealth>[\s\S]*?<\/TargetHealth>/, `<TargetHealth><State>${state}</State><Reason>${reason}</Reason><Description>${description}</Description></TargetHealth>`);
            }
            const state = this.targetHealth[id];
            return state === undefined ? member : member.replace(/(<TargetHealth>[\s\S]*?<State>)[^<]*(<\/State>)/, `$1${state}$2`);
        });
    }
}

function consoleOutput(instanceId: string, lines: string[]): Answer {
    const output = Buffer.from(lines.join("\n") + "\n", "utf8").toString("base64");
    return {
        status: 200,
        body: `<?xml version="1.0" encoding="UTF-8"?><GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/${EC2_VERSION}/"><requestId>fault-proxy</requestId><instanceId>${escapeXml(instanceId)}</instanceId><timestamp>${new Date().toISOString()}</timestamp><output>${output}</output></GetConsoleOutputResponse>`,
    };
}
