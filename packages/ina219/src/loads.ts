/**
 * Load models: the true current drawn through the shunt as a function of monotonic time.
 * Every model is piecewise constant, so averages and true energy are computed exactly
 * (no numerical integration error in the reference the tests compare against).
 */
export interface Segment {
  t0Ms: number;
  t1Ms: number;
  currentA: number;
}

export interface LoadModel {
  readonly label: string;
  /** Supply voltage at the high side of the shunt (IN+). */
  readonly supplyV: number;
  /** The constant-current pieces covering [t0Ms, t1Ms), in order. */
  segments(t0Ms: number, t1Ms: number): Iterable<Segment>;
  /** The same as `meanCurrentA(this, ...)`, without a generator (the emulator asks twice per conversion). */
  meanCurrentA?(t0Ms: number, t1Ms: number): number;
}

export function meanCurrentA(load: LoadModel, t0Ms: number, t1Ms: number): number {
  if (t1Ms <= t0Ms) return currentAt(load, t0Ms);
  if (load.meanCurrentA) return load.meanCurrentA(t0Ms, t1Ms);
  let q = 0;
  for (const s of load.segments(t0Ms, t1Ms)) q += s.currentA * (s.t1Ms - s.t0Ms);
  return q / (t1Ms - t0Ms);
}

export function currentAt(load: LoadModel, tMs: number): number {
  for (const s of load.segments(tMs, tMs + 1e-6)) return s.currentA;
  return 0;
}

/**
 * True energy drawn from the supply (supply voltage x current, integrated exactly), in
 * watt-hours: the quantity the meter reports (see Ina219.read for why supply side).
 */
export function trueEnergyWh(load: LoadModel, t0Ms: number, t1Ms: number): number {
  let ws = 0;
  for (const s of load.segments(t0Ms, t1Ms)) ws += load.supplyV * s.currentA * ((s.t1Ms - s.t0Ms) / 1000);
  return ws / 3600;
}

/** Clip segments to [t0, t1). */
function* clip(t0Ms: number, t1Ms: number, parts: Iterable<Segment>): Iterable<Segment> {
  for (const p of parts) {
    const a = Math.max(p.t0Ms, t0Ms);
    const b = Math.min(p.t1Ms, t1Ms);
    if (b > a) yield { t0Ms: a, t1Ms: b, currentA: p.currentA };
  }
}

export function constantLoad(powerW: number, supplyV = 12): LoadModel {
  return {
    label: `constant ${powerW} W`,
    supplyV,
    *segments(t0Ms, t1Ms) {
      yield { t0Ms, t1Ms, currentA: powerW / supplyV };
    },
  };
}

/** A load switching between `powerW` and 0 at `hz` with the given duty cycle. */
export function pwmLoad(powerW: number, duty: number, hz: number, supplyV = 12): LoadModel {
  const periodMs = 1000 / hz;
  const onMs = periodMs * duty;
  const onA = powerW / supplyV;
  return {
    label: `pwm ${powerW} W, duty ${duty}, ${hz} Hz`,
    supplyV,
    *segments(t0Ms, t1Ms) {
      let k = Math.floor(t0Ms / periodMs);
      for (; k * periodMs < t1Ms; k++) {
        const start = k * periodMs;
        yield* clip(t0Ms, t1Ms, [
          { t0Ms: start, t1Ms: start + onMs, currentA: onA },
          { t0Ms: start + onMs, t1Ms: start + periodMs, currentA: 0 },
        ]);
      }
    },
  };
}

/** Deterministic PRNG (mulberry32) so a seeded demo replays the same switch pattern. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DemoBoardOptions {
  seed?: number;
  /** Mean time between flips of each switch. */
  meanToggleMs?: number;
  supplyV?: number;
  /** Power of each switched branch (two ~2 W LEDs). */
  branchW?: number;
  /** Start time of the schedule (monotonic ms). */
  startMs?: number;
  /**
   * Forget switch changes older than this behind the latest time asked for (default: keep all,
   * so tests can ask for any past interval). The simulated sensor of a long-running meter sets
   * it: the schedule grows by ~13,000 changes a day at the default rate.
   */
  historyMs?: number;
}

/**
 * The tutorial's demo board (docs/design.md "The demo load"): a 12 V supply and three switches, each
 * feeding ~4 W, so 0/4/8/12 W. Each switch flips after an exponentially distributed time.
 * The schedule is generated lazily and kept (within `historyMs`), so an interval can be asked
 * for repeatedly.
 */
