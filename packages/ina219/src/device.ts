import type { I2cBus } from './bus.js';
import type { ChipSpec } from './chips/table.js';
import { realSleep, type Sleep } from './clock.js';
import { I2cError, isTransient } from './errors.js';
import type { Log } from './log.js';
import { decodeRegister, type RegisterSpec } from './registers.js';

/**
 * What every chip driver gives the samplers: one (possibly averaged) result at a time, read
 * once, with the time it covers. The INA219, INA226 and INA260 are read this way; the INA228
 * also offers its energy accumulator (AccumulatorDriver).
 */
export interface Reading {
  /** A new result was complete when it was read (CNVR / CVRF / CNVRF). */
  ready: boolean;
  busV: number;
  /** Computed from the shunt voltage in software where the chip has one (immune to a lost calibration). */
  currentA: number;
  /** Power drawn from the supply. */
  powerW: number;
  /** The shunt clipped or the chip flagged a math overflow: the numbers are not valid. */
  outOfRange: boolean;
  /** The automatic range stepped up during this read (INA219): the reading is discarded. */
  rangeChanged: boolean;
  /** Shunt voltage where the chip measures one, microvolts. */
  shuntUv?: number;
}

export interface ConversionDriver {
  readonly chip: ChipSpec;
  readonly address: number;
  /** Time between two results, ms: one conversion cycle, or the averaging block. */
  readonly cycleMs: number;
  /** Share of each cycle the shunt ADC integrates the current (0..1). */
  readonly observedShare: number;
  /** Chip resets detected since start. */
  resets: number;
  /** Checks the chip is the one configured, resets it, writes the meter's settings. */
  init(): Promise<void>;
  /** True if the chip lost its settings (read back); re-applies them before returning. */
  checkReset(): Promise<boolean>;
  read(): Promise<Reading>;
}

/** A chip that integrates energy itself (INA228): the energy sampler reads it once per window. */
export interface AccumulatorDriver extends ConversionDriver {
  readonly accumulator: {
    /** One conversion cycle (shunt + bus): the accumulator's step, ms. */
    cycleMs: number;
    /** Joules per count of the energy register, as the chip computes it with the calibration written. */
    energyLsbJ: number;
    /** The register wraps modulo this (2^40). */
    modulus: number;
    /**
     * More power than the chip can report with these settings (full-scale bus voltage times
     * full-scale current, doubled): a count implying more is not energy, the register was cleared.
     */
    maxPowerW: number;
  };
  /** The energy register's raw count. */
  readEnergy(): Promise<number>;
  /** Reads the configuration back: false when the chip lost it (a reset), without re-applying. */
  configIntact(): Promise<boolean>;
}

export function isAccumulatorDriver(d: ConversionDriver): d is AccumulatorDriver {
  return (d as Partial<AccumulatorDriver>).accumulator !== undefined;
}

export interface DriverOptions {
  sleep?: Sleep;
  /** Attempts for a transient error (EIO, NACK) before it is reported. */
  attempts?: number;
  log?: Log;
}

/**
 * Register reads and writes of any width with the retry policy of every driver: transient errors
 * (EIO, NACK, timeout) are retried with backoff 2, 4, 8 ms, then reported as a typed I2cError.
 */
export class RegisterIo {
  private readonly bufs = new Map<number, Buffer>();
  private readonly sleep: Sleep;

  constructor(
    private readonly bus: I2cBus,
    readonly address: number,
    /** "INA228 at 0x40", for messages. */
    readonly target: string,
    private readonly opts: DriverOptions = {},
  ) {
    this.sleep = opts.sleep ?? realSleep;
  }

  /** The same registers without retries: for probing where a NACK is an answer, not a fault. */
  once(): RegisterIo {
    return new RegisterIo(this.bus, this.address, this.target, { ...this.opts, attempts: 1 });
  }

  private buf(bytes: number): Buffer {
    let b = this.bufs.get(bytes);
    if (b === undefined) {
      b = Buffer.alloc(bytes);
      this.bufs.set(bytes, b);
    }
    return b;
  }

  async read(spec: RegisterSpec): Promise<number> {
    const buf = this.buf(spec.bytes);
    try {
      await this.bus.readI2cBlock(this.address, spec.ptr, spec.bytes, buf);
    } catch (err) {
      await this.retry(
        `read ${spec.name} register (0x${hex2(spec.ptr)})`,
        () => this.bus.readI2cBlock(this.address, spec.ptr, spec.bytes, buf),
        {
          error: err,
        },
      );
    }
    return decodeRegister(spec, buf);
  }

  /** 16-bit registers only: every writable register of these chips is 16 bits wide. */
  async write(spec: RegisterSpec, value: number): Promise<void> {
    await this.retry(`write ${spec.name} register (0x${hex2(spec.ptr)})`, async () => {
      await this.bus.writeI2cBlock(this.address, spec.ptr, 2, Buffer.from([(value >> 8) & 0xff, value & 0xff]));
    });
  }

  private async retry<T>(operation: string, fn: () => Promise<T>, first?: { error: unknown }): Promise<T> {
    const attempts = this.opts.attempts ?? 4;
    for (let i = 1; ; i++) {
      try {
        if (i === 1 && first !== undefined) throw first.error;
        return await fn();
      } catch (err) {
        const e = err instanceof I2cError ? err : new I2cError(operation, this.target, err);
        if (!isTransient(e.kind) || i >= attempts) throw e;
        await this.sleep(2 ** i);
      }
    }
  }
}

export function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
