import {
  AVERAGES,
  INA226_CAL_MASK,
  INA226_CONFIG_FIELDS,
  INA226_CONVERSION_US,
  INA226_CURRENT_DIVISOR,
  INA226_POWER_DIVISOR,
  INA226_REGISTERS,
  INA260_POWER_DIVISOR,
  INA260_REGISTERS,
  MASK_ENABLE_FIELDS,
} from '../chips/ina226.js';
import type { ChipSpec } from '../chips/table.js';
import { meanCurrentA } from '../loads.js';
import { getField, setField } from '../registers.js';
import { RegisterEmulator, gaussian, type EmulatorBaseOptions } from './base.js';

/**
 * A register-level INA226 (SBOS547) or INA260 (SBOS656) that follows the datasheets, not the
 * driver: power-on values and RST, the read-only bits 14-12 of the configuration, averaging
 * that repeats the whole shunt-then-bus sample AVG times before the registers update, the
 * conversion times of each code, CVRF set when a result is complete and cleared by reading
 * Mask/Enable or writing the configuration, the 15-bit calibration, the chips' integer current
 * and power arithmetic with OVF, the shunt (INA226: +-81.92 mV; INA260: its 2 mohm inside)
 * clipping at full scale, and the ID registers. VBUS is wired to IN+, so the bus voltage is the
 * supply's.
 */
export interface Ina226EmulatorOptions extends EmulatorBaseOptions {
  chip: ChipSpec;
}

interface Result {
  /** Shunt register (INA226) or current register (INA260), raw count. */
  first: number;
  bus: number;
  current: number;
  power: number;
  ovf: boolean;
  endMs: number;
}

const EMPTY: Result = { first: 0, bus: 0, current: 0, power: 0, ovf: false, endMs: -Infinity };

export class Ina226Emulator extends RegisterEmulator {
  readonly chip: ChipSpec;
  readonly shuntOhms: number;
  private readonly regs: typeof INA226_REGISTERS | typeof INA260_REGISTERS;
  private readonly internal: boolean;
  private config = 0;
  private calibration = 0;
  /** Writable Mask/Enable bits (alert functions, APOL, LEN); the flags are computed. */
  private maskBits = 0;
  private alertLimit = 0;
  private seqStartMs = 0;
  /** CVRF reads clear for results that ended at or before this time. */
  private cvrfClearedAtMs = 0;
  private readonly gauss: () => number;
  private cache: { key: string; k: number; value: Result } | null = null;

  constructor(private readonly opts: Ina226EmulatorOptions) {
    if (opts.chip.id !== 'ina226' && opts.chip.id !== 'ina260') throw new RangeError(`${opts.chip.name} is not an INA226-family chip`);
    const regs = opts.chip.internalShuntOhms !== null ? INA260_REGISTERS : INA226_REGISTERS;
    super(opts.address ?? 0x40, regs);
    this.chip = opts.chip;
    this.regs = regs;
    this.internal = opts.chip.internalShuntOhms !== null;
    this.shuntOhms = opts.chip.internalShuntOhms ?? opts.shuntOhms ?? opts.chip.defaults.shuntOhms;
    this.gauss = gaussian(opts.seed ?? 7);
    this.powerOn();
  }

  /** Register values as the chip holds them (for tests). */
  peek(): { config: number; calibration: number } {
    return { config: this.config, calibration: this.calibration };
  }

  protected powerOn(): void {
    this.config = this.regs.config.powerOn;
    this.calibration = 0;
    this.maskBits = 0;
    this.alertLimit = 0;
    this.seqStartMs = this.opts.clock.nowMs();
    this.cvrfClearedAtMs = this.seqStartMs;
    this.cache = null;
  }

  protected writeValue(ptr: number, value: number): void {
    if (ptr === this.regs.config.ptr) {
      if (getField(value, INA226_CONFIG_FIELDS.rst)) {
        this.powerOn();
        return;
      }
      // Bits 14-12 are fixed at their power-on value.
      this.config = (this.regs.config.powerOn & 0x7000) | (value & 0x0fff);
      // A configuration write halts the conversion in progress and starts a new one (SBOS547 7.6.1), clearing CVRF.
      this.seqStartMs = this.opts.clock.nowMs();
      this.cvrfClearedAtMs = this.seqStartMs;
    } else if (!this.internal && ptr === INA226_REGISTERS.calibration.ptr) {
      this.calibration = value & INA226_CAL_MASK;
    } else if (ptr === this.regs.maskEnable.ptr) {
      this.maskBits = value & 0xfc03;
    } else if (ptr === this.regs.alertLimit.ptr) {
      this.alertLimit = value;
    }
  }

