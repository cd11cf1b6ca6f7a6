import { describe, expect, it } from 'vitest';
import {
  ACCUMULATOR_MODULUS,
  CHIPS,
  CalibrationError,
  EnergySampler,
  EnergyWindowAccumulator,
  INA228_CONFIG_FIELDS,
  Ina226,
  Ina226Emulator,
  Ina228,
  Ina228Emulator,
  NO_CALIBRATION,
  Sampler,
  VirtualClock,
  calibrateReading,
  calibrateWindow,
  calibrationId,
  calibrationProblem,
  constantLoad,
  demoBoardLoad,
  encodeFields,
  fitCalibration,
  mulberry32,
  pwmLoad,
  trueEnergyWh,
  type CalibrationPoint,
  type LoadModel,
  type Sleep,
  type WindowResult,
} from '../src/index.js';

function rig(load: LoadModel, seed = 3) {
  const clock = new VirtualClock(1000);
  const emu = new Ina228Emulator({ clock, load, seed });
  const driver = new Ina228(emu, {}, { sleep: clock.sleep });
  const windows: WindowResult[] = [];
  const logs: string[] = [];
  // Each line with the level the sampler gave it ("info: …").
  const at = (level: string) => (m: string) => void logs.push(`${level}: ${m}`);
  const log = { error: at('error'), warning: at('warning'), notice: at('notice'), info: at('info'), debug: at('debug') };
  const sampler = new EnergySampler({ driver, clock, sleep: clock.sleep, onWindow: (w) => windows.push(w), log });
  return { clock, emu, driver, sampler, windows, logs };
}

const relErr = (load: LoadModel, w: WindowResult) => {
  const truth = trueEnergyWh(load, w.startMs, w.endMs);
  return Math.abs(w.energyWh - truth) / truth;
};

