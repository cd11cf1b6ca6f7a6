import type { I2cBus } from '../bus.js';
import { AVERAGES } from '../chips/ina226.js';
import {
  ACCUMULATOR_MODULUS,
  DIAG_ALRT_FIELDS,
  INA228_ADC_CONFIG_FIELDS,
  INA228_BUS_LSB_V,
  INA228_CAL_FACTOR,
  INA228_CAL_MASK,
  INA228_CONFIG_FIELDS,
  INA228_CONVERSION_US,
  INA228_ENERGY_LSB_FACTOR,
  INA228_FIELD_SHIFT,
  INA228_MODES,
  INA228_POWER_LSB_FACTOR,
  INA228_REGISTERS,
  INA228_SHUNT_LSB_V,
} from '../chips/ina228.js';
import { CHIPS, type ChipSpec } from '../chips/table.js';
import { RegisterIo, type AccumulatorDriver, type DriverOptions, type Reading } from '../device.js';
import { ChipSettingError } from '../errors.js';
import { checkIdentity } from '../identify.js';
import { encodeFields, getField } from '../registers.js';

/**
 * INA228 driver. The chip integrates energy itself: every conversion cycle (one shunt and one
 * bus conversion) it adds that cycle's power times its duration to the 40-bit ENERGY register.
 * The energy sampler reads that register once per window; the averaged results (every 128
 * cycles, confirmed by CNVRF with ALATCH set so the flag holds until read) give the live power
 * from the POWER register, the bus voltage and the current.
 */
export interface Ina228Settings {
  address: number;
  shuntOhms: number;
  maxCurrentA: number;
  /** ADCRANGE: 0 = +-163.84 mV, 1 = +-40.96 mV. */
  adcRange: 0 | 1;
  /** AVG code: cycles averaged per result (the accumulators are not averaged: they add every cycle). */
  avgCode: number;
  busCtCode: number;
  shuntCtCode: number;
}

/**
 * The shunt converts for 4.120 ms and the bus for 0.050 ms: 98.8 % of each 4.17 ms cycle is
 * integrated; 128 cycles per result give a live reading every 533.8 ms. Temperature is not
 * converted (its time would be a gap).
 */
export const INA228_DEFAULT_SETTINGS: Omit<Ina228Settings, 'shuntOhms' | 'maxCurrentA'> = {
  address: 0x40,
  adcRange: 0,
  avgCode: 4,
  busCtCode: 0,
  shuntCtCode: 7,
};

const FULL_SCALE_COUNT = 2 ** 19 - 1;

export function resolveIna228Settings(partial: Partial<Ina228Settings> = {}): Ina228Settings {
  const chip = CHIPS.ina228;
  const defined = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) as Partial<Ina228Settings>;
  const s: Ina228Settings = { ...INA228_DEFAULT_SETTINGS, ...chip.defaults, ...defined };
  const err = (setting: keyof Ina228Settings, allowed: string) => new ChipSettingError(chip.name, setting, s[setting], allowed);
  if (!Number.isInteger(s.address) || s.address < 0x40 || s.address > 0x4f) throw err('address', '0x40-0x4F (64-79)');
  if (!(s.shuntOhms > 0 && s.shuntOhms <= 10)) throw err('shuntOhms', 'a resistance in ohms, > 0 and <= 10');
  if (!(s.maxCurrentA > 0 && s.maxCurrentA <= 1000)) throw err('maxCurrentA', 'a current in amperes, > 0 and <= 1000');
  if (s.adcRange !== 0 && s.adcRange !== 1) throw err('adcRange', '0 (+-163.84 mV) or 1 (+-40.96 mV)');
  for (const key of ['avgCode', 'busCtCode', 'shuntCtCode'] as const)
    if (!Number.isInteger(s[key]) || s[key] < 0 || s[key] > 7) throw err(key, 'a code 0-7');
  const fullScaleV = s.adcRange === 1 ? 0.04096 : (chip.shuntFullScaleV ?? 0);
  if (s.maxCurrentA > (fullScaleV / s.shuntOhms) * 1.0001)
    throw err(
      'maxCurrentA',
      `at most ${(fullScaleV / s.shuntOhms).toFixed(2)} A with a ${s.shuntOhms} ohm shunt (${(fullScaleV * 1000).toFixed(2)} mV full scale)`,
    );
  if (shuntCalFor(s) < 1)
    throw err(
      'maxCurrentA',
      `at least ${(1 / (INA228_CAL_FACTOR / 2 ** 19) / s.shuntOhms).toFixed(4)} A with this shunt (SHUNT_CAL would be 0)`,
    );
  return s;
}