  protected readValue(ptr: number): number {
    const r = this.regs;
    if (ptr === r.config.ptr) return this.config;
    if (ptr === r.maskEnable.ptr) {
      const c = this.latest();
      let word = this.maskBits;
      word = setField(word, MASK_ENABLE_FIELDS.cvrf, c.endMs > this.cvrfClearedAtMs ? 1 : 0);
      word = setField(word, MASK_ENABLE_FIELDS.ovf, c.ovf ? 1 : 0);
      // Reading Mask/Enable clears CVRF.
      this.cvrfClearedAtMs = this.opts.clock.nowMs();
      return word;
    }
    if (ptr === r.alertLimit.ptr) return this.alertLimit;
    if (ptr === r.manufacturerId.ptr) return r.manufacturerId.powerOn;
    if (ptr === r.dieId.ptr) return r.dieId.powerOn;
    if (ptr === r.bus.ptr) return this.latest().bus;
    if (ptr === r.power.ptr) return this.latest().power;
    if (this.internal) {
      if (ptr === INA260_REGISTERS.current.ptr) return this.latest().first & 0xffff;
    } else {
      if (ptr === INA226_REGISTERS.shunt.ptr) return this.latest().first & 0xffff;
      if (ptr === INA226_REGISTERS.current.ptr) return this.latest().current & 0xffff;
      if (ptr === INA226_REGISTERS.calibration.ptr) return this.calibration;
    }
    return 0;
  }

  // ---- conversions -----------------------------------------------------------------------

  private timing(): { tShunt: number; tBus: number; sampleMs: number; samples: number; continuous: boolean } {
    const mode = getField(this.config, INA226_CONFIG_FIELDS.mode);
    const shuntOn = mode === 1 || mode === 3 || mode === 5 || mode === 7;
    const busOn = mode === 2 || mode === 3 || mode === 6 || mode === 7;
    const tShunt = shuntOn ? INA226_CONVERSION_US[getField(this.config, INA226_CONFIG_FIELDS.vshct)]! / 1000 : 0;
    const tBus = busOn ? INA226_CONVERSION_US[getField(this.config, INA226_CONFIG_FIELDS.vbusct)]! / 1000 : 0;
    return {
      tShunt,
      tBus,
      sampleMs: tShunt + tBus,
      samples: AVERAGES[getField(this.config, INA226_CONFIG_FIELDS.avg)]!,
      continuous: mode >= 5,
    };
  }

  /** The most recent complete result, computed from the load model on demand. */
  private latest(): Result {
    const now = this.opts.clock.nowMs();
    const t = this.timing();
    const periodMs = t.sampleMs * t.samples;
    let k: number;
    if (periodMs === 0) k = -1;
    else if (t.continuous) k = Math.floor((now - this.seqStartMs) / periodMs) - 1;
    else k = now - this.seqStartMs >= periodMs ? 0 : -1; // triggered: one result, then hold
    const key = `${this.config}:${this.calibration}:${this.seqStartMs}`;
    if (this.cache && this.cache.key === key && this.cache.k === k) return this.cache.value;
    const value = k < 0 ? EMPTY : this.convert(this.seqStartMs + k * periodMs, t);
    this.cache = { key, k, value };
    return value;
  }

  private convert(startMs: number, t: ReturnType<Ina226Emulator['timing']>): Result {
    const load = this.opts.load;
    // The delta-sigma ADC averages the signal over its conversion time: less noise when longer.
    const noiseUv = t.tShunt > 0 ? (this.opts.noiseUv ?? this.chip.noiseUv) * Math.sqrt(1.1 / t.tShunt) : 0;
    // Bus: VBUS on IN+, the supply itself (the load model's supply is stiff).
    const busRaw = t.tBus > 0 ? Math.min(0x7fff, Math.max(0, Math.round(load.supplyV / 1.25e-3))) : 0;
    let sumFirst = 0;
    let sumCurrent = 0;
    let sumPower = 0;
    let ovf = false;
    for (let i = 0; i < t.samples; i++) {
      const s0 = startMs + i * t.sampleMs;
      let first = 0;
      if (t.tShunt > 0) {
        const shuntUv = meanCurrentA(load, s0, s0 + t.tShunt) * this.shuntOhms * 1e6 + noiseUv * this.gauss();
        // 2.5 uV per count on both (the INA260's 1.25 mA is 2.5 uV across its 2 mohm).
        first = Math.max(-32767, Math.min(32767, Math.round(shuntUv / 2.5)));
      }
      let current: number;
      let power: number;
      if (this.internal) {
        current = first;
        power = Math.trunc((Math.abs(current) * busRaw) / INA260_POWER_DIVISOR);
      } else {
        current = Math.trunc((first * this.calibration) / INA226_CURRENT_DIVISOR);
        power = Math.trunc((Math.abs(current) * busRaw) / INA226_POWER_DIVISOR);
      }
      if (current > 32767 || current < -32768 || power > 0xffff) ovf = true;
      sumFirst += first;
      sumCurrent += Math.max(-32768, Math.min(32767, current));
      sumPower += Math.min(0xffff, power);
    }
    // The averaged values are what the registers show (SBOS547 7.3.1).
    const n = t.samples;
    return {
      first: Math.round(sumFirst / n),
      bus: busRaw,
      current: Math.round(sumCurrent / n),
      power: Math.round(sumPower / n),
      ovf,
      endMs: startMs + n * t.sampleMs,
    };
  }
}
