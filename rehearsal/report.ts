import { Resvg } from "@resvg/resvg-js";
import Table from "cli-table3";
import * as fs from "fs";
import * as path from "path";
import * as vega from "vega";
import * as vegaLite from "vega-lite";
import { Figures } from "./figures";
import { Rehearsal } from "./rehearse";
import { ScenarioName } from "./scenarios";
import { POLICY_NAMES, PolicyName } from "./stage";

/**
 * How a rehearsal is shown: a chart per scenario (serving targets per zone over modelled time, one
 * panel per policy, the first warning and its interruption marked), drawn with Vega-Lite and
 * rendered to SVG and PNG; and a table comparing the policies, each against `asg`.
 */

/** Seconds after the first warning the chart shows: the race, and the minutes after it. */
const CHART_AFTER_WARNING_S = 480;

/** What the chart marks: the release's start, the first warning and its interruption. */
function markers(run: Rehearsal): { t: number; marker: string }[] {
    const release = run.scenario.release === undefined ? [] : [{ t: run.scenario.release.atS, marker: "release" }];
    const warning = run.scenario.notices.length === 0 ? [] : [{ t: run.firstWarningAt, marker: "warning" }, { t: run.firstWarningAt + run.model.interruptionNoticeS, marker: "interruption" }];
    return [...release, ...warning];
}

export function chartSpec(scenario: ScenarioName, runs: Rehearsal[]): vegaLite.TopLevelSpec {
    const rows = runs.flatMap((run) => {
        const end = Math.min(run.scenario.horizonS, run.firstWarningAt + CHART_AFTER_WARNING_S);
        const within = run.serving.filter((point) => point.at <= end);
        const last = run.scenario.zones.map((letter) => `${run.scenario.region}${letter}`).map((zone) => ({ at: end, zone, serving: run.fleet.servingIn(zone, end) }));
        return [
            ...[...within, ...last].map((point) => ({ policy: run.policy, t: point.at, zone: point.zone, serving: point.serving })),
            ...markers(run).map((marker) => ({ policy: run.policy, ...marker })),
        ];
    });
    return {
        $schema: "https://vega.github.io/schema/vega-lite/v5.json",
        title: `${scenario}: serving targets per zone (healthy, not draining)`,
        data: { values: rows },
        facet: { row: { field: "policy", type: "nominal", sort: [...POLICY_NAMES], title: null } },
        spec: {
            width: 640,
            height: 110,
            layer: [
                {
                    transform: [{ filter: "isValid(datum.zone)" }],
                    mark: { type: "line", interpolate: "step-after", strokeWidth: 2 },
                    encoding: {
                        x: { field: "t", type: "quantitative", title: "modelled seconds" },
                        y: { field: "serving", type: "quantitative", title: "serving", axis: { tickMinStep: 1 } },
                        color: { field: "zone", type: "nominal", title: "zone" },
                    },
                },
                {
                    transform: [{ filter: "isValid(datum.marker)" }],
                    mark: { type: "rule", strokeDash: [4, 4], color: "black" },
                    encoding: { x: { field: "t", type: "quantitative" } },
                },
                {
                    transform: [{ filter: "isValid(datum.marker)" }],
                    mark: { type: "text", align: "left", baseline: "top", dx: 3, y: 2, fontSize: 10 },
                    encoding: { x: { field: "t", type: "quantitative" }, text: { field: "marker" } },
                },
            ],
        },
        config: { font: "DejaVu Sans" },
    };
}

/** Writes `<scenario>.svg` and `<scenario>.png` into `directory`; returns their paths. */
export async function writeChart(directory: string, scenario: ScenarioName, runs: Rehearsal[]): Promise<string[]> {
    const view = new vega.View(vega.parse(vegaLite.compile(chartSpec(scenario, runs)).spec), { renderer: "none" });
    const svg = await view.toSVG();
    view.finalize();
    fs.mkdirSync(directory, { recursive: true });
    const svgPath = path.join(directory, `${scenario}.svg`);
    const pngPath = path.join(directory, `${scenario}.png`);
    fs.writeFileSync(svgPath, svg);
    fs.writeFileSync(pngPath, new Resvg(svg, { background: "white", fitTo: { mode: "width", value: 1400 } }).render().asPng());
    return [svgPath, pngPath];
}

const seconds = (value: number | null) => (value === null ? "never" : value.toFixed(1));

/** `value` against asg's, as a ratio: "0.1×"; dashes where there is nothing to compare. */
function ratio(value: number, asg: number | undefined): string {
    if (asg === undefined) {
        return "";
    }
    if (asg === 0) {
        return value === 0 ? "=" : "∞";
    }
    return `${(value / asg).toFixed(2)}×`;
}

/** One row per scenario and policy; serving gap and notice-to-InService also as ratios to asg. */
export function comparisonTable(figures: Partial<Record<ScenarioName, Partial<Record<PolicyName, Figures>>>>): string {
    const table = new Table({
        head: ["scenario", "policy", "notice→InService p50/p95/max s", "vs asg p95", "last launch s", "serving gap s", "vs asg", "dead target s", "invocations", "AWS calls", "duplicates", "final per zone", "peak live / ceiling"],
        style: { head: [], border: [] },
    });
    for (const [scenario, byPolicy] of Object.entries(figures)) {
        for (const policy of POLICY_NAMES) {
            const f = byPolicy?.[policy];
            if (f === undefined) {
                continue;
            }
            const asg = byPolicy?.asg;
            const n = f.noticeToInServiceS;
            table.push([
                scenario,
                policy,
                `${seconds(n.p50)} / ${seconds(n.p95)} / ${seconds(n.max)}`,
                n.p95 === null || asg?.noticeToInServiceS.p95 == null ? "" : ratio(n.p95, asg.noticeToInServiceS.p95),
                seconds(f.lastLaunchS),
                f.servingGapS.toFixed(1),
                ratio(f.servingGapS, asg?.servingGapS),
                f.deadTargetS.toFixed(1),
                f.invocations,
                f.awsCalls,
                f.duplicates,
                Object.values(f.finalPerZone).join(" "),
                `${f.liveInstances.peak} / ${f.liveInstances.ceiling}`,
            ]);
        }
    }
    return table.toString();
}

/** The release scenarios' own figures: one row per scenario and policy that rolled a release. */
export function releaseTable(figures: Partial<Record<ScenarioName, Partial<Record<PolicyName, Figures>>>>): string {
    const table = new Table({
        head: ["scenario", "policy", "release duration s", "serving gap s", "dead target s", "drain cut s", "launches", "instance-s beyond count"],
        style: { head: [], border: [] },
    });
    for (const [scenario, byPolicy] of Object.entries(figures)) {
        for (const policy of POLICY_NAMES) {
            const f = byPolicy?.[policy];
            if (f?.release !== undefined) {
                table.push([scenario, policy, seconds(f.release.durationS), f.servingGapS.toFixed(1), f.deadTargetS.toFixed(1), f.release.drainCutS.toFixed(1), f.release.launches, f.release.instanceSecondsBeyondCount.toFixed(0)]);
            }
        }
    }
    return table.toString();
}
