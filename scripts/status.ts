import { EC2Client } from "@aws-sdk/client-ec2";
import { ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { runTool } from "../tools/cli";
import { readDeployedStack } from "../tools/deployedStack";
import { formatStatus, parseStatusArgs, readFleetStatus } from "../tools/status";

/** `npm run status -- --stack <name> [--zone b]`: the live fleet; see tools/status.ts. */

runTool("status", async () => {
    const { stack, zone } = parseStatusArgs(process.argv.slice(2));
    const deployed = await readDeployedStack(stack);
    const region = deployed.fleet.region;
    const rows = await readFleetStatus({ ec2: new EC2Client({ region }), elb: new ElasticLoadBalancingV2Client({ region }) }, deployed, Date.now(), zone);
    process.stdout.write(`${formatStatus(rows, deployed, zone).join("\n")}\n`);
    return 0;
});
