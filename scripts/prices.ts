import { EC2Client } from "@aws-sdk/client-ec2";
import { PricingClient } from "@aws-sdk/client-pricing";
import { runTool } from "../tools/cli";
import { readDeployedStack } from "../tools/deployedStack";
import { parsePricesArgs, priceReport, PRICING_REGION } from "../tools/prices";

/** `npm run prices -- --stack <name>`: spot against on-demand for the stack's fleet; see tools/prices.ts. */

runTool("prices", async () => {
    const { stack } = parsePricesArgs(process.argv.slice(2));
    const { fleet } = await readDeployedStack(stack);
    const lines = await priceReport({ ec2: new EC2Client({ region: fleet.region }), pricing: new PricingClient({ region: PRICING_REGION }) }, fleet);
    process.stdout.write(`${lines.join("\n")}\n`);
    return 0;
});
