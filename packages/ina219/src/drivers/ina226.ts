import type { I2cBus } from '../bus.js';
import {
  AVERAGES,
  INA226_CAL_MASK,
  INA226_CAL_NUMERATOR,
  INA226_CONFIG_FIELDS,
  INA226_CONVERSION_US,
  INA226_MODES,
  INA226_REGISTERS,
  INA260_REGISTERS,
  MASK_ENABLE_FIELDS,
} from '../chips/ina226.js';
import type { ChipSpec } from '../chips/table.js';
import { RegisterIo, type ConversionDriver, type DriverOptions, type Reading } from '../device.js';
import { ChipSettingError } from '../errors.js';
import { checkIdentity } from '../identify.js';
import { encodeFields, getField } from '../registers.js';
import { currentLsbFor } from '../settings.js';

/**
 * Driver for the INA226 (external shunt) and the INA260 (2 mohm shunt inside): one result per
 * averaging block, confirmed with CVRF (Mask/Enable bit 3, cleared by reading that register),
 * then the shunt (INA226) or current (INA260) register and the bus register. Current is computed
 * from the shunt voltage in software on the INA226, as on the INA219, so a calibration lost in a
 * brown-out cannot change a reading; the calibration is written anyway for other tools reading
 * the current and power registers.
 */
export interface Ina226Settings {
  /** 0x40-0x4F (A0/A1 straps). */
  address: number;
  /** The board's shunt (INA226); the INA260 always uses its own 2 mohm. */
  shuntOhms: number;
  /** Largest current expected; sets the calibration's current LSB (INA226). */
  maxCurrentA: number;
  /** AVG code (chips/ina226.ts AVERAGES): samples averaged per result. */
  avgCode: number;
  /** VBUSCT code: bus conversion time. */
  busCtCode: number;
  /** VSHCT (ISHCT) code: shunt conversion time. */
  shuntCtCode: number;
}

/**
 * Gap-free defaults: the shunt converts for 8.244 ms and the bus for 0.140 ms, so the shunt ADC
 * sees 98.3 % of the time; 16 samples are averaged into one result every 134.1 ms (half the
 * INA219's read rate).
 */
export const INA226_DEFAULT_SETTINGS: Omit<Ina226Settings, 'shuntOhms' | 'maxCurrentA'> = {
  address: 0x40,
  avgCode: 2,
  busCtCode: 0,
  shuntCtCode: 7,
};

/** Full scale of the INA226's shunt register: +-32767 x 2.5 uV. */
const SHUNT_LSB_V = 2.5e-6;
/** The INA260's current register: 1.25 mA per count. */
const INA260_CURRENT_LSB_A = 1.25e-3;
const BUS_LSB_V = 1.25e-3;
const FULL_SCALE_COUNT = 32767;

export function resolveIna226Settings(chip: ChipSpec, partial: Partial<Ina226Settings> = {}): Ina226Settings {
  const defined = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) as Partial<Ina226Settings>;
  const s: Ina226Settings = { ...INA226_DEFAULT_SETTINGS, ...chip.defaults, ...defined };
  if (chip.internalShuntOhms !== null) s.shuntOhms = chip.internalShuntOhms;
  const err = (setting: string, allowed: string) => new ChipSettingError(chip.name, setting, s[setting as keyof Ina226Settings], allowed);
  if (!Number.isInteger(s.address) || s.address < 0x40 || s.address > 0x4f) throw err('address', '0x40-0x4F (64-79)');
  if (!(s.shuntOhms > 0 && s.shuntOhms <= 10)) throw err('shuntOhms', 'a resistance in ohms, > 0 and <= 10');
  if (!(s.maxCurrentA > 0 && s.maxCurrentA <= 100)) throw err('maxCurrentA', 'a current in amperes, > 0 and <= 100');
  for (const [key, max] of [
    ['avgCode', 7],
    ['busCtCode', 7],
    ['shuntCtCode', 7],
  ] as const)
    if (!Number.isInteger(s[key]) || s[key] < 0 || s[key] > max) throw err(key, `a code 0-${max}`);
  const fullScaleA = chip.ratedCurrentA ?? (chip.shuntFullScaleV ?? 0) / s.shuntOhms;
  if (s.maxCurrentA > fullScaleA * 1.0001)
    throw err(
      'maxCurrentA',
      chip.ratedCurrentA !== null
        ? `at most ${chip.ratedCurrentA} A (the ${chip.name}'s rating)`
        : `at most ${fullScaleA.toFixed(2)} A with a ${s.shuntOhms} ohm shunt (${((chip.shuntFullScaleV ?? 0) * 1000).toFixed(2)} mV full scale)`,
    );
  return s;
}

/** Cal = trunc(0.00512 / (Current_LSB x R)), SBOS547 equation 1; 15 bits. */
export function ina226CalibrationFor(currentLsbA: number, shuntOhms: number): number {
  return Math.min(INA226_CAL_MASK, Math.trunc(INA226_CAL_NUMERATOR / (currentLsbA * shuntOhms) + 1e-9));
}

