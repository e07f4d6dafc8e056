import { execFile } from "child_process";
import { promisify } from "util";
import * as path from "path";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import Table from "cli-table3";
import { TAG } from "../handler/tags";
import { CREDENTIALS, Emulator, stopEmulator, useEmulator } from "../rehearsal/emulator";
import { functionCode, writeArchive } from "../rehearsal/materialize";
import { runProgram } from "../rehearsal/program";
import { comparisonTable, releaseTable } from "../rehearsal/report";
import { rehearseAll } from "../rehearsal/rehearse";
import { SCENARIO_NAMES } from "../rehearsal/scenarios";
import { POLICY_NAMES } from "../rehearsal/stage";
import { buildWorld, interruptionWarning, scheduledEvent, sqsBatch, stateChange, tag } from "../rehearsal/world";

/**
 * `npm run bench`: the Lambda archive's size and cold load, and the handler's calls and latency
 * against the emulator on loopback; then the rehearsal on AWS's modelled clock, every scenario
 * under every policy it means something for, as a table (and the release scenarios' own figures,
 * under `rehearsal.scenarios.<scenario>.<policy>.release`). Prints one JSON object as its last line.
 */

const RUNS = 20;

function percentile(sorted: number[], p: number): number {
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const round = (ms: number) => Math.round(ms * 10) / 10;

/**
 * A fresh Node process requires the archive and serves its first event, as a cold Lambda would.
 * Asynchronous: the fault proxy it talks to runs in this process.
 */
async function coldLoadMs(dir: string, emulator: Emulator): Promise<number> {
    const script = `
        const started = process.hrtime.bigint();
        const { handler } = require(${JSON.stringify(path.join(dir, "__index.js"))});
        handler(${JSON.stringify(sqsBatch(interruptionWarning("i-0123456789abcdef0")))}).then(() => {
            process.stdout.write("\\ncold-load-ms=" + Number(process.hrtime.bigint() - started) / 1e6);
            // The SDK keeps connections alive; a Lambda container would be frozen here.
            process.exit(0);
        });`;
    const { stdout } = await promisify(execFile)(process.execPath, ["-e", script], {
        env: {
            ...process.env,
            AWS_ENDPOINT_URL: emulator.endpoint,
            AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
            AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
        },
    });
    // The handler's own log line shares stdout.
    const measured = /cold-load-ms=([\d.]+)/.exec(stdout);
    if (!measured) {
        throw new Error(`cold load printed no measurement: ${stdout}`);
    }
    return Number(measured[1]);
}

async function warnings(emulator: Emulator): Promise<{ callsToLaunch: number; p50: number; p95: number }> {
    const times: number[] = [];
    let callsToLaunch = 0;
    for (let run = 0; run < RUNS; run++) {
        await emulator.reset();
        const world = await buildWorld(emulator);
        const started = performance.now();
        await world.handle(interruptionWarning(world.declared["Prometheus-B"]));
        times.push(performance.now() - started);
        callsToLaunch = Math.max(callsToLaunch, emulator.proxy.calls.findIndex((call) => call.action === "RunInstances") + 1);
    }
    times.sort((a, b) => a - b);
    return { callsToLaunch, p50: round(percentile(times, 50)), p95: round(percentile(times, 95)) };
}

/**
 * 60 instances over 6 zones, 30 warnings at once: the event source mapping hands them over as one
 * batch (they arrive within its window); then AWS reclaims the 30, their terminated events come as
 * a second batch, and the schedule reconciles.
 */
async function storm(emulator: Emulator) {
    const zones = ["a", "b", "c", "d", "e", "f"].map((letter) => `us-east-1${letter}`);
    await emulator.reset();
    const world = await buildWorld(emulator, { region: "us-east-1", zones, instancesPerZone: 10 });
    const everyone = Object.values(world.declared);
    // Every other instance: five per zone.
    const doomed = everyone.filter((_, index) => index % 2 === 0);
    emulator.proxy.calls.length = 0;
    const started = performance.now();
    let invocations = 0;
    const invoke = async (...events: unknown[]) => {
        invocations += 1;
        await world.handle(...events);
    };
    await invoke(...doomed.map((id) => interruptionWarning(id)));
    await world.ec2.send(new TerminateInstancesCommand({ InstanceIds: doomed }));
    await invoke(...doomed.map((id) => stateChange(id, "terminated")));
    await invoke(scheduledEvent());
    const totalMs = performance.now() - started;

    const live = await world.instances();
    const perZone = zones.map((zone) => live.filter((i) => i.Placement?.AvailabilityZone === zone).length);
    const replaced = live.map((i) => tag(i, TAG.replaces)).filter((id): id is string => id !== undefined);
    return {
        instances: everyone.length,
        zones: zones.length,
        warnings: doomed.length,
        invocations,
        awsCalls: emulator.proxy.calls.length,
        totalMs: Math.round(totalMs),
        perZone,
        skew: Math.max(...perZone) - Math.min(...perZone),
        duplicates: replaced.length - new Set(replaced).size,
    };
}

/** Every scenario under every policy on the modelled clock: the model's parameters and each run's figures. */
async function rehearsal() {
    const started = performance.now();
    const all = await rehearseAll(SCENARIO_NAMES, POLICY_NAMES, (scenario) => console.log(`rehearsed ${scenario} [${((performance.now() - started) / 1000).toFixed(0)} s]`));
    const scenarios = Object.fromEntries([...all].map(([scenario, runs]) => [scenario, Object.fromEntries(runs.map((run) => [run.policy, run.figures]))]));
    console.log(comparisonTable(scenarios));
    console.log(releaseTable(scenarios));
    // The model as the dev stack's target group sets it: the same for every scenario.
    return { model: all.get(SCENARIO_NAMES[0])?.[0].model, scenarios };
}

/** The emulator's figures as a table, for people; the JSON line after it is for tools. */
function emulatorTable(figures: { bytes: number; deployBytes: number; coldLoad: number; callsToLaunch: number; p50: number; p95: number; storm: Awaited<ReturnType<typeof storm>> }): string {
    const table = new Table({ head: ["on the emulator", "value"], style: { head: [], border: [] } });
    table.push(
        ["event path archive", `${figures.bytes.toLocaleString("en-US")} bytes`],
        ["deploy archive", `${figures.deployBytes.toLocaleString("en-US")} bytes`],
        ["cold load (require + first event)", `${round(figures.coldLoad)} ms`],
        ["AWS calls from warning to RunInstances", String(figures.callsToLaunch)],
        ["handler per warning p50 / p95", `${figures.p50} / ${figures.p95} ms`],
        [`storm: ${figures.storm.warnings} warnings over ${figures.storm.zones} zones`, `${figures.storm.invocations} invocations, ${figures.storm.awsCalls} calls, ${figures.storm.totalMs} ms, skew ${figures.storm.skew}, duplicates ${figures.storm.duplicates}`],
    );
    return table.toString();
}

async function main(): Promise<void> {
    const emulator = await useEmulator();
    try {
        const program = await runProgram();
        const { bytes, dir } = await writeArchive(functionCode(program));
        const deployArchive = await writeArchive(functionCode(program, "deploy"));
        const coldLoad = await coldLoadMs(dir, emulator);
        const { callsToLaunch, p50, p95 } = await warnings(emulator);
        const stormResult = await storm(emulator);
        const rehearsed = await rehearsal();
        console.log(emulatorTable({ bytes, deployBytes: deployArchive.bytes, coldLoad, callsToLaunch, p50, p95, storm: stormResult }));
        // The machine-readable result: always the last line.
        console.log(JSON.stringify({
            archiveBytes: bytes,
            deployArchiveBytes: deployArchive.bytes,
            coldLoadMs: round(coldLoad),
            callsToLaunch,
            warningMs: { p50, p95 },
            storm: stormResult,
            rehearsal: rehearsed,
        }));
    } finally {
        await stopEmulator();
    }
}

main().catch((error) => {
    console.error(error);
    process.exit(1);
});
