import { createHash } from "crypto";
import * as http from "http";
import * as net from "net";

/**
 * A loopback HTTP proxy in front of moto that speaks the AWS query protocol (EC2, ELBv2) and the
 * JSON protocol (SQS): it records every call and lets a subclass answer a call itself or forward
 * it. The handler tests' fault proxy and the rehearsal's clock-driven proxy are both this.
 */

export const EC2_VERSION = "2016-11-15";
export const ELB_VERSION = "2015-12-01";

export interface RecordedCall {
    service: "ec2" | "elbv2" | "sqs" | "other";
    action: string;
    /** Query parameters, or the JSON body's top-level fields. */
    params: Record<string, string>;
    /** The access key the call was signed with: tells a policy's calls from AWS's own. */
    accessKeyId?: string;
    /** What the proxy answered itself, if it did not forward. */
    injected?: string;
    /** The HTTP status the caller got. */
    status?: number;
}

export interface Answer {
    status: number;
    body: string;
    contentType?: string;
}

/** Calls that change something in AWS. */
export const WRITE_ACTIONS = ["RunInstances", "TerminateInstances", "CreateTags", "RegisterTargets", "DeregisterTargets", "RequestSpotInstances", "SendMessage", "SendMessageBatch"];

export function escapeXml(text: string): string {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function ec2Error(status: number, code: string, message: string): Answer {
    return {
        status,
        body: `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error></Errors><RequestID>proxy</RequestID></Response>`,
    };
}

export function elbError(status: number, code: string, message: string): Answer {
    return {
        status,
        body: `<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/${ELB_VERSION}/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error><RequestId>proxy</RequestId></ErrorResponse>`,
    };
}

/** Parameters of a query-protocol call whose keys start with `prefix` (`InstanceId.` → every instance id), in order. */
export function listParam(params: Record<string, string>, prefix: RegExp): string[] {
    return Object.entries(params)
        .filter(([key]) => prefix.test(key))
        .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
        .map(([, value]) => value);
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        req.on("data", (chunk) => chunks.push(chunk));
        req.on("end", () => resolve(Buffer.concat(chunks)));
        req.on("error", reject);
    });
}

function parseCall(req: http.IncomingMessage, body: Buffer): RecordedCall {
    const accessKeyId = /Credential=([^/,\s]+)\//.exec(String(req.headers.authorization ?? ""))?.[1];
    const target = String(req.headers["x-amz-target"] ?? "");
    if (target.startsWith("AmazonSQS.")) {
        const json = body.length === 0 ? {} : JSON.parse(body.toString("utf8"));
        const params = Object.fromEntries(Object.entries(json).map(([key, value]) => [key, typeof value === "string" ? value : JSON.stringify(value)]));
        return { service: "sqs", action: target.slice("AmazonSQS.".length), params, accessKeyId };
    }
    const params = Object.fromEntries(new URLSearchParams(body.toString("utf8")));
    const service = params.Version === EC2_VERSION ? "ec2" : params.Version === ELB_VERSION ? "elbv2" : "other";
    return { service, action: params.Action ?? target.split(".").pop() ?? "", params, accessKeyId };
}

export abstract class AwsProxy {
    readonly calls: RecordedCall[] = [];

    private readonly reservations = new Map<string, { fingerprint: string; answer: Promise<Answer> }>();
    private server: http.Server | undefined;
    private readonly sockets = new Set<net.Socket>();

    constructor(protected readonly upstream: string) {}

    /** Answers one call: by itself, or by `forward`ing it to moto. */
    protected abstract answer(call: RecordedCall, forward: () => Promise<Answer>): Promise<Answer>;

    /** Forgets every call and reservation. */
    reset(): void {
        this.calls.length = 0;
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
            // The SDK corrects its clock from a response's Date header; the proxy's answers carry none.
            res.sendDate = false;
            this.handle(req)
                .then(({ status, body, contentType, call }) => {
                    call.status = status;
                    res.writeHead(status, { "content-type": contentType ?? "text/xml" });
                    res.end(body);
                })
                .catch((error: Error) => {
                    res.writeHead(502, { "content-type": "text/plain" });
                    res.end(`proxy: ${error.message}`);
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
        const call = parseCall(req, body);
        this.calls.push(call);
        return { ...(await this.answer(call, () => this.forward(req, body))), call };
    }

    /** AWS: a repeated ClientToken with the same parameters returns the first reservation; with others, an error. */
    protected idempotentRunInstances(params: Record<string, string>, forward: () => Promise<Answer>): Promise<Answer> {
        if (!params.ClientToken) {
            return forward();
        }
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

    private forward(req: http.IncomingMessage, body: Buffer): Promise<Answer> {
        return new Promise((resolve, reject) => {
            const upstream = new URL(req.url ?? "/", this.upstream);
            const forwarded = http.request(upstream, { method: req.method, headers: { ...req.headers, "content-length": body.length } }, (res) => {
                const chunks: Buffer[] = [];
                res.on("data", (chunk) => chunks.push(chunk));
                res.on("end", () => resolve({ status: res.statusCode ?? 502, body: Buffer.concat(chunks).toString("utf8"), contentType: res.headers["content-type"] }));
                res.on("error", reject);
            });
            forwarded.on("error", reject);
            forwarded.end(body);
        });
    }
}
