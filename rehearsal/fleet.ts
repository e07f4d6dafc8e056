import { InstanceState } from "../handler/events";
import { TargetState } from "../handler/model";
import { hashSeed, seededRandom, VirtualClock } from "./clock";
import { healthyAt, logNormal, Model, unhealthyAt } from "./model";

/**
 * EC2 and the target group as the model says they behave: when each instance runs, answers,
 * is interrupted and is gone; which pools have capacity; and each target's health over time.
 * The clock-driven proxy answers the policy's calls from here, and the figures are read from here.
 */

export type Market = "spot" | "on-demand";

export interface Pool {
    zone: string;
    instanceType: string;
    market: Market;
}

/** A pool, or every pool of a zone (and market), without capacity from `from` to `to`. */
export interface Outage {
    zone: string;
    instanceType?: string;
    market?: Market;
    from: number;
    to: number;
}

export interface ModelledInstance extends Pool {
    id: string;
    /** Part of the fleet before the scenario began: running and healthy since long ago. */
    initial: boolean;
    /** The launch template version it runs (EC2's `aws:ec2launchtemplate:version` tag): which release of the application. */
    version: number;
    launchedAt: number;
    runningAt: number;
    /** When the application first answers its health path. */
    answersAt: number;
    /** The first notice AWS gave: a rebalance recommendation or the interruption warning. */
    noticedAt?: number;
    warnedAt?: number;
    shuttingDownAt?: number;
    terminatedAt?: number;
    /** Terminated by a policy (not interrupted by EC2). */
    terminatedByPolicy?: boolean;
}

export interface Registration {
    instanceId: string;
    registeredAt: number;
    deregisteredAt?: number;
}

/** What EC2 emits to EventBridge: an interruption notice or a state change. */
export type Ec2Signal =
    | { kind: "interruption-warning" | "rebalance-recommendation"; instanceId: string }
    | { kind: "state-change"; instanceId: string; state: InstanceState };

export class ModelledFleet {
    readonly instances = new Map<string, ModelledInstance>();
    readonly registrations: Registration[] = [];
    readonly outages: Outage[] = [];
    private readonly registrationsOf = new Map<string, Registration[]>();
    private readonly listeners: ((signal: Ec2Signal) => void)[] = [];

    constructor(
        private readonly clock: VirtualClock,
        readonly model: Model,
    ) {}

    /** Subscribes to what EC2 emits (EventBridge, or an Auto Scaling group's own view). */
    onSignal(listener: (signal: Ec2Signal) => void): void {
        this.listeners.push(listener);
    }

    /** An instance that was running and registered before the scenario began (by default from the template's first version). */
    adopt(id: string, pool: Pool, version = 1): void {
        this.instances.set(id, { id, ...pool, initial: true, version, launchedAt: -Infinity, runningAt: -Infinity, answersAt: -Infinity });
        this.addRegistration({ instanceId: id, registeredAt: -Infinity });
    }

    hasCapacity(pool: Pool, at = this.clock.now): boolean {
        return !this.outages.some((o) =>
            o.zone === pool.zone && (o.market === undefined || o.market === pool.market) && (o.instanceType === undefined || o.instanceType === pool.instanceType) && o.from <= at && at < o.to);
    }

    /** A launch EC2 accepted now: pending for a modelled while, then running, then answering. */
    launch(id: string, pool: Pool, version = 1): ModelledInstance {
        const existing = this.instances.get(id);
        if (existing !== undefined) {
            // The same reservation again (a repeated ClientToken).
            return existing;
        }
        const now = this.clock.now;
        // Concurrent launches reach the proxy in whatever order the sockets deliver them; each one's
        // draws come from its pool, moment and place among that pool's launches at that moment,
        // so the same scenario draws the same times whatever that order.
        const ordinal = [...this.instances.values()].filter((i) => i.launchedAt === now && i.zone === pool.zone && i.instanceType === pool.instanceType && i.market === pool.market).length;
        const random = seededRandom(hashSeed(`${this.model.seed}|${pool.zone}|${pool.instanceType}|${pool.market}|${now}|${ordinal}`));
        const runningAt = now + logNormal(this.model.pendingS, this.model.pendingSigma, random);
        const instance: ModelledInstance = {
            id,
            ...pool,
            initial: false,
            version,
            launchedAt: now,
            runningAt,
            answersAt: runningAt + logNormal(this.model.bootS, this.model.bootSigma, random),
        };
        this.instances.set(id, instance);
        this.emit({ kind: "state-change", instanceId: id, state: "pending" });
        this.clock.at(runningAt, () => {
            if (this.stateAt(id) === "running") {
                this.emit({ kind: "state-change", instanceId: id, state: "running" });
            }
        });
        return instance;
    }

    /** AWS warns now that it will reclaim the instance: the interruption follows the notice period. */
    warn(id: string): void {
        const instance = this.required(id);
        const now = this.clock.now;
        if (this.model.rebalanceWithWarning && instance.noticedAt === undefined) {
            this.recommendRebalance(id);
        }
        instance.warnedAt = now;
        instance.noticedAt ??= now;
        if (instance.market === "spot") {
            // EC2 reclaims because it needs that pool's capacity back.
            this.outages.push({ zone: instance.zone, instanceType: instance.instanceType, market: "spot", from: now, to: now + this.model.reclaimedPoolEmptyS });
        }
        this.emit({ kind: "interruption-warning", instanceId: id });
        this.clock.after(this.model.interruptionNoticeS, () => this.shutDown(id, false));
    }

