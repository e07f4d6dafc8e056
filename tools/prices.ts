import { _InstanceType, EC2Client, paginateDescribeSpotPriceHistory } from "@aws-sdk/client-ec2";
import { GetProductsCommand, PricingClient } from "@aws-sdk/client-pricing";
import { describeStackInstances } from "../handler/aws";
import { ObservedInstance } from "../handler/model";
import type { FleetSummary } from "../infra/fleetSummary";
import { parseOptions } from "./cli";

/**
 * `npm run prices`: what the stack's fleet costs now. Current spot prices per zone and instance
 * type next to the on-demand price (AWS Price List API), and the running fleet's hourly cost
 * against the same instances on demand.
 */

export const PRICES_USAGE = "npm run prices -- --stack <name> [--help]\n  Spot against on-demand prices for the stack's instance types in its zones, and what the fleet costs per month.";

/** Hours in an average month (8,760 / 12), the unit AWS's own calculator uses. */
export const HOURS_PER_MONTH = 730;

/** The Price List API answers in us-east-1 (also eu-central-1 and ap-south-1) for every region. */
export const PRICING_REGION = "us-east-1";

export function parsePricesArgs(argv: string[]): { stack: string } {
    return { stack: parseOptions(argv, ["stack"], [], PRICES_USAGE).stack };
}

/** The Price List's `operatingSystem` for a spot product description (`Linux/UNIX (Amazon VPC)` → `Linux`). */
export function operatingSystemOf(productDescription: string): string {
    const base = productDescription.replace(/ \(Amazon VPC\)$/, "");
    const systems: Record<string, string> = { "Linux/UNIX": "Linux", "Red Hat Enterprise Linux": "RHEL", "SUSE Linux": "SUSE", "Windows": "Windows" };
    const system = systems[base];
    if (system === undefined) {
        throw new Error(`no on-demand price for product description ${JSON.stringify(productDescription)}; allowed: ${Object.keys(systems).join(", ")}, each optionally with " (Amazon VPC)"`);
    }
    return system;
}

/** The hourly on-demand USD price in one Price List product document, or undefined if it has none. */
export function onDemandPrice(product: unknown): number | undefined {
    const document = (typeof product === "string" ? JSON.parse(product) : product) as {
        terms?: { OnDemand?: Record<string, { priceDimensions?: Record<string, { unit?: string; pricePerUnit?: { USD?: string } }> }> };
    };
    const prices = Object.values(document.terms?.OnDemand ?? {})
        .flatMap((offer) => Object.values(offer.priceDimensions ?? {}))
        .filter((dimension) => dimension.unit === "Hrs")
        .map((dimension) => Number(dimension.pricePerUnit?.USD))
        .filter((price) => Number.isFinite(price) && price > 0);
    return prices.length === 0 ? undefined : Math.min(...prices);
}

/** Spot prices: instance type → zone → USD per hour. */
export type SpotPriceTable = Record<string, Record<string, number>>;

export interface SpotPricePoint {
    instanceType: string;
    zone: string;
    price: number;
    timestamp: Date;
}

/** The latest price of each type in each of the fleet's zones. */
export function latestSpotPrices(history: SpotPricePoint[], zones: string[]): SpotPriceTable {
    const latest = new Map<string, SpotPricePoint>();
    for (const point of history) {
        const key = `${point.instanceType} ${point.zone}`;
        const seen = latest.get(key);
        if (zones.includes(point.zone) && (seen === undefined || point.timestamp > seen.timestamp)) {
            latest.set(key, point);
        }
    }
    const table: SpotPriceTable = {};
    for (const point of latest.values()) {
        (table[point.instanceType] ??= {})[point.zone] = point.price;
    }
    return table;
}

export type RunningInstance = Pick<ObservedInstance, "id" | "instanceType" | "zone" | "market">;

export interface FleetCost {
    instances: number;
    spot: number;
    onDemand: number;
    /** USD per hour at today's prices: spot instances at their pool's spot price. */
    hourly: number;
    /** USD per hour had every instance run on demand. */
    onDemandHourly: number;
    /** 1 − hourly / onDemandHourly. */
    saving: number;
    /** Instances whose price is unknown, left out of both sums. */
    unpriced: string[];
}

export function fleetCost(instances: RunningInstance[], spot: SpotPriceTable, onDemand: Record<string, number>): FleetCost {
    let hourly = 0;
    let onDemandHourly = 0;
    const unpriced: string[] = [];
    for (const instance of instances) {
        const full = onDemand[instance.instanceType];
        const paid = instance.market === "spot" ? spot[instance.instanceType]?.[instance.zone] : full;
        if (full === undefined || paid === undefined) {
            unpriced.push(`${instance.id} (${instance.instanceType} ${instance.market} in ${instance.zone})`);
            continue;
        }
        hourly += paid;
        onDemandHourly += full;
    }
    return {
        instances: instances.length,
        spot: instances.filter((i) => i.market === "spot").length,
        onDemand: instances.filter((i) => i.market === "on-demand").length,
        hourly,
        onDemandHourly,
        saving: onDemandHourly === 0 ? 0 : 1 - hourly / onDemandHourly,
        unpriced,
    };
}

