import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import { DRAIN_WHEN, DrainWhen, ReleaseSettings } from "../handler/settings";

/**
 * Stack configuration: the seed's variables, as `pulumi config` keys. `parseConfig` is pure and
 * validates everything, so a bad value stops the program before a single resource is declared,
 * with an error that names the key and says what is allowed.
 */

export const PROJECT = "spot-availability";

/** Defaults, exactly as `Pulumi.yaml` declares them (a test keeps the two in step). */
export const DEFAULTS = {
    instanceName: "web",
    instanceTypes: ["t3.micro", "t3a.micro", "t2.micro"],
    spotProductDescription: "Linux/UNIX",
    amiId: "",
    keyName: "",
    sshCidr: "",
    subnetIds: [] as string[],
    zones: [] as string[],
    zoneCount: 3,
    instancesPerZone: 1,
    spotMaxPrice: "",
    onDemandFallback: true,
    replaceOnRebalance: true,
    drainWhen: "replacement-healthy",
    appPort: 80,
    healthCheckPath: "/",
    userDataFile: "",
    domainName: "",
    hostedZoneName: "",
    reconcileMinutes: 5,
    logRetentionDays: 14,
    alarmTopicArn: "",
    drill: false,
    releaseBatchPercent: 100,
    releaseHealthTimeoutSeconds: 300,
};

export type ConfigKey = keyof typeof DEFAULTS;
export const CONFIG_KEYS = Object.keys(DEFAULTS) as ConfigKey[];

/** Values CloudWatch Logs accepts as a retention period. */
export const LOG_RETENTION_DAYS = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/** Product descriptions `DescribeSpotPriceHistory` knows. */
export const SPOT_PRODUCT_DESCRIPTIONS = [
    "Linux/UNIX",
    "Linux/UNIX (Amazon VPC)",
    "Red Hat Enterprise Linux",
    "Red Hat Enterprise Linux (Amazon VPC)",
    "SUSE Linux",
    "SUSE Linux (Amazon VPC)",
    "Windows",
    "Windows (Amazon VPC)",
];

/** Where the network comes from: subnets the user owns, or a VPC the stack creates. */
export type NetworkSource =
    | { kind: "existing"; subnetIds: string[] }
    /** `zones` holds zone names or bare letters as given; `resolveZones` checks them against the region. */
    | { kind: "create"; zones: string[]; zoneCount: number };

export interface DomainSettings {
    domainName: string;
    hostedZoneName: string;
}

export interface ServiceConfig {
    /** `<project>/<stack>`: the ownership tag value. */
    stack: string;
    region: string;
    instanceName: string;
    instanceTypes: string[];
    architecture: "x86_64" | "arm64";
    spotProductDescription: string;
    /** The configured AMI; undefined selects the latest Amazon Linux 2023. */
    amiId?: string;
    keyName?: string;
    sshCidr?: string;
    network: NetworkSource;
    instancesPerZone: number;
    spotMaxPrice?: string;
    onDemandFallback: boolean;
    replaceOnRebalance: boolean;
    drainWhen: DrainWhen;
    appPort: number;
    healthCheckPath: string;
    /** The configured user data script; undefined selects the built-in page. */
    userData?: string;
    domain?: DomainSettings;
    reconcileMinutes: number;
    logRetentionDays: number;
    /** SNS topic the alarms notify; undefined for none. */
    alarmTopicArn?: string;
    /** Declare the FIS experiment templates `npm run drill` starts. */
    drill: boolean;
    /** How the deploy rolls a new launch template version through the fleet. */
    release: ReleaseSettings;
}

/** `drainWhen`: when a warned instance leaves the load balancer's rotation. */
export function parseDrainWhen(value: string): DrainWhen {
    if (!(DRAIN_WHEN as readonly string[]).includes(value)) {
        throw new ConfigError("drainWhen", `${JSON.stringify(value)} is not allowed; allowed: replacement-healthy (the default: serve until the replacement is healthy or the drain deadline) or warning (drain at once)`);
    }
    return value as DrainWhen;
}

/** Raw config as Pulumi hands it over: strings, arrays as JSON text, absent keys undefined. */
export type RawConfig = Partial<Record<ConfigKey, string>>;

