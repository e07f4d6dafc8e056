import { createHash } from "crypto";
import * as http from "http";
import * as net from "net";

/**
 * A loopback proxy in front of moto for what moto cannot do: capacity errors per zone, type and
 * market; throttling; a failing RegisterTargets; spot prices per zone; target health overrides;
 * and the ClientToken idempotency of RunInstances that AWS documents (same token and parameters:
 * the same reservation back). It also records every call, so tests can count and inspect them.
 */

export interface RecordedCall {
    service: "ec2" | "elbv2" | "other";
    action: string;
    params: Record<string, string>;
    /** What the proxy answered itself, if it did not forward. */
    injected?: string;
    /** The HTTP status the caller got. */
    status?: number;
}

export interface CapacityFault {
    zone?: string;
    instanceType?: string;
    market?: "spot" | "on-demand";
    code: "InsufficientInstanceCapacity" | "SpotMaxPriceTooLow" | "MaxSpotInstanceCountExceeded" | "Unsupported";
}

const EC2_VERSION = "2016-11-15";
const ELB_VERSION = "2015-12-01";

/** Calls that change something in AWS. */
export const WRITE_ACTIONS = ["RunInstances", "TerminateInstances", "CreateTags", "RegisterTargets", "DeregisterTargets", "RequestSpotInstances"];

function readBody(req: http.IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        req.on("data", (chunk) => chunks.push(chunk));
        req.on("end", () => resolve(Buffer.concat(chunks)));
        req.on("error", reject);
    });
}

function escapeXml(text: string): string {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

interface Answer {
    status: number;
    body: string;
}

function ec2Error(status: number, code: string, message: string): Answer {
    return {
        status,
        body: `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>`,
    };
}

function elbError(status: number, code: string, message: string): Answer {
    return {
        status,
        body: `<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/${ELB_VERSION}/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>`,
    };
}

export class FaultProxy {
    readonly calls: RecordedCall[] = [];
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

    private readonly reservations = new Map<string, { fingerprint: string; answer: Promise<Answer> }>();
    private server: http.Server | undefined;
    private readonly sockets = new Set<net.Socket>();

    constructor(private readonly upstream: string) {}

    reset(): void {
        this.calls.length = 0;
        this.subnetZones = {};
        this.capacityFaults = [];
        this.throttles = {};
        this.failingRegistrations = 0;
        this.spotPrices = undefined;
        this.targetHealth = {};
        this.reservations.clear();
    }

    callsTo(action: string): RecordedCall[] {
        return this.calls.filter((call) => call.action === action);
    }

    writeCalls(): RecordedCall[] {
        return this.calls.filter((call) => WRITE_ACTIONS.includes(call.action));
    }

    listen(): Promise<string> {
        this.server = http.createServer((req, res) => {
            this.handle(req)
                .then(({ status, body, call }) => {
                    call.status = status;
                    res.writeHead(status, { "content-type": "text/xml" });
                    res.end(body);
                })
                .catch((error: Error) => {
                    res.writeHead(502, { "content-type": "text/plain" });
                    res.end(`fault proxy: ${error.message}`);
                });
        });
        this.server.on("connection", (socket) => {
            this.sockets.add(socket);
            socket.on("close", () => this.sockets.delete(socket));
        });
        return new Promise((resolve) => {
            this.server?.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(this.server?.address() as net.AddressInfo).port}`));
        });
    }

    close(): Promise<void> {
        for (const socket of this.sockets) {
            socket.destroy();
        }
        return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    }

    private async handle(req: http.IncomingMessage): Promise<Answer & { call: RecordedCall }> {
        const body = await readBody(req);
        const params = Object.fromEntries(new URLSearchParams(body.toString("utf8")));
        const action = params.Action ?? "";
        const service = params.Version === EC2_VERSION ? "ec2" : params.Version === ELB_VERSION ? "elbv2" : "other";
        const call: RecordedCall = { service, action, params };
        this.calls.push(call);
        return { ...(await this.answer(req, body, call)), call };
    }

    private async answer(req: http.IncomingMessage, body: Buffer, call: RecordedCall): Promise<Answer> {
        const { service, action, params } = call;
        const forward = () => this.forward(req, body);
        const injected = this.fault(service, action, params);
        if (injected) {
            call.injected = injected.body.match(/<Code>([^<]+)<\/Code>/)?.[1] ?? "answer";
            return injected;
        }
        if (action === "RunInstances" && params.ClientToken) {
            return this.idempotentRunInstances(params, forward);
        }
        if (action === "DescribeTargetHealth" && Object.keys(this.targetHealth).length > 0) {
            const answer = await forward();
            return { ...answer, body: this.overrideTargetHealth(answer.body) };
        }
        return forward();
    }

    private fault(service: RecordedCall["service"], action: string, params: Record<string, string>): Answer | undefined {
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
            const fault = this.capacityFaults.find(
                (f) => (f.zone === undefined || f.zone === zone) && (f.instanceType === undefined || f.instanceType === instanceType) && (f.market === undefined || f.market === market),
            );
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

    /** AWS: a repeated ClientToken with the same parameters returns the first reservation; with others, an error. */
    private idempotentRunInstances(params: Record<string, string>, forward: () => Promise<Answer>): Promise<Answer> {
        const fingerprint = createHash("sha256").update(JSON.stringify(Object.entries(params).filter(([key]) => key !== "ClientToken").sort())).digest("hex");
        const previous = this.reservations.get(params.ClientToken);
        if (previous) {
            if (previous.fingerprint !== fingerprint) {
                return Promise.resolve(ec2Error(400, "IdempotentParameterMismatch", "The client token was used with different parameters"));
            }
            return previous.answer;
        }
        const answer = forward().then((result) => {
            if (result.status !== 200) {
                // A failed launch reserves nothing: the same token may try again.
                this.reservations.delete(params.ClientToken);
            }
            return result;
        });
        this.reservations.set(params.ClientToken, { fingerprint, answer });
        return answer;
    }

    private overrideTargetHealth(xml: string): string {
        return xml.replace(/<member>((?:(?!<\/member>)[\s\S])*?<Id>(i-[0-9a-f]+)<\/Id>[\s\S]*?)<\/member>/g, (member, _inner, id: string) => {
            const state = this.targetHealth[id];
            return state === undefined ? member : member.replace(/(<TargetHealth>[\s\S]*?<State>)[^<]*(<\/State>)/, `$1${state}$2`);
        });
    }

    private forward(req: http.IncomingMessage, body: Buffer): Promise<Answer> {
        return new Promise((resolve, reject) => {
            const upstream = new URL(req.url ?? "/", this.upstream);
            const forwarded = http.request(upstream, { method: req.method, headers: { ...req.headers, "content-length": body.length } }, (res) => {
                const chunks: Buffer[] = [];
                res.on("data", (chunk) => chunks.push(chunk));
                res.on("end", () => resolve({ status: res.statusCode ?? 502, body: Buffer.concat(chunks).toString("utf8") }));
                res.on("error", reject);
            });
            forwarded.on("error", reject);
            forwarded.end(body);
        });
    }
}