const usd = (price: number | undefined) => (price === undefined ? "-" : `$${price.toFixed(4)}`);
const percent = (fraction: number) => `${Math.round(fraction * 100)}%`;

export function formatPriceReport(fleet: FleetSummary, spot: SpotPriceTable, onDemand: Record<string, number>, cost: FleetCost): string[] {
    const width = 18;
    const lines = [
        `${fleet.stack} in ${fleet.region} (${fleet.spotProductDescription}), USD per hour`,
        ["type".padEnd(12), "on-demand".padEnd(12), ...fleet.zones.map((zone) => `${zone} spot`.padEnd(width))].join("").trimEnd(),
    ];
    for (const type of fleet.instanceTypes) {
        const full = onDemand[type];
        const cells = fleet.zones.map((zone) => {
            const price = spot[type]?.[zone];
            return (price === undefined ? "-" : full === undefined ? usd(price) : `${usd(price)} (-${percent(1 - price / full)})`).padEnd(width);
        });
        lines.push([type.padEnd(12), usd(full).padEnd(12), ...cells].join("").trimEnd());
    }
    lines.push(
        `fleet now: ${cost.instances} instances (${cost.spot} spot, ${cost.onDemand} on-demand): ${usd(cost.hourly)}/h, ~$${(cost.hourly * HOURS_PER_MONTH).toFixed(2)}/month; ` +
        `on demand: ${usd(cost.onDemandHourly)}/h, ~$${(cost.onDemandHourly * HOURS_PER_MONTH).toFixed(2)}/month; saving ${percent(cost.saving)}`,
    );
    if (cost.unpriced.length > 0) {
        lines.push(`left out, no price found: ${cost.unpriced.join(", ")}`);
    }
    return lines;
}

export interface PriceClients {
    ec2: EC2Client;
    pricing: Pick<PricingClient, "send">;
}

export async function readSpotPrices(ec2: EC2Client, fleet: FleetSummary): Promise<SpotPriceTable> {
    const history: SpotPricePoint[] = [];
    const pages = paginateDescribeSpotPriceHistory({ client: ec2 }, {
        InstanceTypes: fleet.instanceTypes as _InstanceType[],
        ProductDescriptions: [fleet.spotProductDescription],
        // A start time of now returns the price in effect now.
        StartTime: new Date(),
    });
    for await (const page of pages) {
        for (const entry of page.SpotPriceHistory ?? []) {
            history.push({ instanceType: entry.InstanceType as string, zone: entry.AvailabilityZone as string, price: Number(entry.SpotPrice), timestamp: entry.Timestamp ?? new Date(0) });
        }
    }
    return latestSpotPrices(history, fleet.zones);
}

export async function readOnDemandPrices(pricing: PriceClients["pricing"], fleet: FleetSummary): Promise<Record<string, number>> {
    const operatingSystem = operatingSystemOf(fleet.spotProductDescription);
    const prices: Record<string, number> = {};
    await Promise.all(fleet.instanceTypes.map(async (instanceType) => {
        const match = (Field: string, Value: string) => ({ Type: "TERM_MATCH" as const, Field, Value });
        const result = await pricing.send(new GetProductsCommand({
            ServiceCode: "AmazonEC2",
            Filters: [
                match("regionCode", fleet.region),
                match("instanceType", instanceType),
                match("operatingSystem", operatingSystem),
                match("tenancy", "Shared"),
                match("preInstalledSw", "NA"),
                match("capacitystatus", "Used"),
                match("licenseModel", "No License required"),
            ],
        }));
        const found = ((result.PriceList ?? []) as unknown[]).map(onDemandPrice).filter((price): price is number => price !== undefined);
        if (found.length > 0) {
            prices[instanceType] = Math.min(...found);
        }
    }));
    return prices;
}

/** The stack's pending and running instances, with the market each runs on. */
export async function readRunningInstances(ec2: EC2Client, stack: string): Promise<RunningInstance[]> {
    const instances = await describeStackInstances(ec2, stack, ["pending", "running"]);
    return instances.map(({ id, instanceType, zone, market }) => ({ id, instanceType, zone, market }));
}

export async function priceReport(clients: PriceClients, fleet: FleetSummary): Promise<string[]> {
    const [spot, onDemand, instances] = await Promise.all([
        readSpotPrices(clients.ec2, fleet),
        readOnDemandPrices(clients.pricing, fleet),
        readRunningInstances(clients.ec2, fleet.stack),
    ]);
    return formatPriceReport(fleet, spot, onDemand, fleetCost(instances, spot, onDemand));
}