export class ConfigError extends Error {
    constructor(key: string, message: string) {
        super(`Invalid configuration ${PROJECT}:${key}: ${message}`);
        this.name = "ConfigError";
    }
}

const INSTANCE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?$/;
const INSTANCE_TYPE = /^([a-z]+)(\d+)([a-z-]*)\.([a-z0-9]+)$/;
const SUBNET_ID = /^subnet-[0-9a-f]{8,17}$/;
const AMI_ID = /^ami-[0-9a-f]{8,17}$/;
const KEY_NAME = /^[\x20-\x7e]{1,255}$/;
const ZONE_LETTER = /^[a-z]$/;
const DOMAIN_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const PRICE = /^\d+(\.\d+)?$/;
const SNS_TOPIC_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/;
const CIDR_V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** Graviton types carry a `g` in their attributes (`t4g`, `m7gd`); `a1` is the first Graviton. */
export function architectureOf(instanceType: string): "x86_64" | "arm64" {
    const match = INSTANCE_TYPE.exec(instanceType);
    if (!match) {
        throw new Error(`not an instance type: ${instanceType}`);
    }
    const [, family, generation, attributes] = match;
    return attributes.includes("g") || (family === "a" && generation === "1") ? "arm64" : "x86_64";
}

export function isValidDomainName(name: string): boolean {
    const labels = name.split(".");
    return name.length <= 253 && labels.length >= 2 && labels.every((label) => DOMAIN_LABEL.test(label)) && /[a-z]/.test(labels[labels.length - 1]);
}

/** The hosted zone that holds `domainName` when none is configured: its parent, or itself for an apex. */
export function defaultHostedZone(domainName: string): string {
    const labels = domainName.split(".");
    return labels.length > 2 ? labels.slice(1).join(".") : domainName;
}

export function scheduleExpression(minutes: number): string {
    return minutes === 1 ? "rate(1 minute)" : `rate(${minutes} minutes)`;
}

export interface ConfigContext {
    stack: string;
    region: string | undefined;
    /** Reads `userDataFile`; throws when it cannot. */
    readFile: (path: string) => string;
}

/*
 * One rule per function, the way awsx validates a VPC's arguments: each takes the key's value as
 * read (absent keys already defaulted) and returns it checked, or throws a ConfigError that names
 * the key and what is allowed.
 */

/** A YAML list of strings, as Pulumi hands it over: JSON text. */
export function readStringList(key: ConfigKey, text: string): string[] {
    let value: unknown;
    try {
        value = JSON.parse(text);
    } catch {
        throw new ConfigError(key, `${JSON.stringify(text)} is not a list; allowed: a YAML list of strings`);
    }
    if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
        throw new ConfigError(key, `${text} is not a list of strings; allowed: a YAML list of strings`);
    }
    return value;
}

export function readInteger(key: ConfigKey, text: string, min: number, max: number): number {
    const value = Number(text);
    if (!/^-?\d+$/.test(text.trim()) || value < min || value > max) {
        throw new ConfigError(key, `${JSON.stringify(text)} is not allowed; allowed: a whole number from ${min} to ${max}`);
    }
    return value;
}

export function readBoolean(key: ConfigKey, text: string): boolean {
    if (text !== "true" && text !== "false") {
        throw new ConfigError(key, `${JSON.stringify(text)} is not allowed; allowed: true or false`);
    }
    return text === "true";
}

export function parseRegion(region: string | undefined): string {
    if (!region) {
        throw new Error("Invalid configuration aws:region: not set; allowed: an AWS region such as us-east-2 (pulumi config set aws:region us-east-2)");
    }
    return region;
}

export function parseInstanceName(value: string): string {
    if (!INSTANCE_NAME.test(value)) {
        throw new ConfigError("instanceName", `${JSON.stringify(value)} is not allowed; allowed: 1 to 64 letters, digits and '-', not starting or ending with '-'`);
    }
    return value;
}

