import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CHIPS, NO_CALIBRATION, calibrationProblem, type Calibration, type CalibrationPoint, type ChipId } from '@power-meter/ina219';
import { readBoundedFileSync, writeFileAtomicSync } from '@power-meter/meter-files';

/**
 * `calibration.json` in the data directory, beside `identity/` (not inside it: it belongs to the
 * sensor, not the key, and stays when an identity is moved away to make a new one). Written
 * atomically and synced; mode 0644 like the other data files: it holds no secret, and only the
 * meter's user can write the directory. One object:
 *
 *   {"version":1,"id":"20260514-3f9a1c2e","createdAt":"2026-05-14T10:00:00.000Z","chip":"ina228",
 *    "simulated":false,"voltageGain":1,"currentGain":1.0021,"currentOffsetA":-0.0004,
 *    "method":"current gain and offset from 2 points","points":[...]}
 */
export const CALIBRATION_FILE = 'calibration.json';
const MAX_BYTES = 64 * 1024;

export interface CalibrationFile extends Calibration {
  version: 1;
  id: string;
  createdAt: string;
  chip: ChipId;
  simulated: boolean;
  method: string;
  points: CalibrationPoint[];
}

export type StoredCalibration =
  | { state: 'none' }
  | { state: 'ok'; file: CalibrationFile }
  /** The file exists but is not applied: `problem` says why and what to do. */
  | { state: 'unusable'; problem: string };

export function calibrationPath(dataDir: string): string {
  return join(dataDir, CALIBRATION_FILE);
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isNumOrNull = (v: unknown) => v === null || isNum(v);

function pointOk(p: unknown): p is CalibrationPoint {
  if (typeof p !== 'object' || p === null) return false;
  const o = p as Record<string, unknown>;
  return (
    typeof o.at === 'string' &&
    isNum(o.seconds) &&
    isNum(o.measuredV) &&
    isNum(o.measuredA) &&
    isNum(o.measuredW) &&
    isNumOrNull(o.referenceW) &&
    isNumOrNull(o.referenceV) &&
    isNumOrNull(o.referenceA)
  );
}

/**
 * Reads the calibration for the sensor in use. A calibration made with another chip (or the
 * emulator for a real one) is not applied; neither is a damaged file or factors outside the
 * limits: the meter then measures uncalibrated and says why.
 */
export function readCalibration(dataDir: string, sensor: { chip: ChipId; simulated: boolean; fullScaleA: number }): StoredCalibration {
  const path = calibrationPath(dataDir);
  const r = readBoundedFileSync(path, MAX_BYTES);
  if (!r.ok) {
    if (r.code === 'missing') return { state: 'none' };
    return { state: 'unusable', problem: `${path} cannot be read (${r.message})` };
  }
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(r.text) as Record<string, unknown>;
  } catch (err) {
    return { state: 'unusable', problem: `${path} is not JSON (${(err as Error).message}): run power-meter calibrate again` };
  }
  if (
    typeof o !== 'object' ||
    o === null ||
    o.version !== 1 ||
    typeof o.id !== 'string' ||
    typeof o.createdAt !== 'string' ||
    typeof o.chip !== 'string' ||
    !(o.chip in CHIPS) ||
    typeof o.simulated !== 'boolean' ||
    typeof o.method !== 'string' ||
    !Array.isArray(o.points) ||
    !o.points.every(pointOk)
  )
    return { state: 'unusable', problem: `${path} is not a calibration this program wrote: run power-meter calibrate again` };
  const file = o as unknown as CalibrationFile;
  if (file.chip !== sensor.chip || file.simulated !== sensor.simulated) {
    const what = (chip: ChipId, sim: boolean) => `${sim ? 'the simulated ' : 'an '}${CHIPS[chip].name}`;
    return {
      state: 'unusable',
      problem: `${path} (${file.id}) was made with ${what(file.chip, file.simulated)}, the sensor is ${what(sensor.chip, sensor.simulated)}: not applied; calibrate this sensor`,
    };
  }
  const problem = calibrationProblem(file, sensor.fullScaleA);
  if (problem !== null) return { state: 'unusable', problem: `${path} (${file.id}): ${problem}; run power-meter calibrate again` };
  return { state: 'ok', file };
}

export function writeCalibration(dataDir: string, file: CalibrationFile): string {
  // The meter creates its data directory the same way on its first start.
  mkdirSync(dataDir, { recursive: true });
  writeFileAtomicSync(dataDir, CALIBRATION_FILE, `${JSON.stringify(file, null, 2)}\n`, { durable: true, mode: 0o644 });
  return calibrationPath(dataDir);
}

/** The factors to apply and the id to show: none (and null) unless a usable file exists. */
export function activeCalibration(stored: StoredCalibration): { calibration: Calibration; id: string | null } {
  return stored.state === 'ok' ? { calibration: stored.file, id: stored.file.id } : { calibration: NO_CALIBRATION, id: null };
}
