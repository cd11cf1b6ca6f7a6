import { createHash } from 'node:crypto';
import type { WindowResult } from './window.js';

/**
 * Calibration against a reference meter, pure: the model, how it is fitted from measured points,
 * what is refused, and how it applies to readings and windows.
 *
 * Model: the bus voltage has a gain (V' = gV x V); the current a gain and an offset
 * (I' = gI x I + oI): the shunt's tolerance and the amplifier's offset are where these chips
 * err. Power follows as V' x I' = gV gI P + gV oI V, and a window's energy as
 * gV gI E + gV oI V_mean T (exact for a steady bus voltage, which the supply side of a meter has).
 *
 * Fitting: each `calibrate` run is one point (what the meter measured, what the reference
 * showed). One point gives a current gain only (offset 0); points at two or more clearly
 * different currents give gain and offset by least squares (a point with the load off is the
 * natural second one: it measures the offset). A voltage reference gives the voltage gain.
 */
export interface Calibration {
  voltageGain: number;
  currentGain: number;
  currentOffsetA: number;
}

export const NO_CALIBRATION: Calibration = { voltageGain: 1, currentGain: 1, currentOffsetA: 0 };

/** What a calibration may correct. Beyond these the setting or the wiring is wrong, not the chip's tolerance. */
export const CALIBRATION_LIMITS = {
  /** A 1 % shunt and a 0.5 % ADC are far inside; a shunt set 10x wrong is far outside. */
  currentGain: [0.8, 1.25] as const,
  /** The bus divider of these chips is trimmed to 0.1-0.5 %: 10 % means a wrong reference or wiring. */
  voltageGain: [0.9, 1.1] as const,
  /** Offset at most this share of the full-scale current. */
  currentOffsetOfFullScale: 0.02,
  /** Two points count as different currents when they differ by at least this share of the larger. */
  distinctShare: 0.1,
};

export interface CalibrationPoint {
  /** Wall-clock time of the measurement (ISO 8601). */
  at: string;
  seconds: number;
  measuredV: number;
  measuredA: number;
  measuredW: number;
  /** What the user gave (null where not given). */
  referenceW: number | null;
  referenceV: number | null;
  referenceA: number | null;
}

export class CalibrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CalibrationError';
  }
}

/** The reference current and voltage a point stands for (a power reference is divided by the voltage). */
export function referenceOf(p: CalibrationPoint, voltageGain: number): { currentA: number | null; voltageV: number | null } {
  let voltageV = p.referenceV;
  if (voltageV === null && p.referenceW !== null && p.referenceA !== null && p.referenceA !== 0) voltageV = p.referenceW / p.referenceA;
  let currentA = p.referenceA;
  if (currentA === null && p.referenceW !== null) currentA = p.referenceW / (voltageV ?? voltageGain * p.measuredV);
  return { currentA, voltageV };
}

export interface Fit {
  calibration: Calibration;
  /** "current gain from 1 point" / "current gain and offset from 2 points". */
  method: string;
  /** Points the fit used. */
  points: number;
}

/**
 * Fits the model to the points (the newest last). Throws CalibrationError, naming the values,
 * when a factor is outside CALIBRATION_LIMITS or nothing can be fitted. `fullScaleA`: the
 * sensor's full-scale current (the offset limit).
 */
