import { LaunchAttempt, poolKey } from "./model";
import { HandlerSettings } from "./settings";

/** Where to launch, in order: zones ranked by need and price, pools by type and market. */

/** Zones in launch order: fewest instances first, ties to the lowest spot price, then by name. */
export function chooseZones(counts: Record<string, number>, prices: Record<string, number> | undefined): string[] {
    const price = (zone: string) => prices?.[zone] ?? Number.POSITIVE_INFINITY;
    return Object.keys(counts).sort((a, b) => counts[a] - counts[b] || price(a) - price(b) || a.localeCompare(b));
}

export interface PoolPreferences {
    /** Pools AWS flagged (a warning or a recommendation): tried last among their zone's spot pools. */
    avoid?: ReadonlySet<string>;
    /** Pools known to have no capacity now: not tried at all. */
    unavailable?: ReadonlySet<string>;
    spotOnly?: boolean;
}

/** Every pool to try, in order: each zone with each instance type on spot, then, when allowed, the same on demand. */
export function launchAttempts(zones: string[], settings: HandlerSettings, preferences: PoolPreferences = {}): LaunchAttempt[] {
    const usable = (pool: LaunchAttempt) => !preferences.unavailable?.has(poolKey(pool));
    const avoided = (pool: LaunchAttempt) => preferences.avoid?.has(poolKey(pool)) ?? false;
    const pools = (market: LaunchAttempt["market"]) =>
        zones.flatMap((zone) => {
            const inZone = settings.instanceTypes.map((instanceType): LaunchAttempt => ({ zone, instanceType, market })).filter(usable);
            return [...inZone.filter((pool) => !avoided(pool)), ...inZone.filter(avoided)];
        });
    return preferences.spotOnly || !settings.onDemandFallback ? pools("spot") : [...pools("spot"), ...pools("on-demand")];
}

