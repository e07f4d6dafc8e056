import { parseArgs } from "util";

/**
 * What the operator tools share as command lines: `--name value` options and `--help`, zone
 * letters, and errors turned into what to do about them.
 */

export class UsageError extends Error {
    constructor(message: string, usage: string) {
        super(`${message}\nusage: ${usage}`);
        this.name = "UsageError";
    }
}

/** `--help` (or `-h`) was asked for: the tool prints its usage and exits 0. */
export class HelpRequested extends Error {
    constructor(readonly usage: string) {
        super(usage);
        this.name = "HelpRequested";
    }
}

/** `--name value` options, every one a string; `--help` asks for the usage; unknown options and stray arguments are errors. */
export function parseOptions<R extends string, O extends string>(argv: string[], required: R[], optional: O[], usage: string): Record<R, string> & Partial<Record<O, string>> {
    const known: string[] = [...required, ...optional];
    let values: Record<string, string | boolean | undefined>;
    try {
        ({ values } = parseArgs({
            args: argv,
            options: { ...Object.fromEntries(known.map((name) => [name, { type: "string" as const }])), help: { type: "boolean", short: "h" } },
            strict: true,
            allowPositionals: false,
        }));
    } catch (error) {
        throw new UsageError(`${(error as Error).message}; allowed: ${[...known, "help"].map((name) => `--${name}`).join(", ")}`, usage);
    }
    if (values.help === true) {
        throw new HelpRequested(usage);
    }
    for (const name of required) {
        if (values[name] === undefined || values[name] === "") {
            throw new UsageError(`--${name} is required`, usage);
        }
    }
    return values as Record<R, string> & Partial<Record<O, string>>;
}

/** `b` → `us-east-2b`; a full zone name as it is. Checked against the stack's zones. */
export function resolveZone(zone: string, region: string, zones: string[]): string {
    const name = /^[a-z]$/.test(zone) ? `${region}${zone}` : zone;
    if (!zones.includes(name)) {
        throw new Error(`--zone ${zone} is not a zone of this stack; allowed: ${zones.map((z) => `${z.slice(region.length)} (${z})`).join(", ")}`);
    }
    return name;
}

/** SDK errors that mean "fix your credentials", with what to do about each. */
const CREDENTIAL_HINTS: Record<string, string> = {
    CredentialsProviderError: "no AWS credentials found: run `aws configure` or `aws sso login`, or set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
    ExpiredToken: "your AWS session has expired: run `aws sso login` (or refresh the session's keys) and try again",
    ExpiredTokenException: "your AWS session has expired: run `aws sso login` (or refresh the session's keys) and try again",
    UnrecognizedClientException: "AWS does not recognise these credentials: check AWS_PROFILE or the access key",
    AuthFailure: "AWS does not recognise these credentials: check AWS_PROFILE or the access key",
    InvalidClientTokenId: "AWS does not recognise these credentials: check AWS_PROFILE or the access key",
};

/** The line a tool prints for an error: a hint for credential trouble, the message otherwise. */
export function explainError(error: unknown): string {
    const { name, message } = error as Error;
    const hint = CREDENTIAL_HINTS[name];
    return hint === undefined ? message : `${hint} (${name}: ${message})`;
}

/**
 * Runs a tool's main: `--help` prints the usage and exits 0, a usage error exits 2, any other
 * error is explained and exits 1; otherwise main's exit code.
 */
export function runTool(name: string, main: () => Promise<number>): void {
    main().then(
        (code) => {
            process.exitCode = code;
        },
        (error: Error) => {
            if (error instanceof HelpRequested) {
                process.stdout.write(`usage: ${error.usage}\n`);
                process.exitCode = 0;
                return;
            }
            console.error(`${name}: ${explainError(error)}`);
            process.exitCode = error instanceof UsageError ? 2 : 1;
        },
    );
}