export function fitCalibration(points: readonly CalibrationPoint[], fullScaleA: number): Fit {
  if (points.length === 0) throw new CalibrationError('no calibration point');
  // Voltage gain: the mean ratio of the points that give a voltage reference.
  const vRatios = points.flatMap((p) => {
    const v = referenceOf(p, 1).voltageV;
    return v !== null && p.measuredV > 0 ? [v / p.measuredV] : [];
  });
  const voltageGain = vRatios.length ? vRatios.reduce((a, b) => a + b, 0) / vRatios.length : 1;
  const [vMin, vMax] = CALIBRATION_LIMITS.voltageGain;
  if (!(voltageGain >= vMin && voltageGain <= vMax))
    throw new CalibrationError(
      `the voltage gain would be ${voltageGain.toFixed(4)} (the reference says ${fmt(referenceOf(points[points.length - 1]!, 1).voltageV)} V where the meter measured ${fmt(points[points.length - 1]!.measuredV)} V); at most ${vMin}-${vMax} is a calibration, more is a wrong reference or the bus voltage wired elsewhere`,
    );
  const xy = points.flatMap((p) => {
    const a = referenceOf(p, voltageGain).currentA;
    return a === null ? [] : [{ x: p.measuredA, y: a }];
  });
  if (xy.length === 0)
    return { calibration: { voltageGain, currentGain: 1, currentOffsetA: 0 }, method: 'voltage gain only', points: points.length };
  const xs = xy.map((p) => p.x);
  const spread = Math.max(...xs) - Math.min(...xs);
  const largest = Math.max(...xs.map(Math.abs));
  let gain: number;
  let offset: number;
  let method: string;
  if (xy.length >= 2 && spread >= CALIBRATION_LIMITS.distinctShare * largest && spread > 0) {
    const n = xy.length;
    const mx = xs.reduce((a, b) => a + b, 0) / n;
    const my = xy.reduce((a, p) => a + p.y, 0) / n;
    let sxx = 0;
    let sxy = 0;
    for (const p of xy) {
      sxx += (p.x - mx) ** 2;
      sxy += (p.x - mx) * (p.y - my);
    }
    gain = sxy / sxx;
    offset = my - gain * mx;
    method = `current gain and offset from ${n} points`;
  } else {
    // One current (or several at about the same one): a gain only, through zero.
    const p = xy[xy.length - 1]!;
    if (Math.abs(p.x) < 1e-9) {
      if (Math.abs(p.y) > 1e-9)
        throw new CalibrationError(
          `the meter measured no current where the reference shows ${fmt(p.y)} A: is the load on, and is it wired through the shunt?`,
        );
      gain = 1;
      offset = 0 - p.x;
      method = 'current offset from a point without load';
    } else {
      gain = p.y / p.x;
      offset = 0;
      method = 'current gain from 1 point';
    }
  }
  const [gMin, gMax] = CALIBRATION_LIMITS.currentGain;
  if (!(gain >= gMin && gain <= gMax))
    throw new CalibrationError(
      `the current gain would be ${gain.toFixed(4)} (the reference says ${fmt(xy[xy.length - 1]!.y)} A where the meter measured ${fmt(xy[xy.length - 1]!.x)} A); a calibration corrects ${gMin}-${gMax}: more means the shunt resistance setting, the reference reading or the wiring is wrong`,
    );
  const maxOffset = CALIBRATION_LIMITS.currentOffsetOfFullScale * fullScaleA;
  if (Math.abs(offset) > maxOffset)
    throw new CalibrationError(
      `the current offset would be ${(offset * 1000).toFixed(2)} mA, more than ${(maxOffset * 1000).toFixed(1)} mA (2 % of the ${fmt(fullScaleA)} A full scale): check the references, or start over with a new first point`,
    );
  return { calibration: { voltageGain, currentGain: gain, currentOffsetA: offset }, method, points: points.length };
}

/** A short, stable name for a calibration: its date and a hash of its factors and date. */
export function calibrationId(c: Calibration, createdAt: string): string {
  const text = JSON.stringify([c.voltageGain, c.currentGain, c.currentOffsetA, createdAt]);
  return `${createdAt.slice(0, 10).replaceAll('-', '')}-${createHash('sha256').update(text).digest('hex').slice(0, 8)}`;
}

/** Whether stored factors are inside the limits (a hand-edited file may not be). */
export function calibrationProblem(c: Calibration, fullScaleA: number): string | null {
  const ok = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (!ok(c.voltageGain) || !ok(c.currentGain) || !ok(c.currentOffsetA)) return 'a factor is missing or not a number';
  const [vMin, vMax] = CALIBRATION_LIMITS.voltageGain;
  const [gMin, gMax] = CALIBRATION_LIMITS.currentGain;
  if (c.voltageGain < vMin || c.voltageGain > vMax) return `voltage gain ${c.voltageGain} is outside ${vMin}-${vMax}`;
  if (c.currentGain < gMin || c.currentGain > gMax) return `current gain ${c.currentGain} is outside ${gMin}-${gMax}`;
  if (Math.abs(c.currentOffsetA) > CALIBRATION_LIMITS.currentOffsetOfFullScale * fullScaleA)
    return `current offset ${c.currentOffsetA} A is more than 2 % of the ${fullScaleA} A full scale`;
  return null;
}

export interface LiveValues {
  powerW: number;
  busV: number;
  currentA: number;
}

export function calibrateReading<T extends LiveValues>(r: T, c: Calibration): T {
  if (c === NO_CALIBRATION) return r;
  return {
    ...r,
    powerW: c.voltageGain * c.currentGain * r.powerW + c.voltageGain * c.currentOffsetA * r.busV,
    busV: c.voltageGain * r.busV,
    currentA: c.currentGain * r.currentA + c.currentOffsetA,
  };
}

export function calibrateWindow(w: WindowResult, c: Calibration): WindowResult {
  if (c === NO_CALIBRATION || w.avgPowerW === null) return w;
  const v = w.busV ?? 0;
  const gain = c.voltageGain * c.currentGain;
  const offsetW = c.voltageGain * c.currentOffsetA * v;
  const p = (x: number | null) => (x === null ? null : gain * x + offsetW);
  return {
    ...w,
    avgPowerW: p(w.avgPowerW),
    energyWh: gain * w.energyWh + (offsetW * (w.endMs - w.startMs)) / 3_600_000,
    minPowerW: p(w.minPowerW),
    maxPowerW: p(w.maxPowerW),
    busV: w.busV === null ? null : c.voltageGain * w.busV,
    currentA: w.currentA === null ? null : c.currentGain * w.currentA + c.currentOffsetA,
  };
}

function fmt(x: number | null): string {
  return x === null ? '?' : Number(x.toPrecision(5)).toString();
}
