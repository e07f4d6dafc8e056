import { parseArgs } from "util";
import { stopEmulator } from "../rehearsal/emulator";
import { comparisonTable, releaseTable, writeChart } from "../rehearsal/report";
import { rehearseAll } from "../rehearsal/rehearse";
import { SCENARIO_NAMES, ScenarioName, SCENARIOS } from "../rehearsal/scenarios";
import { POLICY_NAMES, PolicyName } from "../rehearsal/stage";

/**
 * `npm run simulate`: the rehearsal on AWS's modelled clock (see rehearsal/): each scenario under
 * each policy, with the dev stack materialised in moto and the project's own Lambda archive.
 */

const USAGE = `usage: npm run simulate -- [--scenario <name>] [--policy <name>] [--out <dir>]
  --scenario  ${SCENARIO_NAMES.join(", ")} (default: all)
  --policy    ${POLICY_NAMES.join(", ")} (default: all)
  --out       where the charts go (default: .rehearsal)
Prints a progress line per scenario, the timeline in modelled seconds when one scenario is chosen,
and a table comparing the policies with asg; writes a chart per scenario as SVG and PNG.`;

function choose<T extends string>(value: string | undefined, allowed: readonly T[], option: string): T[] {
    if (value === undefined) {
        return [...allowed];
    }
    if (!(allowed as readonly string[]).includes(value)) {
        throw new Error(`--${option} ${value} is not one of ${allowed.join(", ")}\n${USAGE}`);
    }
    return [value as T];
}

async function main(): Promise<void> {
    const { values } = parseArgs({ options: { scenario: { type: "string" }, policy: { type: "string" }, out: { type: "string", default: ".rehearsal" }, help: { type: "boolean" } }, strict: true });
    if (values.help) {
        process.stdout.write(`${USAGE}\n`);
        return;
    }
    const scenarios = choose<ScenarioName>(values.scenario, SCENARIO_NAMES, "scenario");
    const policies = choose<PolicyName>(values.policy, POLICY_NAMES, "policy");
    const print = (line = "") => process.stdout.write(`${line}\n`);
    const charts: string[] = [];
    const started = performance.now();
    const all = await rehearseAll(scenarios, policies, async (scenario, runs) => {
        print(`${scenario} (${SCENARIOS[scenario].summary}): ${runs.map((r) => `${r.policy} ${r.figures.servingGapS.toFixed(0)} s gap`).join(", ")}  [${((performance.now() - started) / 1000).toFixed(0)} s]`);
        if (scenarios.length === 1) {
            for (const run of runs) {
                print();
                print(`${scenario} under ${run.policy}:`);
                run.timeline.forEach((entry) => print(`  t+${entry.at.toFixed(1)} s ${entry.text}`));
            }
            print();
        }
        charts.push(...(await writeChart(values.out as string, scenario, runs)));
    });
    print();
    const figures = Object.fromEntries([...all].map(([scenario, runs]) => [scenario, Object.fromEntries(runs.map((r) => [r.policy, r.figures]))]));
    print(comparisonTable(figures));
    print(releaseTable(figures));
    print();
    print(`charts: ${charts.join(", ")}`);
}

main()
    .catch((error: Error) => {
        console.error(error.message);
        process.exitCode = 1;
    })
    .finally(() => stopEmulator());
