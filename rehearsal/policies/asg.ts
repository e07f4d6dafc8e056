import { EC2Client, RunInstancesCommand, TerminateInstancesCommand, _InstanceType } from "@aws-sdk/client-ec2";
import { DeregisterTargetsCommand, ElasticLoadBalancingV2Client, RegisterTargetsCommand } from "@aws-sdk/client-elastic-load-balancing-v2";
import { instanceTags } from "../../handler/tags";
import { AWS_INTERNAL_ACCESS_KEY } from "../clockProxy";
import { Ec2Signal } from "../fleet";
import { Stage } from "../stage";

/**
 * An Auto Scaling group over the same instances, as AWS documents it (its own machinery, so its
 * calls are not counted as the policy's): spot only, the stack's instance types as a mixed
 * instances policy, desired capacity zones × instancesPerZone.
 * - Without Capacity Rebalancing it "doesn't replace a Spot Instance until after the Amazon EC2
 *   Spot service interrupts the instance and its health check fails": here, once EC2 reports it
 *   terminated, at its next health check.
 *   https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-capacity-rebalancing.html
 * - With Capacity Rebalancing it launches a replacement on the rebalance recommendation and
 *   "waits until the new instance passes its health check before it terminates" the old one,
 *   which it first deregisters (draining) from the target group. (same page)
 * - A launch goes to the zone with the fewest instances, to a pool with capacity (the
 *   capacity-optimized allocation knows which have some); when a zone has none it launches in
 *   another, and rebalances once the zone recovers: the new instance first, then one from the
 *   fullest zone is terminated.
 *   https://docs.aws.amazon.com/autoscaling/ec2/userguide/auto-scaling-benefits.html#AutoScalingBehavior.InstanceUsage
 * - An instance refresh to a new launch template version, at minimum healthy 100 % and maximum
 *   healthy 200 % (launch before terminating), checkpoints off: it replaces instances "in batches
 *   based on the minimum and maximum healthy percentages", launching "the new instances first
 *   before terminating the old ones"; a batch's old instances go (deregistered, drained, then
 *   terminated) once its new ones pass their health checks (ELB) and the instance warmup.
 *   https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-overview.html
 *   https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-instance-maintenance-policy.html
 */

/** The refresh's maximum healthy percentage: the group may grow to twice its desired capacity, so one batch replaces it all. */
const MAX_HEALTHY_PERCENT = 200;

interface Member {
    id: string;
    zone: string;
    /** The at-risk member this one was launched to replace (Capacity Rebalancing). */
    replaces?: string;
    /** Launched to move capacity back into a zone; one member of the fullest zone goes once it serves. */
    rebalancing?: boolean;
    /** In the instance refresh's current batch, replacing `replaces`. */
    refreshing?: boolean;
}

export class AutoScalingGroup {
    private readonly members = new Map<string, Member>();
    /** Members on their way out: interrupted, or being terminated by the group. */
    private readonly leaving = new Set<string>();
    private readonly ec2: EC2Client;
    private readonly elb: ElasticLoadBalancingV2Client;
    private readonly desired: number;
    /** A health check still under way (its calls take modelled time): the next one waits its turn. */
    private checking = false;
    /** The launch template version the group launches: `$Default` until an instance refresh names one. */
    private launchVersion = "$Default";
    /** The version an instance refresh under way rolls the group to. */
    private refreshTo?: number;

    constructor(
        private readonly stage: Stage,
        private readonly capacityRebalance: boolean,
    ) {
        const connection = { region: stage.stack.region, endpoint: stage.endpoint, credentials: { accessKeyId: AWS_INTERNAL_ACCESS_KEY, secretAccessKey: AWS_INTERNAL_ACCESS_KEY } };
        this.ec2 = new EC2Client(connection);
        this.elb = new ElasticLoadBalancingV2Client(connection);
        this.desired = stage.stack.zones.length * stage.stack.instancesPerZone;
    }

    start(): void {
        for (const instance of this.stage.fleet.instances.values()) {
            this.members.set(instance.id, { id: instance.id, zone: instance.zone });
        }
        this.stage.fleet.onSignal((signal) => this.onSignal(signal));
        const tick = () => {
            if (this.stage.stopped) {
                return;
            }
            if (!this.checking) {
                this.checking = true;
                this.stage.spawn(this.healthCheck().finally(() => (this.checking = false)));
            }
            this.stage.clock.after(this.stage.model.asgHealthCheckIntervalS, tick);
        };
        this.stage.clock.after(this.stage.model.asgHealthCheckIntervalS, tick);
    }

