/**
 * INA219 stack benchmark (`npm run bench`): energy accuracy of the gap-free sampler against the
 * exact integral of the load, compared with the original firmware's scheme on the same trace,
 * the observed fraction, and the driver + sampler overhead per reading on the emulated bus.
 */
import { performance } from 'node:perf_hooks';
import {
  VirtualClock,
  Ina219,
  Ina219Emulator,
  demoBoardLoad,
  pwmLoad,
  trueEnergyWh,
  Ina228,
  EnergySampler,
  Ina228Emulator,
  Sampler,
  type LoadModel,
  type WindowResult,
} from '@power-meter/ina219';
import { median, reportFigure } from '../../../scripts/bench-figure.mjs';

const WINDOW_MS = 5000;
const MINUTES = 30;

interface Run {
  errors: number[];
  observed: number[];
  readings: number;
  cpuMs: number;
  /** Register transactions and sampler wake-ups per second of measured time. */
  transactionsPerS: number;
  wakeupsPerS: number;
}

async function gapFree(load: LoadModel): Promise<Run> {
  const clock = new VirtualClock(0);
  const emu = new Ina219Emulator({ clock, load, seed: 11 });
  const driver = new Ina219(emu, {}, { sleep: clock.sleep });
  return measure(load, clock, emu, (sleep, onWindow) => new Sampler({ driver, clock, sleep, windowMs: WINDOW_MS, onWindow }));
}

/** The INA228 on its energy accumulator: one ENERGY read per window, a result every 533.8 ms. */
async function accumulator(load: LoadModel): Promise<Run> {
  const clock = new VirtualClock(0);
  const emu = new Ina228Emulator({ clock, load, seed: 11 });
  const driver = new Ina228(emu, {}, { sleep: clock.sleep });
  return measure(load, clock, emu, (sleep, onWindow) => new EnergySampler({ driver, clock, sleep, windowMs: WINDOW_MS, onWindow }));
}

async function measure(
  load: LoadModel,
  clock: VirtualClock,
  emu: { transactions: number },
  make: (sleep: (ms: number) => Promise<void>, onWindow: (w: WindowResult) => void) => Sampler | EnergySampler,
): Promise<Run> {
  const windows: WindowResult[] = [];
  let wakeups = 0;
  const sampler = make(
    async (ms) => {
      wakeups++;
      clock.advance(ms);
    },
    (w) => windows.push(w),
  );
  const t0 = performance.now();
  await sampler.runUntil(MINUTES * 60_000);
  const cpuMs = performance.now() - t0;
  const errors = windows.slice(1).map((w) => {
    const truth = trueEnergyWh(load, w.startMs, w.endMs);
    return Math.abs(w.energyWh - truth) / truth;
  });
  const seconds = clock.nowMs() / 1000;
  return {
    errors,
    observed: windows.slice(1).map((w) => w.observedFraction),
    readings: sampler.readings,
    cpuMs,
    transactionsPerS: emu.transactions / seconds,
    wakeupsPerS: wakeups / seconds,
  };
}

/** The tutorial firmware: 128-sample conversions read every 500 ms, averaged with equal weight. */
async function original(load: LoadModel): Promise<{ errors: number[]; observed: number }> {
  const clock = new VirtualClock(0);
  const emu = new Ina219Emulator({ clock, load, seed: 11 });
  const driver = new Ina219(emu, { shuntAdc: 0xf, busAdc: 0xf, shuntRange: 320 }, { sleep: clock.sleep });
  await driver.init();
  const errors: number[] = [];
  for (let start = 0; start + WINDOW_MS <= MINUTES * 60_000; start += WINDOW_MS) {
    const powers: number[] = [];
    for (let t = start + 500; t <= start + WINDOW_MS; t += 500) {
      clock.advance(t - clock.nowMs());
      powers.push((await driver.read(false)).powerW);
    }
    const energyWh = ((powers.reduce((a, b) => a + b, 0) / powers.length) * WINDOW_MS) / 3.6e6;
    const truth = trueEnergyWh(load, start, start + WINDOW_MS);
    if (start > 0) errors.push(Math.abs(energyWh - truth) / truth);
  }
  return { errors, observed: (10 * 68.1) / WINDOW_MS };
}

const loads: Array<[string, LoadModel]> = [
  ['pwm 12 W 25 % 1 kHz', pwmLoad(12, 0.25, 1000)],
  ['pwm 12 W 50 % 0.7 Hz', pwmLoad(12, 0.5, 0.7)],
  ['demo board, switches every ~0.4 s', demoBoardLoad({ seed: 9, meanToggleMs: 1200 })],
];