/** Preferred first, each a real type name, none twice, one architecture (they share one AMI). */
export function parseInstanceTypes(types: string[]): { instanceTypes: string[]; architecture: "x86_64" | "arm64" } {
    if (types.length === 0) {
        throw new ConfigError("instanceTypes", "the list is empty; allowed: one or more instance types, preferred first, e.g. [t3.micro, t3a.micro]");
    }
    for (const type of types) {
        if (!INSTANCE_TYPE.test(type)) {
            throw new ConfigError("instanceTypes", `${JSON.stringify(type)} is not an instance type; allowed: names such as t3.micro or m7g.large`);
        }
    }
    if (new Set(types).size !== types.length) {
        throw new ConfigError("instanceTypes", `${JSON.stringify(types)} lists a type twice; allowed: each type once`);
    }
    if (new Set(types.map(architectureOf)).size > 1) {
        throw new ConfigError("instanceTypes", `${JSON.stringify(types)} mixes x86_64 and arm64 types, which cannot share one AMI; allowed: types of one architecture`);
    }
    return { instanceTypes: types, architecture: architectureOf(types[0]) };
}

export function parseSpotProductDescription(value: string): string {
    if (!SPOT_PRODUCT_DESCRIPTIONS.includes(value)) {
        throw new ConfigError("spotProductDescription", `${JSON.stringify(value)} is not allowed; allowed: ${SPOT_PRODUCT_DESCRIPTIONS.join(", ")}`);
    }
    return value;
}

/** Empty selects the latest Amazon Linux 2023. */
export function parseAmiId(value: string): string | undefined {
    if (value !== "" && !AMI_ID.test(value)) {
        throw new ConfigError("amiId", `${JSON.stringify(value)} is not allowed; allowed: an AMI id such as ami-0123456789abcdef0, or empty for the latest Amazon Linux 2023`);
    }
    return optional(value);
}

/** The name goes into the role's policy as `key-pair/<name>`: a `*` or `?` there is a wildcard. */
export function parseKeyName(value: string): string | undefined {
    if (value !== "" && (!KEY_NAME.test(value) || /[*?]/.test(value))) {
        throw new ConfigError("keyName", `${JSON.stringify(value)} is not allowed; allowed: the name of an EC2 key pair (printable ASCII, up to 255 characters, no * or ?)`);
    }
    return optional(value);
}

/** SSH opens only with a key: a CIDR alone would open a port nobody can log in through. */
export function parseSshCidr(value: string, keyName: string | undefined): string | undefined {
    if (value === "") {
        return undefined;
    }
    const match = CIDR_V4.exec(value);
    if (!match || match.slice(1, 5).some((octet) => Number(octet) > 255) || Number(match[5]) > 32) {
        throw new ConfigError("sshCidr", `${JSON.stringify(value)} is not allowed; allowed: an IPv4 CIDR block such as 203.0.113.7/32`);
    }
    if (Number(match[5]) === 0) {
        throw new ConfigError("sshCidr", `${JSON.stringify(value)} opens SSH to the whole internet; allowed: the block you connect from, such as 203.0.113.7/32 (or Session Manager, which needs no port)`);
    }
    if (keyName === undefined) {
        throw new ConfigError("sshCidr", "is set but keyName is not; allowed: set keyName too, or leave sshCidr empty");
    }
    return value;
}

export function parseSubnetIds(subnetIds: string[]): string[] {
    for (const id of subnetIds) {
        if (!SUBNET_ID.test(id)) {
            throw new ConfigError("subnetIds", `${JSON.stringify(id)} is not a subnet id; allowed: ids such as subnet-0123456789abcdef0`);
        }
    }
    if (new Set(subnetIds).size !== subnetIds.length) {
        throw new ConfigError("subnetIds", `${JSON.stringify(subnetIds)} lists a subnet twice; allowed: each subnet once`);
    }
    if (subnetIds.length < 2) {
        throw new ConfigError("subnetIds", "has one subnet; allowed: subnets in at least two zones (an Application Load Balancer needs two)");
    }
    return subnetIds;
}

/** Zone letters or names of the region; at least two, since an ALB needs two. Checked against the region's zones later. */
export function parseZones(zones: string[], region: string): string[] {
    if (zones.length === 1) {
        throw new ConfigError("zones", "has one zone; allowed: at least two zones (an Application Load Balancer needs two)");
    }
    for (const zone of zones) {
        if (!ZONE_LETTER.test(zone) && !(zone.startsWith(region) && ZONE_LETTER.test(zone.slice(region.length)))) {
            throw new ConfigError("zones", `${JSON.stringify(zone)} is not a zone of ${region}; allowed: zone letters such as a, b, c or names such as ${region}a`);
        }
    }
    return zones;
}