describe('INA228 energy from the accumulator', () => {
  it('constant 8 W for an hour: contiguous windows on the 5 s grid (cycle boundaries), energy within 0.05 %, one energy read per window', async () => {
    const load = constantLoad(8);
    const { sampler, windows, emu } = rig(load);
    await sampler.runUntil(1000 + 60 * 60_000);
    expect(windows.length).toBeGreaterThanOrEqual(719);
    for (let i = 1; i < windows.length; i++) expect(windows[i]!.startMs).toBe(windows[i - 1]!.endMs);
    for (const [i, w] of windows.entries()) {
      if (i === 0) continue;
      // Within half a 4.17 ms cycle of the grid, with no drift.
      expect(Math.abs(w.endMs - (1000 + (i + 1) * 5000))).toBeLessThanOrEqual(2.1);
      expect(relErr(load, w)).toBeLessThan(0.0005);
      expect(w.observedFraction).toBeCloseTo(4120 / 4170, 4);
      expect(w.complete).toBe(true);
      expect(w.readings).toBeGreaterThan(1190); // conversion cycles behind the energy
    }
    expect(sampler.energyReads).toBeLessThan(windows.length + 3);
    // About 5 register reads per 533.8 ms result and 2 per window: a fifth of the INA219's polling.
    expect(emu.transactions / (60 * 60)).toBeLessThan(11);
  });

  it.each([
    ['fast PWM 12 W 25 % 1 kHz', pwmLoad(12, 0.25, 1000)],
    ['slow PWM 12 W 50 % 0.7 Hz', pwmLoad(12, 0.5, 0.7)],
    ['demo board, switches every ~0.4 s', demoBoardLoad({ seed: 9, meanToggleMs: 1200, startMs: 1000 })],
  ])('%s: every window within 0.5 % of the true energy', async (_name, load) => {
    const { sampler, windows } = rig(load);
    await sampler.runUntil(1000 + 5 * 60_000);
    for (const w of windows.slice(1)) expect(relErr(load, w)).toBeLessThan(0.005);
  });

  it('counts across the 40-bit wrap of the energy register', async () => {
    const load = constantLoad(12); // 61,440 counts per window with 0.976 mJ per count
    const { sampler, windows, emu, logs } = rig(load);
    await sampler.runUntil(1000 + 12_000);
    // Jump the count to 90,000 below the top: the meter sees an impossible step in that window
    // (and says so); the next window then crosses 2^40 for real.
    emu.presetEnergy(ACCUMULATOR_MODULUS - 90_000);
    await sampler.runUntil(1000 + 60_000);
    expect(sampler.wraps).toBe(1);
    expect(logs.filter((l) => /^info: .*wrapped past 2\^40/.test(l))).toHaveLength(1);
    expect(windows.filter((w) => !w.complete).map((w) => w.faultReason)).toEqual(['INA228 energy register cleared outside the meter']);
    const after = windows.filter((w) => w.startMs > 1000 + 15_000);
    expect(after.length).toBeGreaterThanOrEqual(8);
    for (const w of after) expect(relErr(load, w)).toBeLessThan(0.0005);
  });

  it('a power-on reset is detected, that window says so, and the following windows are exact again', async () => {
    const load = constantLoad(8);
    const { sampler, windows, emu, driver } = rig(load);
    await sampler.runUntil(1000 + 12_500);
    emu.spontaneousReset();
    await sampler.runUntil(1000 + 40_000);
    expect(driver.resets).toBe(1);
    const bad = windows.filter((w) => !w.complete);
    expect(bad).toHaveLength(1);
    expect(bad[0]!.faultReason).toMatch(/INA228 reset .*estimated from its power readings/);
    // Estimated from the 533.8 ms power readings: close, not exact.
    expect(relErr(load, bad[0]!)).toBeLessThan(0.01);
    for (const w of windows.filter((x) => x.startMs >= bad[0]!.endMs)) {
      expect(w.complete).toBe(true);
      expect(relErr(load, w)).toBeLessThan(0.0005);
    }
    for (let i = 1; i < windows.length; i++) expect(windows[i]!.startMs).toBe(windows[i - 1]!.endMs);
  });

  it('an accumulator cleared by another program (RSTACC) is not read as a wrap', async () => {
    const load = constantLoad(8);
    const { sampler, windows, emu, logs } = rig(load);
    await sampler.runUntil(1000 + 12_500);
    await emu.writeI2cBlock(0x40, 0x00, 2, Buffer.from([encodeFields(INA228_CONFIG_FIELDS, { rstacc: 1 }) >> 8, 0]));
    await sampler.runUntil(1000 + 30_000);
    expect(sampler.wraps).toBe(0);
    expect(logs.some((l) => /^info: .*went back .* without a reset/.test(l))).toBe(true);
    for (const w of windows.slice(1)) expect(relErr(load, w)).toBeLessThan(0.01);
  });

  it('survives an unplugged sensor: fault state, windows without energy, recovery on replug', async () => {
    const { sampler, windows, emu, clock } = rig(constantLoad(8));
    await sampler.runUntil(21_000);
    emu.unplug();
    await sampler.runUntil(41_000);
    expect(sampler.state()).toMatchObject({ state: 'fault', reason: expect.stringMatching(/ENXIO/) });
    expect(sampler.latest()).toBeNull();
    emu.replug();
    await sampler.runUntil(61_000);
    expect(sampler.state().state).toBe('ok');
    expect(clock.nowMs()).toBeGreaterThanOrEqual(61_000);
    expect(windows.filter((w) => !w.complete).length).toBeGreaterThanOrEqual(3);
    expect(windows.at(-1)!.complete).toBe(true);
    expect(Math.abs(windows.at(-1)!.avgPowerW! - 8)).toBeLessThan(0.01);
    for (let i = 1; i < windows.length; i++) expect(windows[i]!.startMs).toBe(windows[i - 1]!.endMs);
  });

  it('timers that fire early or late (a busy event loop): no energy lost, exact windows', async () => {
    const load = demoBoardLoad({ seed: 3, meanToggleMs: 4000, startMs: 1000 });
    const clock = new VirtualClock(1000);
    const emu = new Ina228Emulator({ clock, load, seed: 4 });
    const driver = new Ina228(emu, {}, { sleep: clock.sleep });
    const rand = mulberry32(17);
    let sleeps = 0;
    const sleep: Sleep = async (ms) => {
      const late = ++sleeps % 7 === 0 ? 10 + 900 * rand() : 0;
      clock.advance((ms < 2 ? 1 : ms - 1.25 * rand()) + late);
    };
    const windows: WindowResult[] = [];
    const sampler = new EnergySampler({ driver, clock, sleep, onWindow: (w) => windows.push(w) });
    await sampler.runUntil(1000 + 10 * 60_000);
    for (let i = 1; i < windows.length; i++) expect(windows[i]!.startMs).toBe(windows[i - 1]!.endMs);
    const measured = windows.slice(1).reduce((a, w) => a + w.energyWh, 0);
    const truth = trueEnergyWh(load, windows[1]!.startMs, windows.at(-1)!.endMs);
    expect(Math.abs(measured - truth) / truth).toBeLessThan(0.0002);
    for (const w of windows.slice(1)) expect(relErr(load, w)).toBeLessThan(0.005);
  });

  it('the INA226 and INA260 run on the conversion sampler with gap-free windows', async () => {
    for (const id of ['ina226', 'ina260'] as const) {
      const load = demoBoardLoad({ seed: 2, meanToggleMs: 3000, startMs: 1000, branchW: 2 }); // 0-6 W: inside the R100 INA226's 0.82 A
      const clock = new VirtualClock(1000);
      const emu = new Ina226Emulator({ chip: CHIPS[id], clock, load, seed: 8 });
      const driver = new Ina226(emu, CHIPS[id], {}, { sleep: clock.sleep });
      const windows: WindowResult[] = [];
      const sampler = new Sampler({ driver, clock, sleep: clock.sleep, onWindow: (w) => windows.push(w) });
      await sampler.runUntil(1000 + 5 * 60_000);
      expect(sampler.missedConversions).toBe(0);
      for (let i = 1; i < windows.length; i++) expect(windows[i]!.startMs).toBe(windows[i - 1]!.endMs);
      for (const w of windows.slice(1)) {
        expect(w.observedFraction).toBeCloseTo(8244 / 8384, 3);
        const truth = trueEnergyWh(load, w.startMs, w.endMs);
        // The INA260's current register counts 1.25 mA: a 0.25 A load is 200 counts.
        expect(Math.abs(w.energyWh - truth)).toBeLessThan(Math.max(0.005 * truth, (id === 'ina260' ? 0.02 : 0.002) * (5 / 3600)));
      }
    }
  });
});

