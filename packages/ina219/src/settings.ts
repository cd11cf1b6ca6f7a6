import { Ina219SettingError } from './errors.js';
import { ADC_SETTINGS, CAL_NUMERATOR, CONFIG_FIELDS, MODES, PG_RANGE_MV, POWER_LSB_FACTOR, adcSetting, encodeFields } from './registers.js';

export type ShuntRangeMv = 40 | 80 | 160 | 320;

export interface Ina219Settings {
  /** 0x40-0x4F (A0/A1 straps). */
  address: number;
  shuntOhms: number;
  /** Largest current expected; sets the calibration's current LSB. */
  maxCurrentA: number;
  busRangeV: 16 | 32;
  /** Fixed shunt range, or 'auto': start small and step up on clipping/overflow. */
  shuntRange: ShuntRangeMv | 'auto';
  /** ADC codes (registers.ts ADC_SETTINGS). */
  shuntAdc: number;
  busAdc: number;
}

/**
 * Defaults chosen for gap-free energy measurement (docs/design.md "Measuring well"): the shunt ADC
 * averages 128 samples over 68.10 ms and the bus ADC converts once at 12 bits in 0.532 ms, so
 * the shunt conversions observe 68.10 / 68.632 = 99.2 % of the time, one I2C read cycle every
 * 68.6 ms (about 15 per second).
 */
export const DEFAULT_SETTINGS: Ina219Settings = {
  address: 0x40,
  shuntOhms: 0.1,
  maxCurrentA: 3.2,
  busRangeV: 32,
  shuntRange: 'auto',
  shuntAdc: 0xf,
  busAdc: 0x3,
};

export interface Preset {
  busRangeV: 16 | 32;
  shuntRange: ShuntRangeMv;
  currentLsbA: number;
  /** Configuration register value of the classic driver preset (12-bit, continuous). */
  config: number;
}

/** The common presets for the 0.1 ohm breakout (docs/hardware.md), with their calibration values. */
export const PRESETS: Record<'32V_2A' | '32V_1A' | '16V_400mA', Preset> = {
  '32V_2A': { busRangeV: 32, shuntRange: 320, currentLsbA: 100e-6, config: 0x399f },
  '32V_1A': { busRangeV: 32, shuntRange: 320, currentLsbA: 40e-6, config: 0x399f },
  '16V_400mA': { busRangeV: 16, shuntRange: 40, currentLsbA: 50e-6, config: 0x019f },
};

/** Cal = trunc(0.04096 / (Current_LSB x R_shunt)), datasheet equation 1. */
export function calibrationFor(currentLsbA: number, shuntOhms: number): number {
  return Math.trunc(CAL_NUMERATOR / (currentLsbA * shuntOhms) + 1e-9) & 0xfffe;
}

/** Smallest 1-2-5 step >= maxCurrentA / 32767, so the current register never overflows. */
export function currentLsbFor(maxCurrentA: number): number {
  const raw = maxCurrentA / 32767;
  const decade = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * decade >= raw - 1e-15) return m * decade;
  return 10 * decade;
}

export function pgCode(rangeMv: ShuntRangeMv): number {
  return PG_RANGE_MV.indexOf(rangeMv);
}

export function configWord(s: Ina219Settings, rangeMv: ShuntRangeMv): number {
  return encodeFields(CONFIG_FIELDS, {
    brng: s.busRangeV === 32 ? 1 : 0,
    pg: pgCode(rangeMv),
    badc: s.busAdc,
    sadc: s.shuntAdc,
    mode: MODES.bothContinuous,
  });
}

/** Smallest range that covers maxCurrentA through the shunt (the start of 'auto'). */
export function initialRangeMv(s: Ina219Settings): ShuntRangeMv {
  if (s.shuntRange !== 'auto') return s.shuntRange;
  const needMv = s.maxCurrentA * s.shuntOhms * 1000;
  return (PG_RANGE_MV.find((r) => r >= needMv) ?? 320) as ShuntRangeMv;
}

/** Conversion cycle in continuous shunt+bus mode: t_shunt + t_bus. */
export function cycleMs(s: Pick<Ina219Settings, 'shuntAdc' | 'busAdc'>): number {
  return (adcSetting(s.shuntAdc).conversionUs + adcSetting(s.busAdc).conversionUs) / 1000;
}

export function observedFractionPerCycle(s: Pick<Ina219Settings, 'shuntAdc' | 'busAdc'>): number {
  return adcSetting(s.shuntAdc).conversionUs / 1000 / cycleMs(s);
}

export function powerLsbW(currentLsbA: number): number {
  return POWER_LSB_FACTOR * currentLsbA;
}

/** Validates and completes settings; throws Ina219SettingError naming the setting and what is allowed. */
export function resolveIna219Settings(partial: Partial<Ina219Settings> = {}): Ina219Settings {
  const s: Ina219Settings = { ...DEFAULT_SETTINGS, ...stripUndefined(partial) };
  if (!Number.isInteger(s.address) || s.address < 0x40 || s.address > 0x4f)
    throw new Ina219SettingError('address', s.address, '0x40-0x4F (64-79)');
  if (!(s.shuntOhms > 0 && s.shuntOhms <= 10))
    throw new Ina219SettingError('shuntOhms', s.shuntOhms, 'a resistance in ohms, > 0 and <= 10 (0.1 on the common breakout)');
  if (!(s.maxCurrentA > 0 && s.maxCurrentA <= 100))
    throw new Ina219SettingError('maxCurrentA', s.maxCurrentA, 'a current in amperes, > 0 and <= 100');
  if (s.busRangeV !== 16 && s.busRangeV !== 32) throw new Ina219SettingError('busRangeV', s.busRangeV, '16 or 32');
  if (s.shuntRange !== 'auto' && !PG_RANGE_MV.includes(s.shuntRange))
    throw new Ina219SettingError('shuntRange', s.shuntRange, "'auto', 40, 80, 160 or 320 (mV)");
  const codes = ADC_SETTINGS.map((a) => a.code);
  if (!codes.includes(s.shuntAdc)) throw new Ina219SettingError('shuntAdc', s.shuntAdc, `one of ${codes.join(', ')}`);
  if (!codes.includes(s.busAdc)) throw new Ina219SettingError('busAdc', s.busAdc, `one of ${codes.join(', ')}`);
  const fullScaleA = 0.32 / s.shuntOhms;
  if (s.maxCurrentA > fullScaleA * 1.0001)
    throw new Ina219SettingError(
      'maxCurrentA',
      s.maxCurrentA,
      `at most ${fullScaleA.toFixed(2)} A with a ${s.shuntOhms} ohm shunt (320 mV range)`,
    );
  return s;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
