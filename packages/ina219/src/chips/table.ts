import { INA226_CONVERSION_US, INA226_REGISTERS, INA260_REGISTERS } from './ina226.js';
import { INA228_CONVERSION_US, INA228_REGISTERS } from './ina228.js';
import { REGISTERS as INA219_REGISTERS, type RegisterMap } from '../registers.js';

/**
 * Every chip the meter drives, one row each, like the per-chip table of Linux's
 * drivers/hwmon/ina2xx.c: the constants that differ between chips live here and nowhere else.
 * The register maps are data too (registers.ts, chips/ina226.ts, chips/ina228.ts); the
 * drivers and emulators read both. docs/hardware.md gives the source of each number.
 */
export type ChipId = 'ina219' | 'ina226' | 'ina260' | 'ina228';
export const CHIP_IDS: readonly ChipId[] = ['ina219', 'ina226', 'ina260', 'ina228'];

/** Where a chip says who it is: TI's manufacturer ID and the die (device) ID in bits 15-4. */
export interface ChipIdentity {
  manufacturerPtr: number;
  manufacturerId: number;
  devicePtr: number;
  /** The 12-bit die ID (bits 15-4 of the register; bits 3-0 are the revision, not checked). */
  dieId: number;
}

export const TI_MANUFACTURER_ID = 0x5449; // "TI" in ASCII

export interface ChipSpec {
  id: ChipId;
  /** As printed on the chip and shown to users. */
  name: string;
  /** TI literature number of the datasheet the tables follow. */
  datasheet: string;
  registers: RegisterMap;
  /** Null: the chip has no ID registers (the INA219). */
  identity: ChipIdentity | null;
  /** Highest bus voltage the chip measures, V. */
  maxBusV: number;
  /** Shunt voltage full scale at the widest range, V; null when the shunt is inside (INA260). */
  shuntFullScaleV: number | null;
  /** The built-in shunt, ohms (INA260); null when the shunt is on the board. */
  internalShuntOhms: number | null;
  /** Continuous current the chip itself is rated for (INA260), A; null when the shunt decides. */
  ratedCurrentA: number | null;
  /**
   * Where the bus voltage is taken with the wiring the README shows: the INA219 measures at IN-
   * (the load side, so the supply is bus + shunt voltage); the others have a VBUS pin, wired to
   * IN+ (the supply side).
   */
  busSense: 'in-minus' | 'vbus';
  /** Conversion time of each ADC time code, microseconds (null: the INA219's own table in registers.ts). */
  conversionUs: readonly number[] | null;
  /** The chip integrates energy itself (the INA228's ENERGY register): one read per window suffices. */
  energyAccumulator: boolean;
  /** Noise of one raw shunt sample in the emulator, microvolts (at 1.1 ms for the INA226 family). */
  noiseUv: number;
  /** Settings of the common breakout, used when --shunt-ohms / --max-current are not given. */
  defaults: { shuntOhms: number; maxCurrentA: number };
  /** The common breakout these defaults describe. */
  breakout: string;
}

export const CHIPS: Record<ChipId, ChipSpec> = {
  ina219: {
    id: 'ina219',
    name: 'INA219',
    datasheet: 'SBOS448',
    registers: INA219_REGISTERS,
    identity: null,
    maxBusV: 26,
    shuntFullScaleV: 0.32,
    internalShuntOhms: null,
    ratedCurrentA: null,
    busSense: 'in-minus',
    conversionUs: null,
    energyAccumulator: false,
    noiseUv: 20,
    defaults: { shuntOhms: 0.1, maxCurrentA: 3.2 },
    breakout: 'Adafruit 904 and clones: 0.1 ohm shunt',
  },
  ina226: {
    id: 'ina226',
    name: 'INA226',
    datasheet: 'SBOS547',
    registers: INA226_REGISTERS,
    identity: { manufacturerPtr: 0xfe, manufacturerId: TI_MANUFACTURER_ID, devicePtr: 0xff, dieId: 0x226 },
    maxBusV: 36,
    shuntFullScaleV: 0.08192,
    internalShuntOhms: null,
    ratedCurrentA: null,
    busSense: 'vbus',
    conversionUs: INA226_CONVERSION_US,
    energyAccumulator: false,
    noiseUv: 5,
    defaults: { shuntOhms: 0.1, maxCurrentA: 0.8 },
    breakout: 'CJMCU-226 / GY-INA226 modules: 0.1 ohm shunt (R100), so at most 0.82 A',
  },
  ina260: {
    id: 'ina260',
    name: 'INA260',
    datasheet: 'SBOS656',
    registers: INA260_REGISTERS,
    identity: { manufacturerPtr: 0xfe, manufacturerId: TI_MANUFACTURER_ID, devicePtr: 0xff, dieId: 0x227 },
    maxBusV: 36,
    shuntFullScaleV: null,
    internalShuntOhms: 0.002,
    ratedCurrentA: 15,
    busSense: 'vbus',
    conversionUs: INA226_CONVERSION_US,
    energyAccumulator: false,
    noiseUv: 5,
    defaults: { shuntOhms: 0.002, maxCurrentA: 15 },
    breakout: 'Adafruit 4226: 2 mohm shunt inside the chip, VBUS joined to VIN+',
  },
  ina228: {
    id: 'ina228',
    name: 'INA228',
    datasheet: 'SLYS021',
    registers: INA228_REGISTERS,
    identity: { manufacturerPtr: 0x3e, manufacturerId: TI_MANUFACTURER_ID, devicePtr: 0x3f, dieId: 0x228 },
    maxBusV: 85,
    shuntFullScaleV: 0.16384,
    internalShuntOhms: null,
    ratedCurrentA: null,
    busSense: 'vbus',
    conversionUs: INA228_CONVERSION_US,
    energyAccumulator: true,
    noiseUv: 2,
    defaults: { shuntOhms: 0.015, maxCurrentA: 10 },
    breakout: 'Adafruit 5832: 15 mohm shunt; close its VBUS jumper (VBUS to VIN+)',
  },
};

export function chipSpec(id: ChipId): ChipSpec {
  return CHIPS[id];
}

/** "INA228", or "INA228 (simulated)" for the emulator. */
export function chipLabel(id: ChipId, simulated: boolean): string {
  return `${CHIPS[id].name}${simulated ? ' (simulated)' : ''}`;
}