/** The user's subnets, or a VPC the stack creates: zones are never given twice. */
export function parseNetworkSource(args: { subnetIds: string[]; zones: string[]; zoneCount: number; zoneCountSet: boolean; region: string }): NetworkSource {
    if (args.subnetIds.length === 0) {
        return { kind: "create", zones: parseZones(args.zones, args.region), zoneCount: args.zoneCount };
    }
    if (args.zones.length > 0) {
        throw new ConfigError("zones", "is set together with subnetIds; zones are read from the subnets; allowed: subnetIds or zones, not both");
    }
    if (args.zoneCountSet) {
        throw new ConfigError("zoneCount", "is set together with subnetIds; zones are read from the subnets; allowed: subnetIds or zoneCount, not both");
    }
    return { kind: "existing", subnetIds: parseSubnetIds(args.subnetIds) };
}

export function parseSpotMaxPrice(value: string): string | undefined {
    if (value !== "" && (!PRICE.test(value) || Number(value) <= 0)) {
        throw new ConfigError("spotMaxPrice", `${JSON.stringify(value)} is not allowed; allowed: a positive hourly price in USD such as 0.0104, or empty to let AWS cap at on-demand`);
    }
    return optional(value);
}

/**
 * A URL path and query of the characters a URL needs and no shell does: no quote, `$`, backtick,
 * backslash or `;` can break out of a script that quotes it, and no `..` segment leaves a web root.
 */
const HEALTH_CHECK_PATH = /^\/[A-Za-z0-9\-._~/?=&%+,:@]{0,1023}$/;
const DOT_DOT_SEGMENT = /(^|\/)\.\.(\/|\?|$)/;

export function parseHealthCheckPath(value: string): string {
    if (!HEALTH_CHECK_PATH.test(value) || DOT_DOT_SEGMENT.test(value)) {
        throw new ConfigError("healthCheckPath", `${JSON.stringify(value)} is not allowed; allowed: a path starting with '/', up to 1024 characters of letters, digits and - . _ ~ / ? = & % + , : @, with no '..' segment`);
    }
    return value;
}

/** The script at `userDataFile`; undefined (empty key) selects the built-in page. */
export function parseUserDataFile(file: string, readFile: (path: string) => string): string | undefined {
    if (file === "") {
        return undefined;
    }
    let script: string;
    try {
        script = readFile(file);
    } catch (error) {
        throw new ConfigError("userDataFile", `${JSON.stringify(file)} cannot be read (${(error as Error).message}); allowed: a path to a readable script, relative to the project`);
    }
    if (script.trim() === "") {
        throw new ConfigError("userDataFile", `${JSON.stringify(file)} is empty; allowed: a script, or leave userDataFile empty for the built-in page`);
    }
    return script;
}

/** `domainName` and the hosted zone that holds it (its parent unless `hostedZoneName` says otherwise). */
export function parseDomain(domainName: string, hostedZoneName: string): DomainSettings | undefined {
    const name = optional(domainName.toLowerCase());
    const zoneName = optional(hostedZoneName.toLowerCase().replace(/\.$/, ""));
    if (name === undefined) {
        if (zoneName !== undefined) {
            throw new ConfigError("hostedZoneName", "is set but domainName is not; allowed: set domainName too, or leave hostedZoneName empty");
        }
        return undefined;
    }
    if (!isValidDomainName(name)) {
        throw new ConfigError("domainName", `${JSON.stringify(name)} is not a domain name; allowed: a fully qualified name such as www.example.com`);
    }
    const zone = zoneName ?? defaultHostedZone(name);
    if (!isValidDomainName(zone)) {
        throw new ConfigError("hostedZoneName", `${JSON.stringify(zone)} is not a domain name; allowed: the public hosted zone that holds domainName, such as example.com`);
    }
    if (name !== zone && !name.endsWith(`.${zone}`)) {
        throw new ConfigError("hostedZoneName", `${zone} does not hold ${name}; allowed: domainName itself or one of its parent domains`);
    }
    return { domainName: name, hostedZoneName: zone };
}

export function parseLogRetentionDays(text: string): number {
    const days = readInteger("logRetentionDays", text, 1, 3653);
    if (!LOG_RETENTION_DAYS.includes(days)) {
        throw new ConfigError("logRetentionDays", `${days} is not allowed; allowed: ${LOG_RETENTION_DAYS.join(", ")}`);
    }
    return days;
}

