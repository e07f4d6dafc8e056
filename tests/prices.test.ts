import * as assert from "assert";
import { EC2Client } from "@aws-sdk/client-ec2";
import { GetProductsCommand, PricingClient } from "@aws-sdk/client-pricing";
import { fleetCost, formatPriceReport, latestSpotPrices, onDemandPrice, operatingSystemOf, parsePricesArgs, priceReport, RunningInstance } from "../tools/prices";
import { CREDENTIALS, Emulator } from "../rehearsal/emulator";
import { freshWorld, REGION, STACK } from "../rehearsal/world";

/** `npm run prices`: spot next to on-demand, and what the running fleet costs. */

const ZONES = ["us-east-2a", "us-east-2b", "us-east-2c"];
const FLEET = { region: REGION, stack: STACK, instanceName: "Prometheus", zones: ZONES, instancesPerZone: 1, instanceTypes: ["t3.micro", "t3a.micro"], spotProductDescription: "Linux/UNIX" };

/** A Price List product document as GetProducts returns it (abridged: the reserved terms left out). */
function product(instanceType: string, usd: string): string {
    return JSON.stringify({
        product: { productFamily: "Compute Instance", attributes: { instanceType, regionCode: REGION, operatingSystem: "Linux", tenancy: "Shared" }, sku: `SKU${instanceType}` },
        serviceCode: "AmazonEC2",
        terms: {
            OnDemand: {
                [`SKU${instanceType}.JRTCKXETXF`]: {
                    offerTermCode: "JRTCKXETXF",
                    priceDimensions: {
                        [`SKU${instanceType}.JRTCKXETXF.6YS6EN2CT7`]: { unit: "Hrs", description: `$${usd} per On Demand Linux ${instanceType} Instance Hour`, pricePerUnit: { USD: usd } },
                    },
                },
            },
        },
    });
}

describe("the prices command line", () => {
    it("takes a stack", () => {
        assert.deepStrictEqual(parsePricesArgs(["--stack", "dev"]), { stack: "dev" });
        assert.throws(() => parsePricesArgs([]), /--stack is required\nusage: npm run prices -- --stack <name>/);
        assert.throws(() => parsePricesArgs(["--stack", "dev", "--zone", "a"]), /Unknown option '--zone'; allowed: --stack/);
    });
});

describe("prices", () => {
    it("maps spot product descriptions to the Price List's operating systems", () => {
        assert.deepStrictEqual(["Linux/UNIX", "Linux/UNIX (Amazon VPC)", "Red Hat Enterprise Linux", "SUSE Linux", "Windows (Amazon VPC)"].map(operatingSystemOf), ["Linux", "Linux", "RHEL", "SUSE", "Windows"]);
        assert.throws(() => operatingSystemOf("BSD"), /no on-demand price for product description "BSD"; allowed: Linux\/UNIX, Red Hat Enterprise Linux, SUSE Linux, Windows/);
    });

    it("reads the hourly on-demand price from a Price List document", () => {
        assert.strictEqual(onDemandPrice(product("t3.micro", "0.0104000000")), 0.0104);
        assert.strictEqual(onDemandPrice(product("t3.micro", "0.0000000000")), undefined, "a zero price is a placeholder, not a price");
        assert.strictEqual(onDemandPrice(JSON.stringify({ terms: {} })), undefined);
    });

    it("keeps the latest spot price of each type in each of the fleet's zones", () => {
        const at = (minutes: number) => new Date(Date.UTC(2026, 10, 24, 12, minutes));
        const table = latestSpotPrices([
            { instanceType: "t3.micro", zone: "us-east-2a", price: 0.0040, timestamp: at(0) },
            { instanceType: "t3.micro", zone: "us-east-2a", price: 0.0035, timestamp: at(5) },
            { instanceType: "t3.micro", zone: "us-east-2b", price: 0.0031, timestamp: at(1) },
            { instanceType: "t3.micro", zone: "us-east-2d", price: 0.0010, timestamp: at(9) },
        ], ZONES);
        assert.deepStrictEqual(table, { "t3.micro": { "us-east-2a": 0.0035, "us-east-2b": 0.0031 } });
    });

    it("prices spot instances at their pool's spot price and on-demand ones at on-demand, and names what it could not price", () => {
        const instances: RunningInstance[] = [
            { id: "i-a", instanceType: "t3.micro", zone: "us-east-2a", market: "spot" },
            { id: "i-b", instanceType: "t3a.micro", zone: "us-east-2b", market: "on-demand" },
            { id: "i-c", instanceType: "t2.micro", zone: "us-east-2c", market: "spot" },
        ];
        const cost = fleetCost(instances, { "t3.micro": { "us-east-2a": 0.0031 } }, { "t3.micro": 0.0104, "t3a.micro": 0.0094 });
        assert.deepStrictEqual({ ...cost, hourly: cost.hourly.toFixed(4), onDemandHourly: cost.onDemandHourly.toFixed(4), saving: cost.saving.toFixed(3) }, {
            instances: 3,
            spot: 2,
            onDemand: 1,
            hourly: "0.0125",
            onDemandHourly: "0.0198",
            saving: "0.369",
            unpriced: ["i-c (t2.micro spot in us-east-2c)"],
        });
    });

    it("prints a table of spot next to on-demand and the fleet's hourly and monthly cost", () => {
        const spot = { "t3.micro": { "us-east-2a": 0.0031, "us-east-2b": 0.0032, "us-east-2c": 0.0052 }, "t3a.micro": { "us-east-2a": 0.0030 } };
        const onDemand = { "t3.micro": 0.0104, "t3a.micro": 0.0094 };
        const instances: RunningInstance[] = ZONES.map((zone) => ({ id: `i-${zone}`, instanceType: "t3.micro", zone, market: "spot" }));
        assert.deepStrictEqual(formatPriceReport(FLEET, spot, onDemand, fleetCost(instances, spot, onDemand)), [
            "spot-availability/test in us-east-2 (Linux/UNIX), USD per hour",
            "type        on-demand   us-east-2a spot   us-east-2b spot   us-east-2c spot",
            "t3.micro    $0.0104     $0.0031 (-70%)    $0.0032 (-69%)    $0.0052 (-50%)",
            "t3a.micro   $0.0094     $0.0030 (-68%)    -                 -",
            "fleet now: 3 instances (3 spot, 0 on-demand): $0.0115/h, ~$8.39/month; on demand: $0.0312/h, ~$22.78/month; saving 63%",
        ]);
    });
});