describe('energy windows', () => {
  it('the accumulator span replaces the power readings it covers; uncovered time counts at the average; a late read makes one longer window', () => {
    const acc = new EnergyWindowAccumulator(0, 1000, 4);
    acc.addResult(0, 500, { powerW: 10, busV: 12, currentA: 0.8 }, 0.99);
    acc.addResult(500, 1000, { powerW: 20, busV: 12, currentA: 1.6 }, 0.99);
    acc.addAccumulated(200, 1000, 12, 0.98); // 12 J over 800 ms: 15 W
    const w = acc.closeAt(1000);
    // 0-200 ms from the first reading (2 J), 200-1000 from the accumulator (12 J).
    expect(w.energyWh).toBeCloseTo(14 / 3600, 12);
    expect([w.minPowerW, w.maxPowerW]).toEqual([10, 20]);
    expect(w.observedFraction).toBeCloseTo(0.2 * 0.99 + 0.8 * 0.98, 9);
    expect(w.readings).toBe(250);
    acc.addAccumulated(1000, 1400, 4, 1); // then silence: 600 ms uncovered
    const [second] = acc.closeUntil(2000);
    expect(second!.avgPowerW).toBeCloseTo(10, 9);
    expect(second!.energyWh).toBeCloseTo(10 / 3600, 12);
    acc.addAccumulated(2000, 3700, 17, 1); // read 700 ms late: one window to 3700, the next ends at 5000
    expect(acc.closeAt(3700).endMs).toBe(3700);
    expect(acc.endMs).toBe(5000);
  });
});

