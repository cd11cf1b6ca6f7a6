/** Monotonic milliseconds. Injected everywhere so tests can run hours of virtual time. */
export interface MonotonicClock {
  nowMs(): number;
}

/** Sleep that follows the same clock (real timers for the system clock, advancing for virtual). */
export type Sleep = (ms: number) => Promise<void>;

/** CLOCK_MONOTONIC via hrtime: shared by every process of this boot, unlike performance.now(). */
export const systemClock: MonotonicClock = { nowMs: () => Number(process.hrtime.bigint()) / 1e6 };

export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** A clock that only moves when told to; `sleep` advances it, so a sampler loop runs at CPU speed. */
export class VirtualClock implements MonotonicClock {
  constructor(private t = 0) {}
  nowMs(): number {
    return this.t;
  }
  advance(ms: number): void {
    if (ms > 0) this.t += ms;
  }
  readonly sleep: Sleep = async (ms) => {
    this.advance(ms);
  };
}