describe("npm run prices on the emulated stack", () => {
    let emulator: Emulator;
    beforeEach(async () => {
        ({ emulator } = await freshWorld());
    });

    it("asks EC2 for spot prices and the Price List for on-demand ones, and costs the running fleet", async () => {
        emulator.proxy.spotPrices = { "us-east-2a": { "t3.micro": 0.0031, "t3a.micro": 0.0030 }, "us-east-2b": { "t3.micro": 0.0032 }, "us-east-2c": { "t3.micro": 0.0052 } };
        const asked: Record<string, string>[] = [];
        const pricing = {
            send: async (command: GetProductsCommand) => {
                assert.ok(command instanceof GetProductsCommand, `only GetProducts, not ${command.constructor.name}`);
                assert.strictEqual(command.input.ServiceCode, "AmazonEC2");
                const filters = Object.fromEntries((command.input.Filters ?? []).map((filter) => [filter.Field, filter.Value as string]));
                asked.push(filters);
                const prices: Record<string, string> = { "t3.micro": "0.0104000000", "t3a.micro": "0.0094000000" };
                return { PriceList: [product(filters.instanceType, prices[filters.instanceType])], FormatVersion: "aws_v1" };
            },
        } as unknown as PricingClient;

        // Through the fault proxy, which answers DescribeSpotPriceHistory with the prices above.
        const ec2 = new EC2Client({ region: REGION, endpoint: emulator.endpoint, credentials: CREDENTIALS });
        const lines = await priceReport({ ec2, pricing }, FLEET);

        assert.deepStrictEqual(asked.sort((a, b) => a.instanceType.localeCompare(b.instanceType)).map((filters) => filters.instanceType), ["t3.micro", "t3a.micro"]);
        assert.deepStrictEqual(asked[0], {
            regionCode: "us-east-2",
            instanceType: "t3.micro",
            operatingSystem: "Linux",
            tenancy: "Shared",
            preInstalledSw: "NA",
            capacitystatus: "Used",
            licenseModel: "No License required",
        });
        assert.strictEqual(lines[2], "t3.micro    $0.0104     $0.0031 (-70%)    $0.0032 (-69%)    $0.0052 (-50%)");
        assert.strictEqual(lines[4], "fleet now: 3 instances (3 spot, 0 on-demand): $0.0115/h, ~$8.39/month; on demand: $0.0312/h, ~$22.78/month; saving 63%");
    });
});