/** SHUNT_CAL = 13107.2e6 x CURRENT_LSB x R (x4 with ADCRANGE = 1), CURRENT_LSB = max / 2^19 (SLYS021 8.1.2). */
export function shuntCalFor(s: Pick<Ina228Settings, 'maxCurrentA' | 'shuntOhms' | 'adcRange'>): number {
  const currentLsbA = s.maxCurrentA / 2 ** 19;
  return Math.min(INA228_CAL_MASK, Math.round(INA228_CAL_FACTOR * currentLsbA * s.shuntOhms * (s.adcRange === 1 ? 4 : 1)));
}

export class Ina228 implements AccumulatorDriver {
  readonly chip: ChipSpec = CHIPS.ina228;
  readonly settings: Ina228Settings;
  /** The averaged result period, ms. */
  readonly cycleMs: number;
  readonly observedShare: number;
  readonly shuntCal: number;
  /** The current LSB the chip really uses: the one the integer SHUNT_CAL stands for. */
  readonly currentLsbA: number;
  readonly powerLsbW: number;
  readonly accumulator: AccumulatorDriver['accumulator'];
  readonly expectedConfig: number;
  readonly expectedAdcConfig: number;
  resets = 0;
  private readonly io: RegisterIo;
  private readonly shuntLsbV: number;

  constructor(
    bus: I2cBus,
    settings: Partial<Ina228Settings> = {},
    private readonly opts: DriverOptions = {},
  ) {
    this.settings = resolveIna228Settings(settings);
    const s = this.settings;
    this.io = new RegisterIo(bus, s.address, `INA228 at 0x${s.address.toString(16)}`, opts);
    const tShuntUs = INA228_CONVERSION_US[s.shuntCtCode]!;
    const tBusUs = INA228_CONVERSION_US[s.busCtCode]!;
    const conversionCycleMs = (tShuntUs + tBusUs) / 1000;
    this.cycleMs = AVERAGES[s.avgCode]! * conversionCycleMs;
    this.observedShare = tShuntUs / (tShuntUs + tBusUs);
    this.shuntCal = shuntCalFor(s);
    // CURRENT = VSHUNT x 4096 / SHUNT_CAL in the chip (the datasheet's SHUNT_CAL equation with the
    // shunt LSB), so the integer SHUNT_CAL, not the rounded-off target, sets the current LSB.
    this.currentLsbA = this.shuntCal / (INA228_CAL_FACTOR * s.shuntOhms * (s.adcRange === 1 ? 4 : 1));
    this.powerLsbW = INA228_POWER_LSB_FACTOR * this.currentLsbA;
    this.accumulator = {
      cycleMs: conversionCycleMs,
      energyLsbJ: INA228_ENERGY_LSB_FACTOR * this.currentLsbA,
      modulus: ACCUMULATOR_MODULUS,
      maxPowerW: 2 * this.chip.maxBusV * ((s.adcRange === 1 ? 0.04096 : (this.chip.shuntFullScaleV ?? 0)) / s.shuntOhms),
    };
    this.shuntLsbV = INA228_SHUNT_LSB_V[s.adcRange];
    this.expectedConfig = encodeFields(INA228_CONFIG_FIELDS, { adcrange: s.adcRange });
    this.expectedAdcConfig = encodeFields(INA228_ADC_CONFIG_FIELDS, {
      mode: INA228_MODES.continuousBusShunt,
      vbusct: s.busCtCode,
      vshct: s.shuntCtCode,
      vtct: 0,
      avg: s.avgCode,
    });
  }

