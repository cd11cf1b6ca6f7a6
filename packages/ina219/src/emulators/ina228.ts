import { AVERAGES } from '../chips/ina226.js';
import {
  ACCUMULATOR_MODULUS,
  DIAG_ALRT_FIELDS,
  INA228_ADC_CONFIG_FIELDS,
  INA228_BUS_LSB_V,
  INA228_CAL_MASK,
  INA228_CONFIG_FIELDS,
  INA228_CONVERSION_US,
  INA228_FIELD_SHIFT,
  INA228_REGISTERS,
  INA228_SHUNT_LSB_V,
  INA228_TEMP_LSB_C,
} from '../chips/ina228.js';
import { CHIPS } from '../chips/table.js';
import { meanCurrentA } from '../loads.js';
import { getField } from '../registers.js';
import { RegisterEmulator, gaussian, type EmulatorBaseOptions } from './base.js';

/**
 * A register-level INA228 (SLYS021) that follows the datasheet, not the driver: power-on values
 * and RST; conversions in sequence (shunt, bus, temperature: whichever MODE enables), each
 * shunt conversion averaging the true current over its conversion time; every cycle the chip's
 * current (VSHUNT x 4096 / SHUNT_CAL) and power (CURRENT x VBUS / 16384) and the accumulators
 * ENERGY += power x cycle time / 16 and CHARGE += current x cycle time, kept with more bits
 * inside than the registers show, wrapping at 2^40 with ENERGYOF / CHARGEOF set (cleared by
 * reading that register); averaging over AVG cycles for the result registers only (the
 * accumulators add every cycle, SLYS021 7.3.2); CNVRF when a result is complete, held until
 * DIAG_ALRT is read when ALATCH is set (with ALATCH clear it shows for one cycle: the datasheet
 * leaves that case open); RSTACC clears the accumulators; an ADC_CONFIG write restarts the
 * sequence after CONVDLY; SHUNT_CAL 0 makes current, power and energy 0. VBUS is wired to IN+.
 * The alert limits and the temperature compensation are not emulated (the meter uses neither).
 */
export type Ina228EmulatorOptions = EmulatorBaseOptions;

const R = INA228_REGISTERS;
const MAX_COUNT = 2 ** 19 - 1;
const TEMP_25C = Math.round(25 / INA228_TEMP_LSB_C);

export class Ina228Emulator extends RegisterEmulator {
  readonly shuntOhms: number;
  private config = 0;
  private adcConfig = 0;
  private shuntCal = 0;
  private shuntTempco = 0;
  /** The writable DIAG_ALRT bits (ALATCH, CNVR, SLOWALERT, APOL). */
  private diagBits = 0;
  /** When the first conversion of the running sequence started. */
  private seqStartMs = 0;
  /** Conversion cycles of this sequence already integrated. */
  private cycles = 0;
  /** Accumulators in register counts, with the fraction the chip keeps inside. */
  private energy = 0;
  private charge = 0;
  private energyOf = false;
  private chargeOf = false;
  private mathOf = false;
  private cnvrf = false;
  // Result registers (20-bit counts; POWER in its 24-bit count).
  private vshunt = 0;
  private vbus = 0;
  private current = 0;
  private power = 0;
  private dietemp = 0;
  private resultEndMs = -Infinity;
  // The block being averaged.
  private blockCycles = 0;
  private sumShunt = 0;
  private sumBus = 0;
  private lastShunt = 0;
  private lastBus = 0;
  private readonly gauss: () => number;

  constructor(private readonly opts: Ina228EmulatorOptions) {
    super(opts.address ?? 0x40, R);
    this.shuntOhms = opts.shuntOhms ?? CHIPS.ina228.defaults.shuntOhms;
    this.gauss = gaussian(opts.seed ?? 7);
    this.powerOn();
  }

  /** Register values and accumulators as the chip holds them (for tests). */
  peek(): { config: number; adcConfig: number; shuntCal: number; energy: number; charge: number } {
    this.advance();
    return { config: this.config, adcConfig: this.adcConfig, shuntCal: this.shuntCal, energy: this.energy, charge: this.charge };
  }

