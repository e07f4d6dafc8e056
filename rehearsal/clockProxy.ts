import { createHash, randomUUID } from "crypto";
import { InstanceState } from "../handler/events";
import { TargetState } from "../handler/model";
import { Answer, AwsProxy, ec2Error, ELB_VERSION, elbError, listParam, RecordedCall } from "./awsProxy";
import { Activity, VirtualClock } from "./clock";
import { Market, ModelledFleet } from "./fleet";
import { ModelledQueue } from "./queue";

/**
 * The proxy in front of moto on AWS's clock. moto keeps what EC2 stores (instances, tags, the
 * launch template); the model decides what time changes: an instance's state (pending until the
 * modelled running time, shutting-down and terminated at the interruption), every target's
 * health and draining, each pool's capacity, and how long each call takes to answer. SQS calls
 * (a function's delayed messages to its own queue) go to the modelled queues.
 */

/** The access key AWS's own machinery (the Auto Scaling group baseline) signs with: not the policy's calls. */
export const AWS_INTERNAL_ACCESS_KEY = "aws-internal";

const STATE_CODES: Record<InstanceState, number> = { pending: 0, running: 16, "shutting-down": 32, terminated: 48, stopping: 64, stopped: 80 };

const TARGET_REASONS: Partial<Record<TargetState, string>> = {
    initial: "Elb.InitialHealthChecking",
    unhealthy: "Target.FailedHealthChecks",
    unused: "Target.InvalidState",
    draining: "Target.DeregistrationInProgress",
};

function elbAnswer(action: string, result = ""): Answer {
    return {
        status: 200,
        body: `<${action}Response xmlns="http://elasticloadbalancing.amazonaws.com/doc/${ELB_VERSION}/"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`,
    };
}

function sqsAnswer(status: number, body: Record<string, unknown>): Answer {
    return { status, body: JSON.stringify(body), contentType: "application/x-amz-json-1.0" };
}

/** The top-level `<item>`s of an XML list (`instancesSet`): each one's text, nested items included. */
function listItems(xml: string, list: string): string[] {
    const items: string[] = [];
    const token = new RegExp(`<(/?)item>|</${list}>`, "g");
    token.lastIndex = Math.max(0, xml.indexOf(`<${list}>`));
    let depth = 0;
    let from = 0;
    for (let match = token.exec(xml); match !== null && match[0] !== `</${list}>`; match = token.exec(xml)) {
        if (match[1] === "" && depth++ === 0) {
            from = match.index;
        } else if (match[1] === "/" && --depth === 0) {
            items.push(xml.slice(from, token.lastIndex));
        }
    }
    return items;
}

/**
 * Each instance of a RunInstances answer with the launch template version it runs. moto resolves
 * `$Default`, `$Latest` or a number against the template (whose versions, default included, it
 * keeps: DescribeLaunchTemplates, CreateLaunchTemplateVersion and ModifyLaunchTemplate pass
 * through) and tags the instance `aws:ec2launchtemplate:version`, as EC2 does.
 */
export function launchedVersions(body: string): { id: string; version: number }[] {
    return listItems(body, "instancesSet").map((item) => ({
        id: /<instanceId>(i-[0-9a-f]+)<\/instanceId>/.exec(item)?.[1] as string,
        version: Number(/<key>aws:ec2launchtemplate:version<\/key>\s*<value>(\d+)<\/value>/.exec(item)?.[1] ?? 1),
    }));
}

export class ClockProxy extends AwsProxy {
    /** Answers decided and waiting for their modelled latency to pass. */
    held = 0;
    /** Subnet id → zone: where a RunInstances lands. */
    subnetZones: Record<string, string> = {};
    /** The stack's target group; the model holds its targets. */
    targetGroupArn = "";
    /** Queue URL → the modelled queue a function may send to. */
    readonly queues = new Map<string, ModelledQueue>();
    constructor(
        upstream: string,
        private readonly clock: VirtualClock,
        private readonly fleet: ModelledFleet,
        private readonly activity: Activity,
    ) {
        super(upstream);
    }

