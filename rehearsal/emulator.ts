import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as path from "path";
import { FaultProxy } from "./faultProxy";

/**
 * The AWS API the handler tests talk to: the moto server (pinned, in the project's `.venv`,
 * which `npm run setup:moto` creates) on a free loopback port, behind a fault-injecting proxy.
 * One server per test process, started on first use, reset between tests, stopped at the end.
 */

const ROOT = path.resolve(__dirname, "..");
const MOTO_SERVER = path.join(ROOT, ".venv", "bin", "moto_server");

export const CREDENTIALS = { accessKeyId: "testing", secretAccessKey: "testing" };

/** Client configuration straight to moto (not through the proxy): for setting up and asserting without being recorded. */
export function motoConnection(emulator: Emulator, region: string) {
    return { region, endpoint: emulator.motoEndpoint, credentials: CREDENTIALS };
}

export interface Emulator {
    /** moto itself. */
    motoEndpoint: string;
    /** The proxy in front of moto: what the handler's clients talk to. */
    endpoint: string;
    proxy: FaultProxy;
    /** Forgets every resource and every fault, and stops enforcing IAM. */
    reset(): Promise<void>;
    /** From the next request on, moto checks every call's signature and actions against the caller's IAM policies. */
    enforceIam(): Promise<void>;
}

let running: Promise<{ emulator: Emulator; stop: () => Promise<void> }> | undefined;

function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.unref();
        server.on("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const { port } = server.address() as net.AddressInfo;
            server.close(() => resolve(port));
        });
    });
}

function request(url: string, method: string, body = ""): Promise<number> {
    return new Promise((resolve, reject) => {
        const req = http.request(url, { method }, (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
        });
        req.on("error", reject);
        req.end(body);
    });
}

async function post(url: string, body = ""): Promise<void> {
    const status = await request(url, "POST", body);
    if (status !== 200) {
        throw new Error(`POST ${url} answered ${status}`);
    }
}

async function waitUntilServing(endpoint: string, child: ChildProcess, output: () => string): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
        if (child.exitCode !== null) {
            throw new Error(`moto_server exited with ${child.exitCode}:\n${output()}`);
        }
        try {
            if ((await request(`${endpoint}/moto-api/`, "GET")) === 200) {
                return;
            }
        } catch {
            // Not listening yet.
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`moto_server did not answer within 30 s:\n${output()}`);
}

async function start(): Promise<{ emulator: Emulator; stop: () => Promise<void> }> {
    if (!fs.existsSync(MOTO_SERVER)) {
        throw new Error(`${MOTO_SERVER} is missing: run \`npm run setup:moto\` (npm test runs it)`);
    }
    const port = await freePort();
    const motoEndpoint = `http://127.0.0.1:${port}`;
    let output = "";
    const child = spawn(MOTO_SERVER, ["-H", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.on("data", (chunk) => (output = (output + chunk).slice(-4000)));
    child.stderr?.on("data", (chunk) => (output = (output + chunk).slice(-4000)));
    await waitUntilServing(motoEndpoint, child, () => output);
    const proxy = new FaultProxy(motoEndpoint);
    const endpoint = await proxy.listen();
    const emulator: Emulator = {
        motoEndpoint,
        endpoint,
        proxy,
        reset: async () => {
            proxy.reset();
            // INITIAL_NO_AUTH_ACTION_COUNT: infinitely many unauthenticated calls, i.e. no IAM.
            await post(`${motoEndpoint}/moto-api/reset-auth`, "inf");
            await post(`${motoEndpoint}/moto-api/reset`);
        },
        enforceIam: () => post(`${motoEndpoint}/moto-api/reset-auth`, "0"),
    };
    const stop = async () => {
        await proxy.close();
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
    };
    return { emulator, stop };
}

/** The shared emulator, started on first use. */
export async function useEmulator(): Promise<Emulator> {
    running ??= start();
    return (await running).emulator;
}

export async function stopEmulator(): Promise<void> {
    if (running !== undefined) {
        const { stop } = await running;
        running = undefined;
        await stop();
    }
}