    recommendRebalance(id: string): void {
        const instance = this.required(id);
        instance.noticedAt ??= this.clock.now;
        this.emit({ kind: "rebalance-recommendation", instanceId: id });
    }

    /** A policy's TerminateInstances. */
    terminate(id: string): void {
        this.shutDown(id, true);
    }

    stateAt(id: string, at = this.clock.now): InstanceState | undefined {
        const instance = this.instances.get(id);
        if (instance === undefined || at < instance.launchedAt) {
            return undefined;
        }
        if (instance.terminatedAt !== undefined && at >= instance.terminatedAt) {
            return "terminated";
        }
        if (instance.shuttingDownAt !== undefined && at >= instance.shuttingDownAt) {
            return "shutting-down";
        }
        return at >= instance.runningAt ? "running" : "pending";
    }

    register(id: string): void {
        const current = this.openRegistration(id);
        if (current === undefined || current.deregisteredAt !== undefined) {
            this.addRegistration({ instanceId: id, registeredAt: this.clock.now });
        }
    }

    /** Starts draining; a target that is not registered stays so (AWS answers success either way). */
    deregister(id: string): void {
        const current = this.openRegistration(id);
        if (current !== undefined && current.deregisteredAt === undefined) {
            current.deregisteredAt = this.clock.now;
        }
    }

    /** The target's state as DescribeTargetHealth reports it; undefined once it has left the group. */
    targetStateAt(id: string, at = this.clock.now): TargetState | undefined {
        const registration = this.registrationAt(id, at);
        if (registration === undefined) {
            return undefined;
        }
        if (registration.deregisteredAt !== undefined && at >= registration.deregisteredAt) {
            return at < registration.deregisteredAt + this.model.deregistrationDelayS ? "draining" : undefined;
        }
        const instance = this.required(id);
        if (instance.terminatedAt !== undefined && at >= instance.terminatedAt) {
            // A terminated instance stays registered, reported unused (Target.InvalidState).
            return "unused";
        }
        const stoppedAt = instance.shuttingDownAt;
        if (stoppedAt !== undefined && at >= unhealthyAt(this.model, stoppedAt)) {
            return "unhealthy";
        }
        const healthy = healthyAt(this.model, registration.registeredAt, instance.answersAt);
        return at >= healthy && (stoppedAt === undefined || healthy <= stoppedAt) ? "healthy" : "initial";
    }

    /** Every target of the group now, with its state. */
    targets(at = this.clock.now): { id: string; state: TargetState }[] {
        const ids = [...this.registrationsOf.keys()];
        return ids.map((id) => ({ id, state: this.targetStateAt(id, at) })).filter((t): t is { id: string; state: TargetState } => t.state !== undefined);
    }

    /** Instances of a zone serving now: healthy and not draining. */
    servingIn(zone: string, at = this.clock.now): number {
        return [...this.instances.values()].filter((i) => i.zone === zone && this.targetStateAt(i.id, at) === "healthy").length;
    }

    /** First moment the instance served, if it ever did. */
    firstHealthyAt(id: string): number | undefined {
        const instance = this.required(id);
        const times = (this.registrationsOf.get(id) ?? [])
            .map((r) => healthyAt(this.model, r.registeredAt, instance.answersAt))
            .filter((t) => this.targetStateAt(id, t) === "healthy");
        return times.length === 0 ? undefined : Math.min(...times);
    }

    /** Every moment some target or instance changes state: the figures are constant between them. */
    changePoints(): number[] {
        const points = new Set<number>();
        for (const r of this.registrations) {
            const instance = this.required(r.instanceId);
            points.add(r.registeredAt).add(healthyAt(this.model, r.registeredAt, instance.answersAt));
            if (r.deregisteredAt !== undefined) {
                points.add(r.deregisteredAt).add(r.deregisteredAt + this.model.deregistrationDelayS);
            }
        }
        for (const i of this.instances.values()) {
            points.add(i.launchedAt).add(i.runningAt);
            for (const t of [i.shuttingDownAt, i.terminatedAt]) {
                if (t !== undefined) {
                    points.add(t);
                }
            }
            if (i.shuttingDownAt !== undefined) {
                points.add(unhealthyAt(this.model, i.shuttingDownAt));
            }
        }
        return [...points].filter(Number.isFinite).sort((a, b) => a - b);
    }

    private shutDown(id: string, byPolicy: boolean): void {
        const instance = this.required(id);
        if (instance.shuttingDownAt !== undefined) {
            return;
        }
        instance.shuttingDownAt = this.clock.now;
        instance.terminatedAt = this.clock.now + this.model.shuttingDownS;
        instance.terminatedByPolicy = byPolicy;
        this.emit({ kind: "state-change", instanceId: id, state: "shutting-down" });
        this.clock.at(instance.terminatedAt, () => this.emit({ kind: "state-change", instanceId: id, state: "terminated" }));
    }

    private addRegistration(registration: Registration): void {
        this.registrations.push(registration);
        this.registrationsOf.set(registration.instanceId, [...(this.registrationsOf.get(registration.instanceId) ?? []), registration]);
    }

    private openRegistration(id: string): Registration | undefined {
        return this.registrationsOf.get(id)?.at(-1);
    }

    private registrationAt(id: string, at: number): Registration | undefined {
        return (this.registrationsOf.get(id) ?? []).filter((r) => r.registeredAt <= at).pop();
    }

    private required(id: string): ModelledInstance {
        const instance = this.instances.get(id);
        if (instance === undefined) {
            throw new Error(`the model knows no instance ${id}`);
        }
        return instance;
    }

    private emit(signal: Ec2Signal): void {
        for (const listener of this.listeners) {
            listener(signal);
        }
    }
}