    /**
     * StartInstanceRefresh with the new version as the desired configuration: the group launches
     * from it from now on (refills too), and the next health checks roll the fleet.
     */
    startInstanceRefresh(version: number): void {
        this.refreshTo = version;
        this.launchVersion = String(version);
        this.stage.log(`asg: instance refresh to launch template version ${version} (minimum healthy 100 %, maximum ${MAX_HEALTHY_PERCENT} %)`);
    }

    private onSignal(signal: Ec2Signal): void {
        const member = this.members.get(signal.instanceId);
        if (member === undefined) {
            return;
        }
        if (signal.kind === "rebalance-recommendation" && this.capacityRebalance && !this.leaving.has(member.id) && !this.replacementOf(member.id)) {
            this.stage.spawn(this.launch([member.zone, ...this.zonesByCount()], { replaces: member.id, avoidType: this.stage.fleet.instances.get(member.id)?.instanceType }));
        }
        if (signal.kind === "state-change" && signal.state === "running") {
            // InService: the group registers its instance with the target group.
            this.stage.spawn(this.elb.send(new RegisterTargetsCommand({ TargetGroupArn: this.stage.stack.targetGroupArn, Targets: [{ Id: member.id }] })));
        }
    }

    /** Each health check: members EC2 reports terminated leave, the group refills, and it keeps zones balanced. */
    private async healthCheck(): Promise<void> {
        const { fleet } = this.stage;
        for (const member of this.members.values()) {
            if (!this.leaving.has(member.id) && fleet.stateAt(member.id) === "terminated") {
                this.leaving.add(member.id);
                this.stage.log(`asg: ${member.id} is terminated; it leaves the group`);
                await this.elb.send(new DeregisterTargetsCommand({ TargetGroupArn: this.stage.stack.targetGroupArn, Targets: [{ Id: member.id }] }));
            }
        }
        for (const member of [...this.members.values()]) {
            const replacement = this.replacementOf(member.id);
            const old = member.replaces ?? "";
            if (replacement === undefined && !member.refreshing && member.replaces !== undefined && !this.leaving.has(old) && fleet.targetStateAt(member.id) === "healthy") {
                // The replacement serves: the at-risk instance goes, drained first.
                await this.retire(old, `replacement ${member.id} passed its health check`);
            }
            if (member.rebalancing && fleet.targetStateAt(member.id) === "healthy") {
                member.rebalancing = false;
                const fullest = this.zonesByCount().pop() as string;
                const extra = this.live().find((m) => m.zone === fullest && m.id !== member.id);
                if (extra !== undefined) {
                    await this.retire(extra.id, `rebalancing ${fullest} after ${member.zone} recovered`);
                }
            }
        }
        // One scaling activity launches every missing instance at once, spread fewest-zone first.
        const counts = this.counts();
        const launches: Promise<boolean>[] = [];
        for (let slot = this.live().length; slot < this.desired; slot++) {
            const zones = [...this.stage.stack.zones].sort((a, b) => counts[a] - counts[b] || a.localeCompare(b));
            counts[zones[0]] += 1;
            launches.push(this.launch(zones, {}));
        }
        await Promise.all(launches);
        await this.rebalanceZones();
        await this.refreshStep();
    }

    /** The instance refresh, one health check at a time: retire a ready batch's old instances, or launch the next batch. */
    private async refreshStep(): Promise<void> {
        if (this.refreshTo === undefined) {
            return;
        }
        const batch = [...this.members.values()].filter((m) => m.refreshing && !this.leaving.has(m.id));
        if (batch.length > 0) {
            if (batch.every((m) => this.warmedUp(m.id))) {
                for (const member of batch) {
                    member.refreshing = false;
                    if (!this.leaving.has(member.replaces as string)) {
                        await this.retire(member.replaces as string, `instance refresh: ${member.id} passed its health checks and warmed up`);
                    }
                }
            }
            return;
        }
        const version = this.refreshTo;
        const outdated = this.live().filter((m) => this.stage.fleet.instances.get(m.id)?.version !== version);
        if (outdated.length === 0) {
            this.stage.log(`asg: instance refresh to version ${version} successful`);
            this.refreshTo = undefined;
            return;
        }
        const size = Math.floor((this.desired * (MAX_HEALTHY_PERCENT - 100)) / 100);
        await Promise.all(outdated.slice(0, size).map((m) => this.launch([m.zone], { replaces: m.id, refreshing: true })));
    }