console.log(`INA219 sampler on the emulator: ${MINUTES} min of virtual time per load, ${WINDOW_MS / 1000} s windows`);
console.log('| load | gap-free median err | gap-free max err | original median err | original max err | observed (gap-free / original) |');
console.log('|---|---|---|---|---|---|');
let worstMedian = 0;
let worstMax = 0;
let demoRatio = 0;
let minObserved = 1;
let readings = 0;
let cpuMs = 0;
const pct = (x: number) => `${(x * 100).toFixed(3)} %`;
const polled = new Map<string, Run>();
for (const [name, load] of loads) {
  const g = await gapFree(load);
  polled.set(name, g);
  const o = await original(load);
  const gm = median(g.errors);
  const om = median(o.errors);
  worstMedian = Math.max(worstMedian, gm);
  worstMax = Math.max(worstMax, ...g.errors);
  if (name.startsWith('demo')) demoRatio = om / Math.max(gm, 1e-9);
  minObserved = Math.min(minObserved, ...g.observed);
  readings += g.readings;
  cpuMs += g.cpuMs;
  console.log(
    `| ${name} | ${pct(gm)} | ${pct(Math.max(...g.errors))} | ${pct(om)} | ${pct(Math.max(...o.errors))} | ${pct(median(g.observed))} / ${pct(o.observed)} |`,
  );
}
const perS = readings / (cpuMs / 1000);
console.log(`\nINA228 on its energy accumulator (ENERGY read once per window on a cycle boundary), the same loads and ${MINUTES} min:`);
console.log('| load | median err | max err | observed | register reads /s | wake-ups /s |');
console.log('|---|---|---|---|---|---|');
let accWorstMedian = 0;
let accWorstMax = 0;
let accMinObserved = 1;
let accReads = 0;
let accWakeups = 0;
let pollReads = 0;
let pollWakeups = 0;
for (const [name, load] of loads) {
  const a = await accumulator(load);
  const g = polled.get(name)!;
  accWorstMedian = Math.max(accWorstMedian, median(a.errors));
  accWorstMax = Math.max(accWorstMax, ...a.errors);
  accMinObserved = Math.min(accMinObserved, ...a.observed);
  accReads = Math.max(accReads, a.transactionsPerS);
  accWakeups = Math.max(accWakeups, a.wakeupsPerS);
  pollReads = Math.max(pollReads, g.transactionsPerS);
  pollWakeups = Math.max(pollWakeups, g.wakeupsPerS);
  console.log(
    `| ${name} | ${pct(median(a.errors))} | ${pct(Math.max(...a.errors))} | ${pct(median(a.observed))} | ${a.transactionsPerS.toFixed(1)} (INA219: ${g.transactionsPerS.toFixed(1)}) | ${a.wakeupsPerS.toFixed(2)} (INA219: ${g.wakeupsPerS.toFixed(2)}) |`,
  );
}
console.log(
  `driver + sampler + emulator: ${readings} readings in ${cpuMs.toFixed(0)} ms of CPU = ${perS.toFixed(0)} readings/s (each reading is 3 register reads)`,
);
reportFigure('energy error per window, worst load (median)', worstMedian * 100, '%', '<= 0.5 %', worstMedian <= 0.005);
reportFigure('energy error per window, worst window of all loads', worstMax * 100, '%', '<= 0.5 %', worstMax <= 0.005);
reportFigure('original firmware median error / ours (fast-switching demo board)', demoRatio, 'x', 'far below the original', demoRatio > 10);
reportFigure('observed fraction of each window (min)', minObserved * 100, '%', '>= 95 %', minObserved >= 0.95);
reportFigure('readings per second on one core (emulated bus)', perS, '1/s', '>= 5,000', perS >= 5000);
reportFigure(
  'INA228 accumulator: energy error per window, worst load (median)',
  accWorstMedian * 100,
  '%',
  '<= 0.5 %',
  accWorstMedian <= 0.005,
);
reportFigure('INA228 accumulator: energy error, worst window of all loads', accWorstMax * 100, '%', '<= 0.5 %', accWorstMax <= 0.005);
reportFigure('INA228 accumulator: observed fraction of each window (min)', accMinObserved * 100, '%', '>= 95 %', accMinObserved >= 0.95);
reportFigure(
  'INA219 polling / INA228 accumulator: register reads per second',
  pollReads / accReads,
  'x',
  '> 1 (fewer reads)',
  pollReads > accReads,
);
reportFigure(
  'INA219 polling / INA228 accumulator: sampler wake-ups per second',
  pollWakeups / accWakeups,
  'x',
  '> 1 (fewer wake-ups)',
  pollWakeups > accWakeups,
);
