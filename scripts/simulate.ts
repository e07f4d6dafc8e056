import { DescribeInstancesCommand, EC2Client, Instance, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { TAG } from "../handler/tags";
import { CREDENTIALS, stopEmulator, useEmulator } from "../rehearsal/emulator";
import { inMoto, loadLambda } from "../rehearsal/materialize";
import { REGION, runProgram } from "../rehearsal/program";
import { interruptionWarning, scheduledEvent, stateChange, tag } from "../rehearsal/world";

/**
 * `npm run simulate`: a rehearsal without an AWS account. The dev stack is materialised in the
 * moto emulator exactly as the tests do it, the Lambda archive `pulumi up` would upload is loaded
 * as Lambda loads it, and the script plays an interruption warning and then a zone outage,
 * printing what the handler did and how long each step took.
 */

const STACK = "spot-availability/dev";

function line(text = ""): void {
    process.stdout.write(`${text}\n`);
}

async function main(): Promise<void> {
    const emulator = await useEmulator();
    await emulator.reset();
    const direct = { region: REGION, endpoint: emulator.motoEndpoint, credentials: CREDENTIALS };
    const ec2 = new EC2Client(direct);
    const elb = new ElasticLoadBalancingV2Client(direct);

    line("Availability on the Spot: a local rehearsal against the moto emulator (no AWS account, nothing billed)");
    line();
    const started = performance.now();
    const run = await runProgram({ materialize: inMoto(emulator) });
    line(`Materialised the dev stack (Pulumi.dev.yaml) under Pulumi's runtime mocks: ${run.resources.length} resources in ${Math.round(performance.now() - started)} ms`);
    const { handler, logs } = await loadLambda(run, {
        AWS_REGION: REGION,
        AWS_ENDPOINT_URL: emulator.endpoint,
        AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    });
    line("Loaded the Lambda archive as `pulumi up` would upload it (__index.handler)");

    const fleet = async (): Promise<Instance[]> => {
        const result = await ec2.send(new DescribeInstancesCommand({
            Filters: [{ Name: `tag:${TAG.stack}`, Values: [STACK] }, { Name: "instance-state-name", Values: ["pending", "running"] }],
        }));
        return (result.Reservations ?? []).flatMap((r) => r.Instances ?? []);
    };
    const registered = async () => {
        const health = await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: run.outputs.targetGroupArn }));
        return new Set((health.TargetHealthDescriptions ?? []).map((d) => d.Target?.Id));
    };
    const showZones = async (title: string) => {
        const instances = await fleet();
        const zones = run.outputs.zones as string[];
        line(`${title}: ${zones.map((zone) => `${zone} ${instances.filter((i) => i.Placement?.AvailabilityZone === zone).length}`).join(", ")}`);
    };
    /** Plays one event and prints the handler's decisions, each with the ms since the event arrived. */
    const play = async (label: string, event: unknown) => {
        const from = logs.length;
        const t0 = performance.now();
        await handler(event);
        const total = performance.now() - t0;
        line(`  ${label}`);
        for (const entry of logs.slice(from)) {
            const subject = entry.action === "launch" ? entry.launched : entry.instance;
            const what = [entry.action, subject, entry.zone, entry.instanceType, entry.market, entry.result].filter(Boolean).join(" ");
            line(`    +${String(entry.ms).padStart(4)} ms  ${what}${entry.reason ? `  (${entry.reason})` : ""}`);
        }
        line(`    = ${total.toFixed(0)} ms in the handler`);
    };

    line();
    await showZones("Instances per zone");
    const doomed = run.outputs.instances["Prometheus-B"];
    line();
    line(`1. AWS warns that Prometheus-B (${doomed}) will be reclaimed in two minutes`);
    await play("EC2 Spot Instance Interruption Warning", interruptionWarning(doomed));
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [doomed] }));
    await play("two minutes later: EC2 Instance State-change Notification (terminated)", stateChange(doomed, "terminated"));
    await showZones("Instances per zone");

    line();
    line("2. Zone us-east-2c loses all capacity, and AWS reclaims every instance there");
    emulator.proxy.capacityFaults = [{ zone: "us-east-2c", code: "InsufficientInstanceCapacity" }];
    const zoneC = (await fleet()).filter((i) => i.Placement?.AvailabilityZone === "us-east-2c").map((i) => i.InstanceId as string);
    for (const id of zoneC) {
        await play(`EC2 Spot Instance Interruption Warning for ${id}`, interruptionWarning(id));
    }
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: zoneC }));
    for (const id of zoneC) {
        await play(`terminated ${id}`, stateChange(id, "terminated"));
    }
    await play("the reconcile schedule", scheduledEvent());
    await showZones("Instances per zone");

    line();
    line("3. Zone us-east-2c recovers");
    emulator.proxy.capacityFaults = [];
    await play("the reconcile schedule", scheduledEvent());
    await play("the next reconcile", scheduledEvent());
    await showZones("Instances per zone");

    const targets = await registered();
    const instances = await fleet();
    line();
    line("Summary");
    line(`  ${"name".padEnd(14)}${"instance".padEnd(22)}${"zone".padEnd(12)}${"market".padEnd(11)}${"launched by".padEnd(13)}${"replaces".padEnd(22)}registered`);
    for (const i of instances.sort((a, b) => String(a.Placement?.AvailabilityZone).localeCompare(String(b.Placement?.AvailabilityZone)))) {
        line(`  ${String(tag(i, "Name")).padEnd(14)}${String(i.InstanceId).padEnd(22)}${String(i.Placement?.AvailabilityZone).padEnd(12)}${(i.InstanceLifecycle ?? "on-demand").padEnd(11)}${String(tag(i, TAG.launchedBy)).padEnd(13)}${(tag(i, TAG.replaces) ?? "-").padEnd(22)}${targets.has(i.InstanceId) ? "yes" : "no"}`);
    }
    line(`  AWS calls made by the handler: ${emulator.proxy.calls.length}`);
}

main()
    .catch((error) => {
        console.error(error);
        process.exitCode = 1;
    })
    .finally(() => stopEmulator());
