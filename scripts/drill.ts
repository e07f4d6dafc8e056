import { EC2Client } from "@aws-sdk/client-ec2";
import { ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { FisClient } from "@aws-sdk/client-fis";
import { runTool } from "../tools/cli";
import { readDeployedStack } from "../tools/deployedStack";
import { chooseTemplate, formatDrillReport, parseDrillArgs, runDrill } from "../tools/drill";

/** `npm run drill -- --stack <name> [--zone X]`: a real spot interruption drill; see tools/drill.ts. */

/** AWS recommends checking for interruption notices every 5 s; the drill samples as often. */
const SAMPLE_INTERVAL_MS = 5_000;

runTool("drill", async () => {
    const options = parseDrillArgs(process.argv.slice(2));
    const deployed = await readDeployedStack(options.stack);
    const { scope, templateId } = chooseTemplate(deployed, options.zone);
    const region = deployed.fleet.region;
    const print = (line: string) => process.stdout.write(`${line}\n`);
    print(`drill on stack ${deployed.name} (${region}): interrupting ${scope === "instance" ? "one spot instance" : `every spot instance in ${scope}`}`);

    const result = await runDrill(
        { fis: new FisClient({ region }), ec2: new EC2Client({ region }), elb: new ElasticLoadBalancingV2Client({ region }) },
        deployed,
        templateId,
        { intervalMs: SAMPLE_INTERVAL_MS, timeoutMs: options.timeoutMinutes * 60_000, print },
    );
    print("");
    if (result.summary === undefined) {
        print(`no interruption notice was seen within ${options.timeoutMinutes} min; see FIS experiment ${result.experimentId}`);
        return 1;
    }
    formatDrillReport(result.summary, deployed.fleet).forEach(print);
    if (result.timedOut) {
        print(`gave up after ${options.timeoutMinutes} min: not every interrupted instance had an InService replacement and every zone its count`);
        return 1;
    }
    return 0;
});
