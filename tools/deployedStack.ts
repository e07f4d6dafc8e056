import { execFile } from "child_process";
import type { FleetSummary } from "../infra/fleetSummary";

/**
 * What the operator tools (`npm run drill`, `prices`, `status`) know about a deployed stack: its
 * outputs, as `pulumi stack output --json` prints them. Nothing is configured twice.
 */

export interface DeployedStack {
    name: string;
    targetGroupArn: string;
    fleet: FleetSummary;
    /** Scope (`instance` or a zone) → FIS experiment template id; only with `drill: true`. */
    drillTemplates?: Record<string, string>;
}

/** Runs the Pulumi CLI with these arguments and resolves to its standard output. */
export type PulumiCli = (args: string[]) => Promise<string>;

/** Checks the shape of `pulumi stack output --json` and names what is missing. */
export function parseStackOutputs(name: string, json: string): DeployedStack {
    let outputs: Record<string, any>;
    try {
        outputs = JSON.parse(json);
    } catch {
        throw new Error(`stack ${name}: \`pulumi stack output --json\` printed something that is not JSON: ${json.slice(0, 200)}`);
    }
    const fleet = outputs?.fleet as FleetSummary | undefined;
    if (typeof outputs?.targetGroupArn !== "string" || fleet === undefined || !Array.isArray(fleet.zones) || !Array.isArray(fleet.instanceTypes)) {
        throw new Error(`stack ${name} has no targetGroupArn and fleet outputs: is it deployed with this version of the program? Run \`pulumi up --stack ${name}\` first`);
    }
    return { name, targetGroupArn: outputs.targetGroupArn, fleet, drillTemplates: outputs.drillTemplates };
}

/** The Pulumi CLI on PATH, with its error output in the message when it fails. */
export const pulumiCli: PulumiCli = (args) => new Promise((resolve, reject) => {
    execFile("pulumi", args, { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        if ((error as NodeJS.ErrnoException | null)?.code === "ENOENT") {
            reject(new Error("the Pulumi CLI is not on PATH; install it (https://www.pulumi.com/docs/install/) and log in to the backend that holds the stack"));
        } else if (error) {
            reject(new Error(`pulumi ${args.join(" ")} failed: ${stderr.trim() || error.message}`));
        } else {
            resolve(stdout);
        }
    });
});

export async function readDeployedStack(name: string, cli: PulumiCli = pulumiCli): Promise<DeployedStack> {
    return parseStackOutputs(name, await cli(["stack", "output", "--json", "--stack", name]));
}
