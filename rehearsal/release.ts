import { CreateLaunchTemplateVersionCommand, EC2Client } from "@aws-sdk/client-ec2";
import { DesiredFleet } from "../handler/deployRequest";
import { VirtualClock } from "./clock";
import { FunctionCode, LambdaHandler, requireArchive } from "./materialize";
import { ProgramRun } from "./program";

/**
 * A new release of the application as `pulumi up` makes it: the launch template gains a version
 * (new user data; the default version stays the released one), both functions are uploaded again
 * with that version in their settings (the event path first: the invocation depends on it), and
 * the provider invokes the deploy with the new desired fleet and the previous one (`tf.prev_input`).
 */

/** The deploy's settings name the template's latest version; the serializer writes it as one assignment. */
const SERIALIZED_VERSION = /(\.launchTemplateVersion = )\d+;/g;

/** The launch template's next version, as the provider's UpdateLaunchTemplate makes it from the current default. */
export async function createReleaseVersion(ec2: EC2Client, launchTemplateId: string): Promise<number> {
    const created = await ec2.send(new CreateLaunchTemplateVersionCommand({
        LaunchTemplateId: launchTemplateId,
        SourceVersion: "$Default",
        LaunchTemplateData: { UserData: Buffer.from("#!/bin/bash\n# the application's next release\n").toString("base64") },
    }));
    return created.LaunchTemplateVersion?.VersionNumber as number;
}

/** A function's archive as `pulumi up` uploads it again once the template has `version`: the same code, its settings naming that version. */
export async function releasedArchive(code: FunctionCode, version: number): Promise<LambdaHandler> {
    const assets = await code.assets;
    const index = await assets["__index.js"].text;
    if (index.match(SERIALIZED_VERSION) === null) {
        throw new Error("the archive's settings hold no launchTemplateVersion the rehearsal can set");
    }
    const released = index.replace(SERIALIZED_VERSION, `$1${version};`);
    return requireArchive({ assets: { ...assets, "__index.js": { text: Promise.resolve(released) } } });
}

/** The invocation's payload on the update: the new desired fleet and, as `tf.prev_input`, the input of the previous `pulumi up`. */
export function releaseRequest(run: ProgramRun, version: number): { desired: DesiredFleet; tf: { action: "update"; prev_input: { desired: DesiredFleet } } } {
    const previous = (JSON.parse(run.one("aws:lambda/invocation:Invocation", "-deploy").inputs.input) as { desired: DesiredFleet }).desired;
    return { desired: { ...previous, launchTemplateVersion: version }, tf: { action: "update", prev_input: { desired: previous } } };
}

/** How the deploy's invocation ended, on the modelled clock. */
export interface DeployOutcome {
    startedAt: number;
    endedAt: number;
    ok: boolean;
    /** The invocation's error (what `pulumi up` would print), or its answer. */
    detail: string;
}

/**
 * Invokes the deploy as the provider does (synchronously) at the current modelled second: Lambda
 * tells it the time left before its timeout, and ends it there.
 */
export async function invokeDeploy(clock: VirtualClock, handler: LambdaHandler, payload: unknown, timeoutS: number): Promise<DeployOutcome> {
    const startedAt = clock.now;
    const deadline = startedAt + timeoutS;
    const context = { getRemainingTimeInMillis: () => Math.max(0, (deadline - clock.now) * 1000) };
    const timedOut = clock.sleep(timeoutS).then(() => ({ ok: false, detail: `Task timed out after ${timeoutS} seconds` }));
    const answered = handler(payload, context).then(
        (answer) => ({ ok: true, detail: JSON.stringify(answer) }),
        (error: Error) => ({ ok: false, detail: `${error.name}: ${error.message}` }),
    );
    const outcome = await Promise.race([answered, timedOut]);
    return { startedAt, endedAt: clock.now, ...outcome };
}