    /** Calls the policy made (AWS's own are not counted). */
    policyCalls(): RecordedCall[] {
        return this.calls.filter((call) => call.accessKeyId !== AWS_INTERNAL_ACCESS_KEY);
    }

    protected async answer(call: RecordedCall, forward: () => Promise<Answer>): Promise<Answer> {
        const arrived = this.clock.now;
        this.activity.note();
        const answer = await this.activity.during(Promise.resolve(this.decide(call, forward)));
        // The caller hears back after the modelled latency of the call.
        const latency = call.action === "RunInstances" ? this.fleet.model.runInstancesLatencyS : this.fleet.model.apiLatencyS;
        this.held++;
        await new Promise<void>((resolve) => this.clock.at(arrived + latency, resolve));
        this.held--;
        this.activity.note();
        return answer;
    }

    private decide(call: RecordedCall, forward: () => Promise<Answer>): Promise<Answer> | Answer {
        const { service, action, params } = call;
        if (service === "sqs") {
            return this.sqs(action, params);
        }
        if (service === "elbv2") {
            return this.targetGroup(action, params);
        }
        switch (action) {
            case "RunInstances":
                return this.runInstances(params, forward);
            case "DescribeInstances":
                return this.describeInstances(params, forward);
            case "TerminateInstances":
                return forward().then((answer) => {
                    if (answer.status === 200) {
                        listParam(params, /^InstanceId\.\d+$/).filter((id) => this.fleet.instances.has(id)).forEach((id) => this.fleet.terminate(id));
                    }
                    return answer;
                });
            default:
                return forward();
        }
    }

    private async runInstances(params: Record<string, string>, forward: () => Promise<Answer>): Promise<Answer> {
        const zone = this.subnetZones[params.SubnetId];
        const instanceType = params.InstanceType;
        const market: Market = params["InstanceMarketOptions.MarketType"] === "spot" ? "spot" : "on-demand";
        if (zone === undefined || instanceType === undefined) {
            return ec2Error(400, "InvalidParameterCombination", "the rehearsal places a launch by its SubnetId and InstanceType; give both");
        }
        const pool = { zone, instanceType, market };
        if (!this.fleet.hasCapacity(pool)) {
            // AWS answers capacity errors with HTTP 500.
            return market === "spot"
                ? ec2Error(500, "InsufficientInstanceCapacity", "There is no Spot capacity available that matches your request.")
                : ec2Error(500, "InsufficientInstanceCapacity", `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${zone}).`);
        }
        const answer = await this.idempotentRunInstances(params, forward);
        if (answer.status === 200) {
            for (const { id, version } of launchedVersions(answer.body)) {
                this.fleet.launch(id, pool, version);
            }
        }
        return answer;
    }

    /** moto's instances with the modelled state and launch time. */
    private async describeInstances(params: Record<string, string>, forward: () => Promise<Answer>): Promise<Answer> {
        if (Object.entries(params).some(([key, value]) => /^Filter\.\d+\.Name$/.test(key) && value === "instance-state-name")) {
            return ec2Error(400, "InvalidParameterValue", "the rehearsal models instance states itself and cannot filter on instance-state-name; filter the answer instead");
        }
        const answer = await forward();
        if (answer.status !== 200) {
            return answer;
        }
        const sameInstance = "((?:(?!<instanceId>)[\\s\\S])*?)";
        const body = answer.body
            .replace(new RegExp(`<instanceId>(i-[0-9a-f]+)</instanceId>${sameInstance}<instanceState><code>\\d+</code><name>[^<]*</name></instanceState>`, "g"), (whole, id: string, between: string) => {
                const state = this.fleet.stateAt(id);
                return state === undefined ? whole : `<instanceId>${id}</instanceId>${between}<instanceState><code>${STATE_CODES[state]}</code><name>${state}</name></instanceState>`;
            })
            .replace(new RegExp(`<instanceId>(i-[0-9a-f]+)</instanceId>${sameInstance}<launchTime>[^<]*</launchTime>`, "g"), (whole, id: string, between: string) => {
                const launchedAt = this.fleet.instances.get(id)?.launchedAt;
                return launchedAt === undefined || !Number.isFinite(launchedAt) ? whole : `<instanceId>${id}</instanceId>${between}<launchTime>${this.clock.dateAt(launchedAt).toISOString()}</launchTime>`;
            });
        return { ...answer, body };
    }

