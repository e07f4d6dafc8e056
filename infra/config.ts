import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import { DRAIN_WHEN, DrainWhen } from "../handler/settings";

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

export function parseConfig(raw: RawConfig, context: ConfigContext): ServiceConfig {
    if (!context.region) {
        throw new Error("Invalid configuration aws:region: not set; allowed: an AWS region such as us-east-2 (pulumi config set aws:region us-east-2)");
    }
    const region = context.region;

    const string = (key: ConfigKey, fallback: string): string => raw[key] ?? fallback;
    const stringArray = (key: ConfigKey, fallback: string[]): string[] => {
        const text = raw[key];
        if (text === undefined) {
            return fallback;
        }
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
    };
    const integer = (key: ConfigKey, fallback: number, min: number, max: number): number => {
        const text = raw[key];
        if (text === undefined) {
            return fallback;
        }
        const value = Number(text);
        if (!/^-?\d+$/.test(text.trim()) || value < min || value > max) {
            throw new ConfigError(key, `${JSON.stringify(text)} is not allowed; allowed: a whole number from ${min} to ${max}`);
        }
        return value;
    };
    const boolean = (key: ConfigKey, fallback: boolean): boolean => {
        const text = raw[key];
        if (text === undefined) {
            return fallback;
        }
        if (text !== "true" && text !== "false") {
            throw new ConfigError(key, `${JSON.stringify(text)} is not allowed; allowed: true or false`);
        }
        return text === "true";
    };
    const optional = (value: string): string | undefined => (value === "" ? undefined : value);

    const instanceName = string("instanceName", DEFAULTS.instanceName);
    if (!INSTANCE_NAME.test(instanceName)) {
        throw new ConfigError(
            "instanceName",
            `${JSON.stringify(instanceName)} is not allowed; allowed: 1 to 64 letters, digits and '-', not starting or ending with '-'`,
        );
    }

    const instanceTypes = stringArray("instanceTypes", DEFAULTS.instanceTypes);
    if (instanceTypes.length === 0) {
        throw new ConfigError("instanceTypes", "the list is empty; allowed: one or more instance types, preferred first, e.g. [t3.micro, t3a.micro]");
    }
    for (const type of instanceTypes) {
        if (!INSTANCE_TYPE.test(type)) {
            throw new ConfigError("instanceTypes", `${JSON.stringify(type)} is not an instance type; allowed: names such as t3.micro or m7g.large`);
        }
    }
    if (new Set(instanceTypes).size !== instanceTypes.length) {
        throw new ConfigError("instanceTypes", `${JSON.stringify(instanceTypes)} lists a type twice; allowed: each type once`);
    }
    const architectures = new Set(instanceTypes.map(architectureOf));
    if (architectures.size > 1) {
        throw new ConfigError(
            "instanceTypes",
            `${JSON.stringify(instanceTypes)} mixes x86_64 and arm64 types, which cannot share one AMI; allowed: types of one architecture`,
        );
    }
    const architecture = architectureOf(instanceTypes[0]);

    const spotProductDescription = string("spotProductDescription", DEFAULTS.spotProductDescription);
    if (!SPOT_PRODUCT_DESCRIPTIONS.includes(spotProductDescription)) {
        throw new ConfigError(
            "spotProductDescription",
            `${JSON.stringify(spotProductDescription)} is not allowed; allowed: ${SPOT_PRODUCT_DESCRIPTIONS.join(", ")}`,
        );
    }

    const amiId = string("amiId", DEFAULTS.amiId);
    if (amiId !== "" && !AMI_ID.test(amiId)) {
        throw new ConfigError("amiId", `${JSON.stringify(amiId)} is not allowed; allowed: an AMI id such as ami-0123456789abcdef0, or empty for the latest Amazon Linux 2023`);
    }

    const keyName = optional(string("keyName", DEFAULTS.keyName));
    if (keyName !== undefined && !KEY_NAME.test(keyName)) {
        throw new ConfigError("keyName", `${JSON.stringify(keyName)} is not allowed; allowed: the name of an EC2 key pair (printable ASCII, up to 255 characters)`);
    }
    const sshCidr = optional(string("sshCidr", DEFAULTS.sshCidr));
    if (sshCidr !== undefined) {
        const match = CIDR_V4.exec(sshCidr);
        if (!match || match.slice(1, 5).some((octet) => Number(octet) > 255) || Number(match[5]) > 32) {
            throw new ConfigError("sshCidr", `${JSON.stringify(sshCidr)} is not allowed; allowed: an IPv4 CIDR block such as 203.0.113.7/32`);
        }
        if (keyName === undefined) {
            throw new ConfigError("sshCidr", "is set but keyName is not; allowed: set keyName too, or leave sshCidr empty");
        }
    }

    const subnetIds = stringArray("subnetIds", DEFAULTS.subnetIds);
    const zones = stringArray("zones", DEFAULTS.zones);
    const zoneCountSet = raw.zoneCount !== undefined && Number(raw.zoneCount) !== DEFAULTS.zoneCount;
    const zoneCount = integer("zoneCount", DEFAULTS.zoneCount, 2, 26);
    let network: NetworkSource;
    if (subnetIds.length > 0) {
        if (zones.length > 0) {
            throw new ConfigError("zones", "is set together with subnetIds; zones are read from the subnets; allowed: subnetIds or zones, not both");
        }
        if (zoneCountSet) {
            throw new ConfigError("zoneCount", "is set together with subnetIds; zones are read from the subnets; allowed: subnetIds or zoneCount, not both");
        }
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
        network = { kind: "existing", subnetIds };
    } else {
        if (zones.length === 1) {
            throw new ConfigError("zones", "has one zone; allowed: at least two zones (an Application Load Balancer needs two)");
        }
        for (const zone of zones) {
            if (!ZONE_LETTER.test(zone) && !(zone.startsWith(region) && ZONE_LETTER.test(zone.slice(region.length)))) {
                throw new ConfigError("zones", `${JSON.stringify(zone)} is not a zone of ${region}; allowed: zone letters such as a, b, c or names such as ${region}a`);
            }
        }
        network = { kind: "create", zones, zoneCount };
    }

    const instancesPerZone = integer("instancesPerZone", DEFAULTS.instancesPerZone, 1, 20);

    const spotMaxPrice = optional(string("spotMaxPrice", DEFAULTS.spotMaxPrice));
    if (spotMaxPrice !== undefined && (!PRICE.test(spotMaxPrice) || Number(spotMaxPrice) <= 0)) {
        throw new ConfigError("spotMaxPrice", `${JSON.stringify(spotMaxPrice)} is not allowed; allowed: a positive hourly price in USD such as 0.0104, or empty to let AWS cap at on-demand`);
    }

    const appPort = integer("appPort", DEFAULTS.appPort, 1, 65535);
    const healthCheckPath = string("healthCheckPath", DEFAULTS.healthCheckPath);
    if (!/^\/[\x21-\x7e]{0,1023}$/.test(healthCheckPath)) {
        throw new ConfigError("healthCheckPath", `${JSON.stringify(healthCheckPath)} is not allowed; allowed: a path starting with '/', without spaces, up to 1024 characters`);
    }

    const userDataFile = optional(string("userDataFile", DEFAULTS.userDataFile));
    let userData: string | undefined;
    if (userDataFile !== undefined) {
        try {
            userData = context.readFile(userDataFile);
        } catch (error) {
            throw new ConfigError("userDataFile", `${JSON.stringify(userDataFile)} cannot be read (${(error as Error).message}); allowed: a path to a readable script, relative to the project`);
        }
        if (userData.trim() === "") {
            throw new ConfigError("userDataFile", `${JSON.stringify(userDataFile)} is empty; allowed: a script, or leave userDataFile empty for the built-in page`);
        }
    }

    const domainName = optional(string("domainName", DEFAULTS.domainName).toLowerCase());
    const hostedZoneName = optional(string("hostedZoneName", DEFAULTS.hostedZoneName).toLowerCase().replace(/\.$/, ""));
    let domain: DomainSettings | undefined;
    if (domainName !== undefined) {
        if (!isValidDomainName(domainName)) {
            throw new ConfigError("domainName", `${JSON.stringify(domainName)} is not a domain name; allowed: a fully qualified name such as www.example.com`);
        }
        const zone = hostedZoneName ?? defaultHostedZone(domainName);
        if (!isValidDomainName(zone)) {
            throw new ConfigError("hostedZoneName", `${JSON.stringify(zone)} is not a domain name; allowed: the public hosted zone that holds domainName, such as example.com`);
        }
        if (domainName !== zone && !domainName.endsWith(`.${zone}`)) {
            throw new ConfigError("hostedZoneName", `${zone} does not hold ${domainName}; allowed: domainName itself or one of its parent domains`);
        }
        domain = { domainName, hostedZoneName: zone };
    } else if (hostedZoneName !== undefined) {
        throw new ConfigError("hostedZoneName", "is set but domainName is not; allowed: set domainName too, or leave hostedZoneName empty");
    }

    const reconcileMinutes = integer("reconcileMinutes", DEFAULTS.reconcileMinutes, 1, 60);
    const logRetentionDays = integer("logRetentionDays", DEFAULTS.logRetentionDays, 1, 3653);
    if (!LOG_RETENTION_DAYS.includes(logRetentionDays)) {
        throw new ConfigError("logRetentionDays", `${logRetentionDays} is not allowed; allowed: ${LOG_RETENTION_DAYS.join(", ")}`);
    }

    const alarmTopicArn = optional(string("alarmTopicArn", DEFAULTS.alarmTopicArn));
    if (alarmTopicArn !== undefined && !SNS_TOPIC_ARN.test(alarmTopicArn)) {
        throw new ConfigError("alarmTopicArn", `${JSON.stringify(alarmTopicArn)} is not allowed; allowed: an SNS topic ARN such as arn:aws:sns:us-east-2:123456789012:ops, or empty for no notifications`);
    }

    return {
        stack: context.stack,
        region,
        instanceName,
        instanceTypes,
        architecture,
        spotProductDescription,
        amiId: optional(amiId),
        keyName,
        sshCidr,
        network,
        instancesPerZone,
        spotMaxPrice,
        onDemandFallback: boolean("onDemandFallback", DEFAULTS.onDemandFallback),
        replaceOnRebalance: boolean("replaceOnRebalance", DEFAULTS.replaceOnRebalance),
        drainWhen: parseDrainWhen(raw.drainWhen ?? DEFAULTS.drainWhen),
        appPort,
        healthCheckPath,
        userData,
        domain,
        reconcileMinutes,
        logRetentionDays,
        alarmTopicArn,
        drill: boolean("drill", DEFAULTS.drill),
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
