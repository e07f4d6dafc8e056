import * as assert from "assert";
import { ChildProcess, execFile, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { builtInUserData } from "../infra/launchTemplate";

/**
 * The built-in user data, run for real: in a network namespace where an IMDSv2 stand-in answers
 * at 169.254.169.254, in a private mount namespace (so /srv and /etc/systemd/system are its own),
 * with `systemctl` replaced by a stand-in that starts the unit's ExecStart. Needs root, as CI has;
 * without namespaces the test fails and says so.
 */

const run = promisify(execFile);
const BOOT = path.join(__dirname, "boot");
const NAMESPACE = `spot-boot-${process.pid}`;
const INSTANCE = { id: "i-0123456789abcdef0", zone: "us-east-2b", lifeCycle: "spot" };
/** Not 80: the stand-in holds 169.254.169.254:80 in the namespace, and the page binds every address. */
const APP_PORT = 8080;

/** Runs a command in the namespace. */
function inNamespace(command: string[], options: { timeout?: number } = {}) {
    return run("ip", ["netns", "exec", NAMESPACE, ...command], { timeout: options.timeout ?? 30_000 });
}

/** The metadata service for the instance, inside the namespace; resolves once it listens. */
async function startMetadataService(broken: boolean): Promise<ChildProcess> {
    const args = ["--instance-id", INSTANCE.id, "--zone", INSTANCE.zone, "--life-cycle", INSTANCE.lifeCycle, ...(broken ? ["--broken"] : [])];
    const service = spawn("ip", ["netns", "exec", NAMESPACE, "python3", path.join(BOOT, "imds.py"), ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let errors = "";
    service.stderr?.on("data", (chunk) => (errors += chunk));
    // curl's own retries wait for the port: no polling loop of ours.
    await inNamespace(["curl", "-s", "-o", "/dev/null", "--retry", "20", "--retry-connrefused", "--retry-delay", "1", "-X", "PUT", "http://169.254.169.254/"]).catch((error) => {
        throw new Error(`the IMDS stand-in did not start: ${errors || (error as Error).message}`);
    });
    return service;
}

/**
 * Boots: the user data script as cloud-init runs it (root, bash), with /srv and
 * /etc/systemd/system on tmpfs of a private mount namespace. Resolves to its exit code and output.
 */
async function boot(userData: string): Promise<{ code: number; stderr: string }> {
    const script = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "spot-boot-")), "user-data.sh");
    fs.writeFileSync(script, userData, { mode: 0o755 });
    const mountOwn = "mkdir -p /srv /etc/systemd/system && mount -t tmpfs tmpfs /srv && mount -t tmpfs tmpfs /etc/systemd/system";
    try {
        const { stderr } = await inNamespace(["unshare", "--mount", "--propagation", "private", "bash", "-c", `${mountOwn} && PATH="${BOOT}:$PATH" exec bash "${script}"`]);
        return { code: 0, stderr };
    } catch (error) {
        const failed = error as { code?: number; stderr?: string };
        return { code: failed.code ?? -1, stderr: failed.stderr ?? "" };
    }
}

/** GET on the instance's application port from inside the namespace, as the load balancer's health check would. */
async function get(urlPath: string): Promise<{ status: number; body: string }> {
    const { stdout } = await inNamespace(["curl", "-s", "--retry", "20", "--retry-connrefused", "--retry-delay", "1", "-w", "\n%{http_code}", `http://127.0.0.1:${APP_PORT}${urlPath}`]);
    const lines = stdout.split("\n");
    return { status: Number(lines.pop()), body: lines.join("\n") };
}

describe("the built-in user data, booted in a network namespace with an IMDSv2 stand-in", function () {
    this.timeout(60_000);
    let metadata: ChildProcess | undefined;
    let created = false;

    beforeEach(async () => {
        try {
            await run("ip", ["netns", "add", NAMESPACE]);
            created = true;
        } catch (error) {
            throw new Error(`the boot path test needs network namespaces (ip netns add, as root; CI runs as root): ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`);
        }
        await inNamespace(["ip", "link", "set", "lo", "up"]);
        await inNamespace(["ip", "addr", "add", "169.254.169.254/32", "dev", "lo"]);
    });

    afterEach(async () => {
        metadata?.kill();
        if (!created) {
            return;
        }
        created = false;
        // Everything the boot started (the application) runs in the namespace: stop it, then remove the namespace.
        const { stdout } = await run("ip", ["netns", "pids", NAMESPACE]).catch(() => ({ stdout: "" }));
        for (const pid of stdout.split("\n").filter(Boolean)) {
            try {
                process.kill(Number(pid), "SIGKILL");
            } catch {
                // Already gone.
            }
        }
        await run("ip", ["netns", "del", NAMESPACE]);
    });

    it("serves the health path with 200 and a page naming the instance, its zone and market", async () => {
        metadata = await startMetadataService(false);
        const booted = await boot(builtInUserData(APP_PORT));
        assert.deepStrictEqual(booted, { code: 0, stderr: "" });

        const health = await get("/health");
        assert.strictEqual(health.status, 200);
        const page = await get("/");
        assert.strictEqual(page.status, 200);
        assert.match(page.body, new RegExp(`Served by ${INSTANCE.id}`));
        assert.match(page.body, /Zone: us-east-2b/);
        assert.match(page.body, /Market: spot/);
    });

    it("stops with a message naming the metadata service when it refuses a token, and serves nothing", async () => {
        metadata = await startMetadataService(true);
        const booted = await boot(builtInUserData(APP_PORT));
        assert.notStrictEqual(booted.code, 0);
        assert.match(booted.stderr, /spot-availability: cannot get an IMDSv2 token from http:\/\/169\.254\.169\.254: curl: \(22\) .*403/);
        await assert.rejects(inNamespace(["curl", "-sf", `http://127.0.0.1:${APP_PORT}/health`]), "no application was started");
    });
});