export function demoBoardLoad(opts: DemoBoardOptions = {}): LoadModel & { switchesAt(tMs: number): boolean[]; keptChanges(): number } {
  const rand = mulberry32(opts.seed ?? 1);
  const supplyV = opts.supplyV ?? 12;
  const branchA = (opts.branchW ?? 4) / supplyV;
  const meanMs = opts.meanToggleMs ?? 20_000;
  const startMs = opts.startMs ?? 0;
  const historyMs = opts.historyMs ?? Infinity;
  // Change points: from times[i] on, the closed switches are the set bits of masks[i].
  let times: number[] = [startMs];
  let masks: number[] = [0b001];
  const closedCount = [0, 1, 1, 2, 1, 2, 2, 3];
  const next = (): number => -Math.log(1 - rand()) * (meanMs / 3);
  const extend = (untilMs: number): void => {
    while (times[times.length - 1]! <= untilMs) {
      const t = times[times.length - 1]! + Math.max(50, next());
      const which = Math.floor(rand() * 3);
      times.push(t);
      masks.push(masks[masks.length - 1]! ^ (1 << which));
    }
  };
  const indexAt = (tMs: number): number => {
    extend(tMs);
    let lo = 0;
    let hi = times.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (times[mid]! <= tMs) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  /** Drops change points that ended more than `historyMs` before `tMs` (in batches, not per call). */
  const forget = (tMs: number): void => {
    if (historyMs === Infinity || times.length < 1024) return;
    const keepFrom = indexAt(tMs - historyMs);
    if (keepFrom < 512) return;
    times = times.slice(keepFrom);
    masks = masks.slice(keepFrom);
  };
  const currentOf = (i: number): number => closedCount[masks[i]!]! * branchA;
  return {
    label: 'demo board (3 switches x 4 W, 12 V)',
    supplyV,
    keptChanges: () => times.length,
    switchesAt(tMs) {
      const m = masks[indexAt(tMs)]!;
      return [0, 1, 2].map((b) => (m & (1 << b)) !== 0);
    },
    *segments(t0Ms, t1Ms) {
      extend(t1Ms);
      for (let i = indexAt(t0Ms); i < times.length && times[i]! < t1Ms; i++) {
        const a = Math.max(times[i]!, t0Ms);
        const b = Math.min(times[i + 1] ?? Infinity, t1Ms);
        if (b > a) yield { t0Ms: a, t1Ms: b, currentA: currentOf(i) };
      }
    },
    meanCurrentA(t0Ms, t1Ms) {
      forget(t0Ms);
      extend(t1Ms);
      let q = 0;
      for (let i = indexAt(t0Ms); i < times.length && times[i]! < t1Ms; i++) {
        const a = Math.max(times[i]!, t0Ms);
        const b = Math.min(times[i + 1] ?? Infinity, t1Ms);
        if (b > a) q += currentOf(i) * (b - a);
      }
      return q / (t1Ms - t0Ms);
    },
  };
}

export class SimLoadError extends Error {
  constructor(readonly spec: string) {
    super(
      `invalid simulated load ${JSON.stringify(spec)}: allowed "demo", a constant power in watts (e.g. 8), or pwm:<watts>:<duty 0-1>:<hz> (e.g. pwm:12:0.25:1000)`,
    );
    this.name = 'SimLoadError';
  }
}

/** Parses a simulated-load spec ("demo", watts, or pwm:<W>:<duty>:<hz>). */
export function parseSimLoad(spec: string, opts: { seed?: number; startMs?: number; historyMs?: number } = {}): LoadModel {
  const s = spec.trim();
  if (s === 'demo')
    return demoBoardLoad({ seed: opts.seed ?? Date.now() % 2 ** 31, startMs: opts.startMs ?? 0, historyMs: opts.historyMs });
  const num = (t: string | undefined): number => (t !== undefined && /^\d+(\.\d+)?$/.test(t) ? Number(t) : NaN);
  if (/^\d+(\.\d+)?$/.test(s)) {
    const w = Number(s);
    if (w > 50) throw new SimLoadError(spec);
    return constantLoad(w);
  }
  const m = /^pwm:([^:]+):([^:]+):([^:]+)$/.exec(s);
  if (m) {
    const [w, duty, hz] = [num(m[1]), num(m[2]), num(m[3])];
    if (w >= 0 && w <= 50 && duty >= 0 && duty <= 1 && hz > 0 && hz <= 100_000) return pwmLoad(w, duty, hz);
  }
  throw new SimLoadError(spec);
}