describe('calibration', () => {
  const point = (measuredA: number, ref: Partial<CalibrationPoint>): CalibrationPoint => ({
    at: '2026-05-14T10:00:00.000Z',
    seconds: 10,
    measuredV: 12,
    measuredA,
    measuredW: 12 * measuredA,
    referenceW: null,
    referenceV: null,
    referenceA: null,
    ...ref,
  });

  it('one power reference gives a current gain; a second point at another current gives gain and offset', () => {
    const one = fitCalibration([point(1, { referenceW: 12.12 })], 3.2);
    expect(one.method).toBe('current gain from 1 point');
    expect(one.calibration.currentGain).toBeCloseTo(1.01, 9);
    expect(one.calibration.currentOffsetA).toBe(0);
    expect(one.calibration.voltageGain).toBe(1);
    // True: I = 1.01 x I_measured - 0.004 A.
    const two = fitCalibration([point(0.004 / 1.01, { referenceW: 0 }), point(1, { referenceA: 1.006 })], 3.2);
    expect(two.method).toBe('current gain and offset from 2 points');
    expect(two.calibration.currentGain).toBeCloseTo(1.01, 9);
    expect(two.calibration.currentOffsetA).toBeCloseTo(-0.004, 9);
    // A voltage reference: its ratio, and the power reference divided by the reference voltage.
    const v = fitCalibration([point(1, { referenceW: 12.24, referenceV: 12.12 })], 3.2);
    expect(v.calibration.voltageGain).toBeCloseTo(1.01, 9);
    expect(v.calibration.currentGain).toBeCloseTo(12.24 / 12.12, 9);
  });

  it('refuses factors no tolerance explains, saying what to check', () => {
    expect(() => fitCalibration([point(0.1, { referenceW: 12 })], 3.2)).toThrow(/current gain would be 10\.0+.*shunt resistance setting/);
    expect(() => fitCalibration([point(1, { referenceV: 24 })], 3.2)).toThrow(/voltage gain would be 2\.0+/);
    expect(() => fitCalibration([point(0, { referenceW: 5 })], 3.2)).toThrow(CalibrationError);
    expect(() => fitCalibration([point(0.2, { referenceA: 0 }), point(1, { referenceA: 1 })], 3.2)).toThrow(/offset would be -250\.00 mA/);
  });

  it('applies V x I consistently to readings and windows, energy included', () => {
    const c = { voltageGain: 1.01, currentGain: 0.98, currentOffsetA: 0.002 };
    const r = calibrateReading({ powerW: 12, busV: 12, currentA: 1, atMs: 5 }, c);
    expect(r.powerW).toBeCloseTo(12 * 1.01 * (0.98 * 1 + 0.002), 12);
    expect(r.atMs).toBe(5);
    const w = calibrateWindow(
      {
        startMs: 0,
        endMs: 5000,
        avgPowerW: 12,
        energyWh: (12 * 5) / 3600,
        minPowerW: 12,
        maxPowerW: 12,
        readings: 1,
        observedFraction: 1,
        outOfRange: 0,
        complete: true,
        faultReason: null,
        busV: 12,
        currentA: 1,
      },
      c,
    );
    expect(w.avgPowerW).toBeCloseTo(r.powerW, 12);
    expect(w.energyWh).toBeCloseTo((r.powerW * 5) / 3600, 12);
    expect(calibrateReading({ powerW: 3, busV: 12, currentA: 0.25 }, NO_CALIBRATION).powerW).toBe(3);
  });

  it('ids are stable and dated; stored factors out of bounds are named', () => {
    const c = { voltageGain: 1, currentGain: 1.002, currentOffsetA: 0 };
    const id = calibrationId(c, '2026-05-14T10:00:00.000Z');
    expect(id).toMatch(/^20260514-[0-9a-f]{8}$/);
    expect(calibrationId({ ...c }, '2026-05-14T10:00:00.000Z')).toBe(id);
    expect(calibrationId({ ...c, currentGain: 1.003 }, '2026-05-14T10:00:00.000Z')).not.toBe(id);
    expect(calibrationProblem(c, 3.2)).toBeNull();
    expect(calibrationProblem({ ...c, currentGain: 3 }, 3.2)).toMatch(/current gain 3 is outside/);
  });
});
