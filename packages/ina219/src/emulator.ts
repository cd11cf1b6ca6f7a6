import { RegisterEmulator, gaussian, type EmulatorBaseOptions } from './emulators/base.js';
import { meanCurrentA } from './loads.js';
import {
  BRNG_RANGE_V,
  BUS_FIELDS,
  BUS_LSB_MV,
  CONFIG_FIELDS,
  CURRENT_DIVISOR,
  MODES,
  PG_RANGE_MV,
  POWER_DIVISOR,
  REGISTERS,
  SHUNT_LSB_UV,
  adcSetting,
  getField,
  setField,
} from './registers.js';

/**
 * A register-level INA219 that follows the datasheet (SBOS448), not the driver:
 * power-on values, RST, calibration bit 0 reading 0, PG clipping, ADC quantisation, conversion
 * times per ADC setting, averaging of the true signal over each conversion, CNVR/OVF semantics
 * (CNVR clears on a power-register read or a config write) and the chip's integer current and
 * power math. It implements the same bus interface as i2c-bus, and throws the same errno codes.
 */
export type EmulatorOptions = EmulatorBaseOptions;

export type { Fault } from './emulators/base.js';

export class Ina219Emulator extends RegisterEmulator {
  readonly shuntOhms: number;
  private config: number = REGISTERS.config.powerOn;
  private calibration = 0;
  /** Start of the current conversion sequence (mode write or power-on). */
  private seqStartMs: number;
  /** CNVR is clear for conversions that completed at or before this time. */
  private cnvrClearedAtMs: number;
  private readonly gauss: () => number;

  constructor(private readonly opts: EmulatorOptions) {
    super(opts.address ?? 0x40, REGISTERS);
    this.shuntOhms = opts.shuntOhms ?? 0.1;
    this.seqStartMs = opts.clock.nowMs();
    this.cnvrClearedAtMs = this.seqStartMs;
    this.gauss = gaussian(opts.seed ?? 7);
  }

  /** Register values as the chip holds them (for tests). */
  peek(): { config: number; calibration: number } {
    return { config: this.config, calibration: this.calibration };
  }

  protected powerOn(): void {
    this.config = REGISTERS.config.powerOn;
    this.calibration = 0;
    this.seqStartMs = this.opts.clock.nowMs();
    this.cnvrClearedAtMs = this.seqStartMs;
  }

  // ---- registers -------------------------------------------------------------------------

  protected writeValue(ptr: number, value: number): void {
    if (ptr === REGISTERS.config.ptr) {
      if (getField(value, CONFIG_FIELDS.rst)) {
        this.powerOn();
        return;
      }
      this.config = value & 0x7fff;
      // Writing the mode starts a new conversion sequence and clears CNVR.
      this.seqStartMs = this.opts.clock.nowMs();
      this.cnvrClearedAtMs = this.seqStartMs;
    } else if (ptr === REGISTERS.calibration.ptr) {
      this.calibration = value & 0xfffe; // bit 0 is not implemented and reads 0
    }
  }

  protected readValue(ptr: number): number {
    switch (ptr) {
      case REGISTERS.config.ptr:
        return this.config;
      case REGISTERS.calibration.ptr:
        return this.calibration;
      case REGISTERS.shunt.ptr:
        return this.latest().shuntRaw & 0xffff;
      case REGISTERS.bus.ptr: {
        const c = this.latest();
        let word = setField(0, BUS_FIELDS.value, c.busRaw);
        word = setField(word, BUS_FIELDS.cnvr, c.endMs > this.cnvrClearedAtMs ? 1 : 0);
        word = setField(word, BUS_FIELDS.ovf, c.ovf ? 1 : 0);
        return word;
      }
      case REGISTERS.current.ptr:
        return this.latest().currentRaw & 0xffff;
      case REGISTERS.power.ptr: {
        const c = this.latest();
        this.cnvrClearedAtMs = this.opts.clock.nowMs();
        return c.powerRaw;
      }
      default:
        return 0;
    }
  }

  // ---- conversions -----------------------------------------------------------------------

  private cache: { config: number; calibration: number; seqStartMs: number; k: number; value: Conversion } | null = null;

  private timing: {
    config: number;
    tShunt: number;
    tBus: number;
    cycleMs: number;
    continuous: boolean;
    samples: number;
    bits: number;
  } | null = null;

