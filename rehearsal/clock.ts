/**
 * Modelled time. The rehearsal's events, EC2's state transitions and every timer that code under
 * test sets (the SDK waiter's delays, retry back-offs, the seed's `sleep(30)`) are entries on one
 * virtual clock; time jumps from one entry to the next once everything that is not waiting on the
 * clock has finished. Real I/O (the calls to moto) still happens, but takes no modelled time: the
 * proxy in front of moto holds each answer for the modelled API latency instead.
 */

export interface Entry {
    at: number;
    sequence: number;
    run: () => void;
    cancelled: boolean;
}

/** What `setTimeout` returns while the clock is installed: enough of Node's Timeout for the SDK. */
class VirtualTimeout {
    constructor(public entry: Entry) {}
    ref(): this {
        return this;
    }
    unref(): this {
        return this;
    }
    hasRef(): boolean {
        return true;
    }
    refresh(): this {
        return this;
    }
    [Symbol.toPrimitive](): number {
        return this.entry.sequence;
    }
}

/** mulberry32: a small, well-known seeded generator, so a rehearsal replays identically. */
export function seededRandom(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

/** A 32-bit seed from a string (FNV-1a): a draw tied to what it is for, not to when it is asked. */
export function hashSeed(text: string): number {
    let hash = 2166136261;
    for (let i = 0; i < text.length; i++) {
        hash = Math.imul(hash ^ text.charCodeAt(i), 16777619) >>> 0;
    }
    return hash;
}

export class VirtualClock {
    /** Modelled seconds since the scenario began. */
    now = 0;
    private readonly entries: Entry[] = [];
    private sequence = 0;
    /** Incremented whenever an entry is added or run: how `settle` tells that something happened. */
    activity = 0;

    /** @param epochMs what `Date.now()` answers at modelled second 0 */
    constructor(readonly epochMs: number) {}

    /** Runs `run` at modelled second `at` (now, if `at` has passed). */
    at(at: number, run: () => void): Entry {
        const entry: Entry = { at: Math.max(at, this.now), sequence: this.sequence++, run, cancelled: false };
        // Kept sorted by time, then by insertion: entries at one instant run in the order they were set.
        let index = this.entries.length;
        while (index > 0 && (this.entries[index - 1].at > entry.at || (this.entries[index - 1].at === entry.at && this.entries[index - 1].sequence > entry.sequence))) {
            index--;
        }
        this.entries.splice(index, 0, entry);
        this.activity++;
        return entry;
    }

    after(seconds: number, run: () => void): Entry {
        return this.at(this.now + seconds, run);
    }

    /** A promise that resolves `seconds` of modelled time from now. */
    sleep(seconds: number): Promise<void> {
        return new Promise((resolve) => this.after(seconds, resolve));
    }

    cancel(entry: Entry): void {
        entry.cancelled = true;
    }

    /** Modelled second of the next entry, if any. */
    next(): number | undefined {
        this.dropCancelled();
        return this.entries[0]?.at;
    }

    /** Moves to the next entry and runs it; false when none is left. */
    step(): boolean {
        this.dropCancelled();
        const entry = this.entries.shift();
        if (entry === undefined) {
            return false;
        }
        this.now = entry.at;
        this.activity++;
        entry.run();
        return true;
    }

    dateAt(seconds: number): Date {
        return new REAL_DATE(this.epochMs + seconds * 1000);
    }

    /**
     * Puts the process's timers, `Date` and `Math.random` on this clock until the returned function
     * is called: code under test then waits in modelled time and draws reproducible jitter.
     */
    install(seed: number): () => void {
        const saved = { setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout, setInterval: globalThis.setInterval, clearInterval: globalThis.clearInterval, Date: globalThis.Date, random: Math.random };
        const clock = this;
        const cancelTimer = (timer: unknown) => {
            if (timer instanceof VirtualTimeout) {
                clock.cancel(timer.entry);
            }
        };
        globalThis.setTimeout = ((callback: (...args: unknown[]) => void, ms = 0, ...args: unknown[]) =>
            new VirtualTimeout(clock.after(Math.max(0, Number(ms) || 0) / 1000, () => callback(...args)))) as unknown as typeof setTimeout;
        globalThis.clearTimeout = cancelTimer as typeof clearTimeout;
        globalThis.setInterval = ((callback: (...args: unknown[]) => void, ms = 0, ...args: unknown[]) => {
            const seconds = Math.max(1, Number(ms) || 0) / 1000;
            const tick = (): Entry => clock.after(seconds, () => {
                timer.entry = tick();
                callback(...args);
            });
            const timer = new VirtualTimeout(tick());
            return timer;
        }) as unknown as typeof setInterval;
        globalThis.clearInterval = cancelTimer as typeof clearInterval;
        class ModelledDate extends REAL_DATE {
            constructor(...args: ConstructorParameters<DateConstructor> | []) {
                if (args.length === 0) {
                    super(ModelledDate.now());
                } else {
                    super(...(args as ConstructorParameters<DateConstructor>));
                }
            }
            static now(): number {
                return clock.epochMs + clock.now * 1000;
            }
        }
        globalThis.Date = ModelledDate as DateConstructor;
        Math.random = seededRandom(seed);
        return () => {
            Object.assign(globalThis, { setTimeout: saved.setTimeout, clearTimeout: saved.clearTimeout, setInterval: saved.setInterval, clearInterval: saved.clearInterval, Date: saved.Date });
            Math.random = saved.random;
        };
    }

    private dropCancelled(): void {
        while (this.entries.length > 0 && this.entries[0].cancelled) {
            this.entries.shift();
        }
    }
}

const REAL_DATE = Date;
const realSetImmediate = setImmediate;

/** Native requests that finish on their own in real time (file reads, connects, writes): work under way. */
const PENDING_NATIVE_WORK = /Req|ConnectWrap|WriteWrap|ShutdownWrap/;

/** Turns of the event loop with nothing new before the world counts as waiting on the clock. */
const QUIET_TURNS = 8;

/**
 * Real milliseconds with nothing new, as well: on a busy machine the kernel may hand loopback data
 * to the receiving socket a little later than the turns above take.
 */
const QUIET_MS = 1;

/** Real time after which `settle` gives up: code that never waits on the clock nor finishes. */
const SETTLE_LIMIT_MS = 30_000;

/**
 * Runs the clock from entry to entry, letting everything that can happen without modelled time
 * happen before each step, until `until` (or until `while` turns false). Stops with the first
 * failure `failed` reports.
 */
export async function advance(clock: VirtualClock, activity: Activity, options: { until: number; while?: () => boolean; failed?: () => unknown }): Promise<void> {
    for (;;) {
        await settle(clock, activity);
        const failure = options.failed?.();
        if (failure !== undefined) {
            throw failure;
        }
        const next = clock.next();
        if ((options.while !== undefined && !options.while()) || next === undefined || next > options.until) {
            return;
        }
        clock.step();
    }
}

/** What `settle` watches besides the clock: real work under way, and a count of things that happened. */
export class Activity {
    happened = 0;
    private underWay = 0;

    get busy(): boolean {
        return this.underWay > 0;
    }

    note(): void {
        this.happened++;
    }

    /** Real work (a call to moto) that ends on its own: the world is not waiting on the clock meanwhile. */
    async during<T>(work: Promise<T>): Promise<T> {
        this.underWay++;
        try {
            return await work;
        } finally {
            this.underWay--;
            this.happened++;
        }
    }
}

/**
 * Resolves once nothing can happen without modelled time passing: no forwarded call outstanding,
 * no native request pending, and a run of event-loop turns (and a moment of real time) with no
 * new call, timer or outcome.
 * Between an answer and the next call an invocation only runs callbacks and microtasks, which a
 * few turns of the loop drain; each turn includes a poll for I/O that is already ready.
 */
export async function settle(clock: VirtualClock, activity: Activity): Promise<void> {
    const deadline = performance.now() + SETTLE_LIMIT_MS;
    let quiet = 0;
    let quietSince = performance.now();
    let last = -1;
    while (quiet < QUIET_TURNS || performance.now() - quietSince < QUIET_MS) {
        await new Promise((resolve) => realSetImmediate(resolve));
        const seen = clock.activity + activity.happened;
        const working = activity.busy || process.getActiveResourcesInfo().some((type) => PENDING_NATIVE_WORK.test(type));
        if (seen !== last || working) {
            quiet = 0;
            quietSince = performance.now();
            last = seen;
        } else {
            quiet++;
        }
        if (performance.now() > deadline) {
            throw new Error(`the rehearsal did not settle within ${SETTLE_LIMIT_MS / 1000} s of real time at t+${clock.now.toFixed(1)} s`);
        }
    }
}