  get address(): number {
    return this.settings.address;
  }

  async init(): Promise<void> {
    await checkIdentity(this.io, this.chip);
    await this.io.write(INA228_REGISTERS.config, encodeFields(INA228_CONFIG_FIELDS, { rst: 1 }));
    await this.apply();
  }

  /**
   * Calibration, latched conversion-ready flag, the ADC settings (this write restarts the
   * conversion sequence), then the accumulators cleared, so the energy count starts at the
   * sequence. RSTACC is written back to 0: the datasheet does not say that the bit clears itself.
   */
  private async apply(): Promise<void> {
    await this.io.write(INA228_REGISTERS.config, this.expectedConfig);
    await this.io.write(INA228_REGISTERS.shuntCal, this.shuntCal);
    await this.io.write(INA228_REGISTERS.diagAlrt, encodeFields(DIAG_ALRT_FIELDS, { alatch: 1 }));
    await this.io.write(INA228_REGISTERS.adcConfig, this.expectedAdcConfig);
    await this.io.write(INA228_REGISTERS.config, this.expectedConfig | encodeFields(INA228_CONFIG_FIELDS, { rstacc: 1 }));
    await this.io.write(INA228_REGISTERS.config, this.expectedConfig);
  }

  /**
   * A power-on reset puts ADC_CONFIG back to 0xFB68 and SHUNT_CAL to 0x1000, and restarts both
   * accumulators from 0 (with that calibration): reading ADC_CONFIG back detects it.
   */
  async configIntact(): Promise<boolean> {
    return (await this.io.read(INA228_REGISTERS.adcConfig)) === this.expectedAdcConfig;
  }

  async checkReset(): Promise<boolean> {
    if (await this.configIntact()) return false;
    this.resets++;
    this.opts.log?.warning(`${this.io.target} lost its configuration (power-on reset): settings re-applied, accumulators restarted`);
    await this.apply();
    return true;
  }

  /** DIAG_ALRT first (reading it clears the latched CNVRF), then the result registers when one is ready. */
  async read(): Promise<Reading> {
    const diag = await this.io.read(INA228_REGISTERS.diagAlrt);
    const ready = getField(diag, DIAG_ALRT_FIELDS.cnvrf) === 1;
    if (!ready) return { ready: false, busV: 0, currentA: 0, powerW: 0, outOfRange: false, rangeChanged: false };
    const mathOverflow = getField(diag, DIAG_ALRT_FIELDS.mathof) === 1;
    const shuntCount = (await this.io.read(INA228_REGISTERS.vshunt)) / 2 ** INA228_FIELD_SHIFT;
    const busV = ((await this.io.read(INA228_REGISTERS.vbus)) / 2 ** INA228_FIELD_SHIFT) * INA228_BUS_LSB_V;
    const powerW = (await this.io.read(INA228_REGISTERS.power)) * this.powerLsbW;
    const shuntV = shuntCount * this.shuntLsbV;
    const currentA = shuntV / this.settings.shuntOhms;
    return {
      ready,
      busV,
      currentA,
      // The chip's product of current and bus voltage (VBUS wired to IN+: the supply side). The
      // register has no sign: with current flowing back, so is the power.
      powerW: currentA < 0 ? -powerW : powerW,
      outOfRange: mathOverflow || Math.abs(shuntCount) >= FULL_SCALE_COUNT,
      rangeChanged: false,
      shuntUv: shuntV * 1e6,
    };
  }

  async readEnergy(): Promise<number> {
    return this.io.read(INA228_REGISTERS.energy);
  }

  /** Chip registers by name, for doctor and tests. */
  async readRegister(name: keyof typeof INA228_REGISTERS): Promise<number> {
    return this.io.read(INA228_REGISTERS[name]);
  }
}