  /** Test hook: set the energy accumulator (in counts), e.g. just below 2^40 to see it wrap. */
  presetEnergy(counts: number): void {
    this.advance();
    this.energy = counts;
  }

  protected powerOn(): void {
    this.config = R.config.powerOn;
    this.adcConfig = R.adcConfig.powerOn;
    this.shuntCal = R.shuntCal.powerOn;
    this.shuntTempco = 0;
    this.diagBits = 0;
    this.energy = this.charge = 0;
    this.energyOf = this.chargeOf = this.mathOf = this.cnvrf = false;
    this.vshunt = this.vbus = this.current = this.power = this.dietemp = 0;
    this.lastShunt = this.lastBus = 0;
    this.resultEndMs = -Infinity;
    this.restart(this.opts.clock.nowMs());
  }

  private restart(nowMs: number): void {
    this.seqStartMs = nowMs + 2 * getField(this.config, INA228_CONFIG_FIELDS.convdly);
    this.cycles = 0;
    this.blockCycles = 0;
    this.sumShunt = this.sumBus = 0;
  }

  protected writeValue(ptr: number, value: number): void {
    const now = this.opts.clock.nowMs();
    this.advance(now);
    switch (ptr) {
      case R.config.ptr:
        if (getField(value, INA228_CONFIG_FIELDS.rst)) {
          this.powerOn();
          return;
        }
        if (getField(value, INA228_CONFIG_FIELDS.rstacc)) {
          this.energy = this.charge = 0;
          this.energyOf = this.chargeOf = false;
        }
        // RST and RSTACC act and are not kept.
        this.config = value & 0x3fff;
        return;
      case R.adcConfig.ptr:
        this.adcConfig = value;
        this.cnvrf = false;
        this.restart(now);
        return;
      case R.shuntCal.ptr:
        this.shuntCal = value & INA228_CAL_MASK;
        return;
      case R.shuntTempco.ptr:
        this.shuntTempco = value & 0x3fff;
        return;
      case R.diagAlrt.ptr:
        this.diagBits = value & 0xf000;
        return;
    }
  }

  protected readValue(ptr: number): number {
    const now = this.opts.clock.nowMs();
    this.advance(now);
    const shift = 2 ** INA228_FIELD_SHIFT;
    switch (ptr) {
      case R.config.ptr:
        return this.config;
      case R.adcConfig.ptr:
        return this.adcConfig;
      case R.shuntCal.ptr:
        return this.shuntCal;
      case R.shuntTempco.ptr:
        return this.shuntTempco;
      case R.vshunt.ptr:
        return this.vshunt * shift;
      case R.vbus.ptr:
        return this.vbus * shift;
      case R.dietemp.ptr:
        return this.dietemp;
      case R.current.ptr:
        return this.current * shift;
      case R.power.ptr:
        return this.power;
      case R.energy.ptr:
        this.energyOf = false;
        return Math.floor(this.energy);
      case R.charge.ptr:
        this.chargeOf = false;
        return Math.trunc(this.charge);
      case R.diagAlrt.ptr: {
        const latched = getField(this.diagBits, DIAG_ALRT_FIELDS.alatch) === 1;
        const cnvrf = latched ? this.cnvrf : now - this.resultEndMs < this.cycleMs();
        const word =
          this.diagBits |
          ((this.energyOf ? 1 : 0) << DIAG_ALRT_FIELDS.energyof.shift) |
          ((this.chargeOf ? 1 : 0) << DIAG_ALRT_FIELDS.chargeof.shift) |
          ((this.mathOf ? 1 : 0) << DIAG_ALRT_FIELDS.mathof.shift) |
          ((cnvrf ? 1 : 0) << DIAG_ALRT_FIELDS.cnvrf.shift) |
          (1 << DIAG_ALRT_FIELDS.memstat.shift);
        if (latched) this.cnvrf = this.mathOf = false;
        return word;
      }
      case R.manufacturerId.ptr:
        return R.manufacturerId.powerOn;
      case R.deviceId.ptr:
        return R.deviceId.powerOn;
      default:
        return 0;
    }
  }

  // ---- conversions -----------------------------------------------------------------------

  private mode(): number {
    return getField(this.adcConfig, INA228_ADC_CONFIG_FIELDS.mode);
  }