export class Ina226 implements ConversionDriver {
  readonly settings: Ina226Settings;
  readonly cycleMs: number;
  readonly observedShare: number;
  readonly currentLsbA: number;
  /** The INA226's calibration value; null on the INA260 (it has no calibration register). */
  readonly calibration: number | null;
  readonly expectedConfig: number;
  resets = 0;
  private readonly io: RegisterIo;
  private readonly regs: typeof INA226_REGISTERS | typeof INA260_REGISTERS;
  private readonly internalShunt: boolean;

  constructor(
    bus: I2cBus,
    readonly chip: ChipSpec,
    settings: Partial<Ina226Settings> = {},
    private readonly opts: DriverOptions = {},
  ) {
    if (chip.id !== 'ina226' && chip.id !== 'ina260') throw new RangeError(`${chip.name} is not an INA226-family chip`);
    this.settings = resolveIna226Settings(chip, settings);
    this.internalShunt = chip.internalShuntOhms !== null;
    this.regs = this.internalShunt ? INA260_REGISTERS : INA226_REGISTERS;
    this.io = new RegisterIo(bus, this.settings.address, `${chip.name} at 0x${this.settings.address.toString(16)}`, opts);
    const tShuntUs = INA226_CONVERSION_US[this.settings.shuntCtCode]!;
    const tBusUs = INA226_CONVERSION_US[this.settings.busCtCode]!;
    // Averaging repeats the whole shunt-then-bus sequence (SBOS547 7.3.1): one result per AVG samples.
    this.cycleMs = (AVERAGES[this.settings.avgCode]! * (tShuntUs + tBusUs)) / 1000;
    this.observedShare = tShuntUs / (tShuntUs + tBusUs);
    this.currentLsbA = this.internalShunt ? INA260_CURRENT_LSB_A : currentLsbFor(this.settings.maxCurrentA);
    this.calibration = this.internalShunt ? null : ina226CalibrationFor(this.currentLsbA, this.settings.shuntOhms);
    this.expectedConfig =
      (this.regs.config.powerOn & 0x7000) |
      encodeFields(INA226_CONFIG_FIELDS, {
        avg: this.settings.avgCode,
        vbusct: this.settings.busCtCode,
        vshct: this.settings.shuntCtCode,
        mode: INA226_MODES.bothContinuous,
      });
  }

  get address(): number {
    return this.settings.address;
  }

  async init(): Promise<void> {
    await checkIdentity(this.io, this.chip);
    await this.io.write(this.regs.config, 0x8000);
    await this.apply();
  }

  private async apply(): Promise<void> {
    if (this.calibration !== null) await this.io.write(INA226_REGISTERS.calibration, this.calibration);
    // Written last: a configuration write restarts the conversion sequence (and clears CVRF).
    await this.io.write(this.regs.config, this.expectedConfig);
  }

  async checkReset(): Promise<boolean> {
    const config = await this.io.read(this.regs.config);
    if (config === this.expectedConfig) return false;
    this.resets++;
    this.opts.log?.warning(`${this.io.target} lost its configuration (read 0x${config.toString(16)}): chip reset, settings re-applied`);
    await this.apply();
    return true;
  }

  /** Reads Mask/Enable (which clears CVRF); only when a result is ready the measurement registers. */
  async read(): Promise<Reading> {
    const mask = await this.io.read(this.regs.maskEnable);
    const ready = getField(mask, MASK_ENABLE_FIELDS.cvrf) === 1;
    if (!ready) return { ready: false, busV: 0, currentA: 0, powerW: 0, outOfRange: false, rangeChanged: false };
    const ovf = getField(mask, MASK_ENABLE_FIELDS.ovf) === 1;
    const first = await this.io.read(this.internalShunt ? INA260_REGISTERS.current : INA226_REGISTERS.shunt);
    const busV = (await this.io.read(this.regs.bus)) * BUS_LSB_V;
    const clipped = Math.abs(first) >= FULL_SCALE_COUNT;
    let currentA: number;
    let shuntUv: number;
    if (this.internalShunt) {
      currentA = first * INA260_CURRENT_LSB_A;
      shuntUv = currentA * this.settings.shuntOhms * 1e6;
    } else {
      shuntUv = first * SHUNT_LSB_V * 1e6;
      currentA = shuntUv / 1e6 / this.settings.shuntOhms;
    }
    // VBUS is wired to IN+ (README, docs/hardware.md): the bus voltage is the supply's, so this
    // is the power drawn from the supply, the INA219's supply-side figure.
    return {
      ready,
      busV,
      currentA,
      powerW: busV * currentA,
      // OVF concerns the chip's own current and power registers, which the meter does not use
      // on the INA226; on the INA260 they are its only current.
      outOfRange: clipped || (ovf && this.internalShunt),
      rangeChanged: false,
      shuntUv,
    };
  }

  /** Chip registers by name, for doctor and tests. */
  async readRegister(name: keyof typeof INA226_REGISTERS & keyof typeof INA260_REGISTERS): Promise<number> {
    return this.io.read(this.regs[name]);
  }
}
