/**
 * The tag contract between the Pulumi program and the handler. EventBridge cannot filter by
 * tag, so these tags are how the handler tells this stack's instances from everything else in
 * the account, and how it knows which zone an instance is meant to hold.
 */
export const TAG = {
    name: "Name",
    stack: "spot-availability:stack",
    zone: "spot-availability:zone",
    launchedBy: "spot-availability:launched-by",
    replaces: "spot-availability:replaces",
    /** When AWS's notice that a replacement answers came (ISO 8601): what `NoticeToRegisteredMs` counts from. */
    noticedAt: "spot-availability:noticed-at",
} as const;

/** `pulumi`: the deploy (`pulumi up`'s invocation of the handler); `handler`: the handler answering an event. */
export type LaunchedBy = "pulumi" | "handler";

/** `us-east-2a` in `us-east-2` → `A`; the suffix that names an instance after its zone. */
export function zoneSuffix(zone: string, region: string): string {
    if (!zone.startsWith(region) || zone.length === region.length) {
        throw new Error(`zone ${zone} is not a zone of region ${region}`);
    }
    return zone.slice(region.length).replace(/^-/, "").toUpperCase();
}

/** The `Name` tag of every instance that holds `zone`: `Prometheus-A` for us-east-2a. */
export function instanceNameTag(instanceName: string, zone: string, region: string): string {
    return `${instanceName}-${zoneSuffix(zone, region)}`;
}

/** Key of the n-th (from 1) instance holding a zone in the `instances` output: `Prometheus-A`, then `Prometheus-A-2`. */
export function fleetMemberName(nameTag: string, ordinal: number): string {
    return ordinal === 1 ? nameTag : `${nameTag}-${ordinal}`;
}

/** Every tag an instance of this stack carries, in the order the SPEC lists them. */
export function instanceTags(args: {
    instanceName: string;
    stack: string;
    zone: string;
    region: string;
    launchedBy: LaunchedBy;
    replaces?: string;
    noticedAt?: Date;
}): Record<string, string> {
    return {
        [TAG.name]: instanceNameTag(args.instanceName, args.zone, args.region),
        [TAG.stack]: args.stack,
        [TAG.zone]: args.zone,
        [TAG.launchedBy]: args.launchedBy,
        ...(args.replaces ? { [TAG.replaces]: args.replaces } : {}),
        ...(args.noticedAt ? { [TAG.noticedAt]: args.noticedAt.toISOString() } : {}),
    };
}