    /** The stack's target group, wholly from the model. */
    private targetGroup(action: string, params: Record<string, string>): Answer {
        if (params.TargetGroupArn !== this.targetGroupArn) {
            return elbError(400, "TargetGroupNotFound", `One or more target groups not found: ${params.TargetGroupArn}`);
        }
        const ids = listParam(params, /^Targets\.member\.\d+\.Id$/);
        switch (action) {
            case "RegisterTargets": {
                // RegisterTargets needs the instance running: https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_RegisterTargets.html
                const notRunning = ids.filter((id) => this.fleet.stateAt(id) !== "running");
                if (notRunning.length > 0) {
                    return elbError(400, "InvalidTarget", `The following targets are not in a running state and cannot be registered: ${notRunning.map((id) => `'${id}'`).join(", ")}`);
                }
                ids.forEach((id) => this.fleet.register(id));
                return elbAnswer(action);
            }
            case "DeregisterTargets":
                ids.filter((id) => this.fleet.instances.has(id)).forEach((id) => this.fleet.deregister(id));
                return elbAnswer(action);
            case "DescribeTargetHealth": {
                // Asked about given targets, AWS answers for each of them: one not in the group is unused, not registered.
                const asked = ids.length === 0 ? this.fleet.targets() : ids.map((id) => ({ id, state: this.fleet.targetStateAt(id) }));
                const members = asked.map(({ id, state }) => {
                    const reason = state === undefined ? "Target.NotRegistered" : TARGET_REASONS[state];
                    return `<member><HealthCheckPort>traffic-port</HealthCheckPort><Target><Id>${id}</Id><Port>80</Port></Target><TargetHealth><State>${state ?? "unused"}</State>${reason === undefined ? "" : `<Reason>${reason}</Reason>`}</TargetHealth></member>`;
                });
                return elbAnswer(action, `<TargetHealthDescriptions>${members.join("")}</TargetHealthDescriptions>`);
            }
            default:
                return elbError(400, "InvalidAction", `the rehearsal models ${action} nowhere`);
        }
    }

    private sqs(action: string, params: Record<string, string>): Answer {
        const queue = this.queues.get(params.QueueUrl);
        if (queue === undefined) {
            return sqsAnswer(400, { __type: "com.amazonaws.sqs#QueueDoesNotExist", message: `The specified queue does not exist: ${params.QueueUrl}` });
        }
        const sent = (body: string, delay: string | undefined) => ({ MessageId: queue.send(body, Number(delay ?? 0)), MD5OfMessageBody: createHash("md5").update(body).digest("hex") });
        switch (action) {
            case "SendMessage":
                return sqsAnswer(200, sent(params.MessageBody, params.DelaySeconds));
            case "SendMessageBatch": {
                const entries: { Id: string; MessageBody: string; DelaySeconds?: number }[] = JSON.parse(params.Entries);
                return sqsAnswer(200, { Successful: entries.map((entry) => ({ Id: entry.Id, ...sent(entry.MessageBody, entry.DelaySeconds?.toString()) })), Failed: [] });
            }
            default:
                return sqsAnswer(400, { __type: "com.amazonaws.sqs#UnsupportedOperation", message: `the rehearsal's queues take SendMessage and SendMessageBatch, not ${action}` });
        }
    }
}