    /** Healthy in the target group (the group's ELB health check) and past the instance warmup since it entered InService. */
    private warmedUp(id: string): boolean {
        const { fleet, clock, model } = this.stage;
        const instance = fleet.instances.get(id);
        return instance !== undefined && fleet.targetStateAt(id) === "healthy" && clock.now >= instance.runningAt + model.asgInstanceWarmupS;
    }

    private async rebalanceZones(): Promise<void> {
        const counts = this.counts();
        const [short] = this.zonesByCount();
        const inFlight = [...this.members.values()].filter((m) => m.rebalancing).length;
        const perZone = this.stage.stack.instancesPerZone;
        const recovered = this.stage.stack.instanceTypes.some((instanceType) => this.stage.fleet.hasCapacity({ zone: short, instanceType, market: "spot" }));
        if (recovered && counts[short] < perZone && Math.max(...Object.values(counts)) > perZone && inFlight < Math.max(1, Math.floor(this.desired / 10))) {
            await this.launch([short], { rebalancing: true });
        }
    }

    private async retire(id: string, reason: string): Promise<void> {
        this.leaving.add(id);
        this.stage.log(`asg: draining and terminating ${id}: ${reason}`);
        await this.elb.send(new DeregisterTargetsCommand({ TargetGroupArn: this.stage.stack.targetGroupArn, Targets: [{ Id: id }] }));
        this.stage.clock.after(this.stage.model.deregistrationDelayS, () => this.stage.spawn(this.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }))));
    }

    /** Launches in the first of `zones` with a spot pool that has capacity; false when none has. */
    private async launch(zones: string[], options: { replaces?: string; avoidType?: string; rebalancing?: boolean; refreshing?: boolean }): Promise<boolean> {
        const { stack, fleet } = this.stage;
        const types = [...stack.instanceTypes.filter((t) => t !== options.avoidType), ...stack.instanceTypes.filter((t) => t === options.avoidType)];
        for (const zone of [...new Set(zones)]) {
            const instanceType = types.find((type) => fleet.hasCapacity({ zone, instanceType: type, market: "spot" }));
            if (instanceType === undefined) {
                continue;
            }
            const tags = instanceTags({ instanceName: stack.instanceName, stack: stack.stack, zone, region: stack.region, launchedBy: "handler" });
            const launched = await this.ec2.send(new RunInstancesCommand({
                MinCount: 1,
                MaxCount: 1,
                LaunchTemplate: { LaunchTemplateId: stack.launchTemplateId, Version: this.launchVersion },
                InstanceType: instanceType as _InstanceType,
                SubnetId: stack.subnetsByZone[zone],
                InstanceMarketOptions: { MarketType: "spot" },
                TagSpecifications: [{ ResourceType: "instance", Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }],
            }));
            const id = launched.Instances?.[0]?.InstanceId as string;
            this.members.set(id, { id, zone, replaces: options.replaces, rebalancing: options.rebalancing, refreshing: options.refreshing });
            this.stage.log(`asg: launched ${id} (${instanceType}, version ${this.launchVersion}) in ${zone}${options.replaces ? ` to replace ${options.replaces}` : options.rebalancing ? " to rebalance" : ""}`);
            return true;
        }
        this.stage.log(`asg: no spot capacity in ${zones.join(", ")}; retrying at the next health check`);
        return false;
    }

    private replacementOf(id: string): Member | undefined {
        return [...this.members.values()].find((m) => m.replaces === id && !this.leaving.has(m.id));
    }

    /** Members that hold a place: not leaving, not superseded by a replacement. */
    private live(): Member[] {
        return [...this.members.values()].filter((m) => !this.leaving.has(m.id) && this.replacementOf(m.id) === undefined);
    }

    private counts(): Record<string, number> {
        const counts = Object.fromEntries(this.stage.stack.zones.map((zone) => [zone, 0]));
        for (const member of this.live()) {
            counts[member.zone] += 1;
        }
        return counts;
    }

    /** Zones, fewest live members first. */
    private zonesByCount(): string[] {
        const counts = this.counts();
        return [...this.stage.stack.zones].sort((a, b) => counts[a] - counts[b] || a.localeCompare(b));
    }
}