  /** Conversion timing of the current configuration (decoded once per configuration written). */
  private conversionTiming(): NonNullable<Ina219Emulator['timing']> {
    if (this.timing?.config === this.config) return this.timing;
    const mode = getField(this.config, CONFIG_FIELDS.mode);
    const shuntAdc = adcSetting(getField(this.config, CONFIG_FIELDS.sadc));
    const busAdc = adcSetting(getField(this.config, CONFIG_FIELDS.badc));
    const shuntOn =
      mode === MODES.bothContinuous || mode === MODES.shuntContinuous || mode === MODES.bothTriggered || mode === MODES.shuntTriggered;
    const busOn =
      mode === MODES.bothContinuous || mode === MODES.busContinuous || mode === MODES.bothTriggered || mode === MODES.busTriggered;
    const tShunt = shuntOn ? shuntAdc.conversionUs / 1000 : 0;
    const tBus = busOn ? busAdc.conversionUs / 1000 : 0;
    this.timing = {
      config: this.config,
      tShunt,
      tBus,
      cycleMs: tShunt + tBus,
      continuous: mode >= MODES.shuntContinuous,
      samples: shuntAdc.samples,
      bits: shuntAdc.bits,
    };
    return this.timing;
  }

  /** The most recently completed conversion, computed from the load model on demand. */
  private latest(): Conversion {
    const now = this.opts.clock.nowMs();
    const { tShunt, tBus, cycleMs, continuous, samples, bits } = this.conversionTiming();
    let k: number; // index of the last completed cycle (0-based), -1 if none
    if (cycleMs === 0) k = -1;
    else if (continuous) k = Math.floor((now - this.seqStartMs) / cycleMs) - 1;
    else k = now - this.seqStartMs >= cycleMs ? 0 : -1; // triggered: one conversion, then hold
    const c = this.cache;
    if (c && c.k === k && c.config === this.config && c.calibration === this.calibration && c.seqStartMs === this.seqStartMs)
      return c.value;
    let value: Conversion;
    if (k < 0) {
      value = { shuntRaw: 0, busRaw: 0, currentRaw: 0, powerRaw: 0, ovf: false, endMs: -Infinity };
    } else {
      const start = this.seqStartMs + k * cycleMs;
      value = this.convert(start, tShunt, tBus, samples, bits);
    }
    this.cache = { config: this.config, calibration: this.calibration, seqStartMs: this.seqStartMs, k, value };
    return value;
  }

  private convert(startMs: number, tShunt: number, tBus: number, samples: number, bits: number): Conversion {
    const load = this.opts.load;
    const pgMv = PG_RANGE_MV[getField(this.config, CONFIG_FIELDS.pg)]!;
    const brngV = BRNG_RANGE_V[getField(this.config, CONFIG_FIELDS.brng)]!;
    // Shunt: the true mean over the conversion time (the ADC averages the signal), plus noise.
    const iShunt = meanCurrentA(load, startMs, startMs + tShunt);
    const noiseUv = ((this.opts.noiseUv ?? 20) / Math.sqrt(samples)) * this.gauss();
    const shuntUv = iShunt * this.shuntOhms * 1e6 + noiseUv;
    // Fewer bits than 12 quantise more coarsely; the register LSB stays 10 uV.
    const stepUv = SHUNT_LSB_UV * 2 ** (12 - bits);
    let shuntRaw = Math.round(shuntUv / stepUv) * (stepUv / SHUNT_LSB_UV);
    const limit = (pgMv * 1000) / SHUNT_LSB_UV;
    let ovf = false;
    if (shuntRaw > limit || shuntRaw < -limit) {
      shuntRaw = Math.sign(shuntRaw) * limit; // clips at the PG range
      ovf = true;
    }
    // Bus (IN- to GND): supply minus the shunt drop, averaged over the bus conversion.
    const iBus = meanCurrentA(load, startMs + tShunt, startMs + tShunt + tBus);
    const busV = Math.max(0, load.supplyV - iBus * this.shuntOhms);
    const busRaw = Math.min(Math.round((Math.min(busV, brngV) * 1000) / BUS_LSB_MV), 0x1fff);
    // The chip's integer math (datasheet 8.5.1): current = shunt * cal / 4096; power = current * bus / 5000.
    const currentRaw = Math.trunc((shuntRaw * this.calibration) / CURRENT_DIVISOR);
    const powerRaw = Math.trunc((Math.abs(currentRaw) * busRaw) / POWER_DIVISOR);
    if (currentRaw > 32767 || currentRaw < -32768 || powerRaw > 0xffff) ovf = true;
    return {
      shuntRaw,
      busRaw,
      currentRaw: Math.max(-32768, Math.min(32767, currentRaw)),
      powerRaw: Math.min(powerRaw, 0xffff),
      ovf,
      endMs: startMs + tShunt + tBus,
    };
  }
}

interface Conversion {
  shuntRaw: number;
  busRaw: number;
  currentRaw: number;
  powerRaw: number;
  ovf: boolean;
  endMs: number;
}