  private times(): { bus: number; shunt: number; temp: number } {
    const m = this.mode();
    const t = (code: number) => INA228_CONVERSION_US[code]! / 1000;
    return {
      bus: m & 1 ? t(getField(this.adcConfig, INA228_ADC_CONFIG_FIELDS.vbusct)) : 0,
      shunt: m & 2 ? t(getField(this.adcConfig, INA228_ADC_CONFIG_FIELDS.vshct)) : 0,
      temp: m & 4 ? t(getField(this.adcConfig, INA228_ADC_CONFIG_FIELDS.vtct)) : 0,
    };
  }

  private cycleMs(): number {
    const t = this.times();
    return t.bus + t.shunt + t.temp;
  }

  /** Integrates every conversion cycle completed by `nowMs`. */
  private advance(nowMs = this.opts.clock.nowMs()): void {
    const m = this.mode();
    if ((m & 7) === 0) return; // shutdown
    const t = this.times();
    const cycleMs = t.bus + t.shunt + t.temp;
    const samples = AVERAGES[getField(this.adcConfig, INA228_ADC_CONFIG_FIELDS.avg)]!;
    let target = Math.floor((nowMs - this.seqStartMs) / cycleMs);
    if (!(m & 8)) target = Math.min(target, samples); // triggered: one result, then idle
    if (target <= this.cycles) return;
    const load = this.opts.load;
    const adcRange = getField(this.config, INA228_CONFIG_FIELDS.adcrange);
    const shuntLsbV = INA228_SHUNT_LSB_V[adcRange]!;
    const noiseV = t.shunt > 0 ? ((this.opts.noiseUv ?? CHIPS.ina228.noiseUv) * Math.sqrt(1.052 / t.shunt)) / 1e6 : 0;
    const busCount = Math.min(MAX_COUNT, Math.max(0, Math.round(load.supplyV / INA228_BUS_LSB_V)));
    const cycleS = cycleMs / 1000;
    for (; this.cycles < target; this.cycles++) {
      const c0 = this.seqStartMs + this.cycles * cycleMs;
      // Shunt first, then bus (power and energy follow the bus conversion, from the latest current).
      if (t.shunt > 0) {
        const v = meanCurrentA(load, c0, c0 + t.shunt) * this.shuntOhms + noiseV * this.gauss();
        this.lastShunt = Math.max(-MAX_COUNT, Math.min(MAX_COUNT, Math.round(v / shuntLsbV)));
      }
      if (t.bus > 0) this.lastBus = busCount;
      const current = this.shuntCal === 0 ? 0 : (this.lastShunt * 4096) / this.shuntCal;
      if (Math.abs(current) > MAX_COUNT) this.mathOf = true;
      const power = (Math.abs(current) * this.lastBus) / 16384;
      this.energy += (power * cycleS) / 16;
      if (this.energy >= ACCUMULATOR_MODULUS) {
        this.energy -= ACCUMULATOR_MODULUS;
        this.energyOf = true;
      }
      this.charge += current * cycleS;
      if (this.charge >= ACCUMULATOR_MODULUS / 2 || this.charge < -ACCUMULATOR_MODULUS / 2) {
        this.charge -= Math.sign(this.charge) * ACCUMULATOR_MODULUS;
        this.chargeOf = true;
      }
      this.sumShunt += this.lastShunt;
      this.sumBus += this.lastBus;
      if (++this.blockCycles === samples) {
        this.vshunt = Math.round(this.sumShunt / samples);
        this.vbus = Math.round(this.sumBus / samples);
        const cur = this.shuntCal === 0 ? 0 : Math.round((this.vshunt * 4096) / this.shuntCal);
        this.current = Math.max(-MAX_COUNT - 1, Math.min(MAX_COUNT, cur));
        this.power = Math.min(2 ** 24 - 1, Math.round((Math.abs(this.current) * this.vbus) / 16384));
        if (t.temp > 0) this.dietemp = TEMP_25C;
        this.resultEndMs = c0 + cycleMs;
        this.cnvrf = true;
        this.blockCycles = 0;
        this.sumShunt = this.sumBus = 0;
      }
    }
  }
}