export function parseAlarmTopicArn(value: string): string | undefined {
    if (value !== "" && !SNS_TOPIC_ARN.test(value)) {
        throw new ConfigError("alarmTopicArn", `${JSON.stringify(value)} is not allowed; allowed: an SNS topic ARN such as arn:aws:sns:us-east-2:123456789012:ops, or empty for no notifications`);
    }
    return optional(value);
}

/** Allowed ranges of the whole-number keys (the README's config table shows them). */
export const INTEGER_RANGES = {
    zoneCount: [2, 26],
    instancesPerZone: [1, 20],
    appPort: [1, 65535],
    reconcileMinutes: [1, 60],
    releaseBatchPercent: [1, 100],
    // The deploy waits for a new version's instances inside Lambda's 900 s: at most 600 s for one
    // batch leaves room for the previous target group's registration and the old instances' drain.
    releaseHealthTimeoutSeconds: [60, 600],
} as const satisfies Partial<Record<ConfigKey, readonly [number, number]>>;

function optional(value: string): string | undefined {
    return value === "" ? undefined : value;
}

/** Every key, defaulted and checked by its rule; the first rule broken stops the program. */
export function parseConfig(raw: RawConfig, context: ConfigContext): ServiceConfig {
    const region = parseRegion(context.region);
    const text = (key: ConfigKey): string => raw[key] ?? String(DEFAULTS[key]);
    const list = (key: "instanceTypes" | "subnetIds" | "zones"): string[] => (raw[key] === undefined ? DEFAULTS[key] : readStringList(key, raw[key] as string));
    const integer = (key: keyof typeof INTEGER_RANGES): number => {
        const [min, max] = INTEGER_RANGES[key];
        return readInteger(key, text(key), min, max);
    };

    const { instanceTypes, architecture } = parseInstanceTypes(list("instanceTypes"));
    const keyName = parseKeyName(text("keyName"));
    const zoneCount = integer("zoneCount");
    return {
        stack: context.stack,
        region,
        instanceName: parseInstanceName(text("instanceName")),
        instanceTypes,
        architecture,
        spotProductDescription: parseSpotProductDescription(text("spotProductDescription")),
        amiId: parseAmiId(text("amiId")),
        keyName,
        sshCidr: parseSshCidr(text("sshCidr"), keyName),
        network: parseNetworkSource({ subnetIds: list("subnetIds"), zones: list("zones"), zoneCount, zoneCountSet: zoneCount !== DEFAULTS.zoneCount, region }),
        instancesPerZone: integer("instancesPerZone"),
        spotMaxPrice: parseSpotMaxPrice(text("spotMaxPrice")),
        onDemandFallback: readBoolean("onDemandFallback", text("onDemandFallback")),
        replaceOnRebalance: readBoolean("replaceOnRebalance", text("replaceOnRebalance")),
        drainWhen: parseDrainWhen(text("drainWhen")),
        appPort: integer("appPort"),
        healthCheckPath: parseHealthCheckPath(text("healthCheckPath")),
        userData: parseUserDataFile(text("userDataFile"), context.readFile),
        domain: parseDomain(text("domainName"), text("hostedZoneName")),
        reconcileMinutes: integer("reconcileMinutes"),
        logRetentionDays: parseLogRetentionDays(text("logRetentionDays")),
        alarmTopicArn: parseAlarmTopicArn(text("alarmTopicArn")),
        drill: readBoolean("drill", text("drill")),
        release: { batchPercent: integer("releaseBatchPercent"), healthTimeoutSeconds: integer("releaseHealthTimeoutSeconds") },
    };
}

/** Reads this stack's `spot-availability:*` and `aws:region` config and validates it. */
export function readConfig(): ServiceConfig {
    const config = new pulumi.Config(PROJECT);
    const raw: RawConfig = {};
    for (const key of CONFIG_KEYS) {
        const value = config.get(key);
        if (value !== undefined) {
            raw[key] = value;
        }
    }
    return parseConfig(raw, {
        stack: `${pulumi.getProject()}/${pulumi.getStack()}`,
        region: new pulumi.Config("aws").get("region") ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION,
        readFile: (path) => fs.readFileSync(path, "utf8"),
    });
}
