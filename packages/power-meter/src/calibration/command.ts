import { existsSync } from 'node:fs';
import {
  CHIPS,
  calibrationId,
  createSampler,
  createSensor,
  fitCalibration,
  realSleep,
  systemClock,
  type CalibrationPoint,
  type Fit,
  type WindowResult,
} from '@power-meter/ina219';
import type { Log } from '@power-meter/service';
import { sensorSystemFix } from '../hints.js';
import { Outbox, OutboxLockedError } from '@power-meter/w3bstream';
import { outboxPaths } from '../meter.js';
import { sensorChip, type BackendSettings } from '../settings.js';
import { METER_SCHEMA } from '../store.js';
import { readCalibration, writeCalibration, type CalibrationFile } from './store.js';

/**
 * `power-meter calibrate`: measures a steady load for a few seconds with the meter's own
 * sampler (uncalibrated), takes what a reference meter shows at the same time, and fits the
 * calibration to this point and the earlier ones (calibration.ts in the sensor library: one point
 * gives a gain, two at different currents gain and offset). The meter must be stopped: this
 * command drives the chip itself, and holds the outbox's lock while it does so the service cannot
 * start in the middle.
 */
export interface CalibrateRequest {
  referenceW: number | null;
  referenceV: number | null;
  referenceA: number | null;
  seconds: number;
  /** Forget the earlier points: start a new calibration from this one. */
  fresh: boolean;
}

export interface CalibrateReport {
  point: CalibrationPoint;
  fit: Fit;
  file: CalibrationFile;
  path: string;
  windows: number;
  chipLabel: string;
}

/** The meter runs on this data directory: calibrating now would fight it over the chip. */
export class MeterRunningError extends Error {
  override name = 'MeterRunningError';
}

/** The load changed while it was measured: the point would not match the reference reading. */
export class UnsteadyLoadError extends Error {
  override name = 'UnsteadyLoadError';
}

/** Holds the outbox's exclusive lock (the running meter holds it); nothing to hold before the first start. */
function holdMeterLock(s: BackendSettings): () => void {
  const file = outboxPaths(s.dataDir).outbox;
  if (!existsSync(file)) return () => {};
  let outbox: Outbox;
  try {
    outbox = Outbox.open(file, { sequenceFloorFile: outboxPaths(s.dataDir).floor, schemas: [METER_SCHEMA] });
  } catch (err) {
    if (err instanceof OutboxLockedError)
      throw new MeterRunningError(
        `the meter is running on ${s.dataDir}: calibrate drives the chip itself, so stop the meter first (sudo systemctl stop power-meter), calibrate, then start it again`,
      );
    // A damaged or newer outbox keeps the meter from starting anyway: nothing to fight with.
    return () => {};
  }
  return () => outbox.close();
}

/** Measures `seconds` of 1 s windows (the first, partial one dropped) and returns them. */
async function measure(s: BackendSettings, seconds: number, log: Log): Promise<{ windows: WindowResult[]; chipLabel: string }> {
  const sensor = await createSensor({
    kind: s.sensor,
    simChip: s.simChip,
    i2cBus: s.i2cBus,
    settings: { address: s.i2cAddress, shuntOhms: s.shuntOhms, maxCurrentA: s.maxCurrentA },
    simLoad: s.simLoad,
    log,
  });
  const windows: WindowResult[] = [];
  const sampler = createSampler({
    driver: sensor.driver,
    clock: systemClock,
    sleep: realSleep,
    windowMs: 1000,
    onWindow: (w) => windows.push(w),
    log,
    // A fault's reason ends the calibration (below): with the fix, as the meter's state has it.
    reasonHint: sensorSystemFix,
  });
  let failure: unknown = null;
  const start = systemClock.nowMs();
  const run = sampler.runUntil(start + (seconds + 1) * 1000).catch((err: unknown) => {
    failure = err;
  });
  await run;
  await sensor.close();
  if (failure !== null) throw failure;
  if (sampler.state().state === 'fault') throw new Error(`the sensor failed while calibrating: ${sampler.state().reason}`);
  return { windows: windows.slice(1), chipLabel: `${sensor.chip.name}${sensor.simulated ? ', simulated' : ''}` };
}

export async function calibrate(s: BackendSettings, req: CalibrateRequest, log: Log, nowMs = Date.now()): Promise<CalibrateReport> {
  const release = holdMeterLock(s);
  try {
    const { windows, chipLabel } = await measure(s, req.seconds, log);
    const usable = windows.filter((w) => w.complete && w.outOfRange === 0 && w.avgPowerW !== null);
    if (usable.length < Math.min(3, Math.max(1, req.seconds - 1)))
      throw new UnsteadyLoadError(
        `only ${usable.length} of ${windows.length} one-second windows were complete and in range: check the sensor (power-meter doctor) and the load`,
      );
    const span = usable.reduce((a, w) => a + (w.endMs - w.startMs), 0);
    const mean = (f: (w: WindowResult) => number) => usable.reduce((a, w) => a + f(w) * (w.endMs - w.startMs), 0) / span;
    const measuredW = mean((w) => w.avgPowerW!);
    const measuredV = mean((w) => w.busV ?? 0);
    const measuredA = mean((w) => w.currentA ?? 0);
    // The reference is read once while the load runs: a load that moves makes that reading meaningless.
    const powers = usable.map((w) => w.avgPowerW!);
    const spread = Math.max(...powers) - Math.min(...powers);
    if (Math.abs(measuredW) > 0.05 && spread > 0.02 * Math.abs(measuredW))
      throw new UnsteadyLoadError(
        `the load changed while it was measured (1 s windows from ${Math.min(...powers).toFixed(3)} to ${Math.max(...powers).toFixed(3)} W, more than 2 %): calibrate with a steady load`,
      );
    const point: CalibrationPoint = {
      at: new Date(nowMs).toISOString(),
      seconds: span / 1000,
      measuredV,
      measuredA,
      measuredW,
      referenceW: req.referenceW,
      referenceV: req.referenceV,
      referenceA: req.referenceA,
    };
    const chip = sensorChip(s);
    const simulated = s.sensor === 'sim';
    const stored = readCalibration(s.dataDir, { chip, simulated, fullScaleA: Number.POSITIVE_INFINITY });
    // Earlier points of this sensor count, except one at about the same current: this one replaces it.
    const earlier =
      req.fresh || stored.state !== 'ok'
        ? []
        : stored.file.points.filter((p) => {
            const near = Math.abs(p.measuredA - measuredA) <= 0.1 * Math.max(Math.abs(p.measuredA), Math.abs(measuredA), 0.001);
            return !near;
          });
    const fit = fitCalibration([...earlier, point], s.maxCurrentA);
    const createdAt = point.at;
    const file: CalibrationFile = {
      version: 1,
      id: calibrationId(fit.calibration, createdAt),
      createdAt,
      chip,
      simulated,
      ...fit.calibration,
      method: fit.method,
      points: [...earlier, point],
    };
    const path = writeCalibration(s.dataDir, file);
    return { point, fit, file, path, windows: usable.length, chipLabel: chipLabel || CHIPS[chip].name };
  } finally {
    release();
  }
}
