import type { I2cBus } from '../bus.js';
import type { MonotonicClock } from '../clock.js';
import { mulberry32, type LoadModel } from '../loads.js';
import { encodeRegister, registerByPtr, type RegisterMap, type RegisterSpec } from '../registers.js';

/**
 * What every emulated chip shares: the same bus interface as i2c-bus (block reads of the
 * register's width, most significant byte first; 16-bit writes), the errno codes of the Linux
 * I2C stack (ENXIO for an absent address, EREMOTEIO for a NACK, EIO), fault injection, unplug
 * and replug, and a brown-out. What a register holds is each chip's own (readValue/writeValue).
 */
export type Fault = 'nack' | 'eio';

/** What every emulated chip is given: its time, the load it measures, where it answers, its noise. */
export interface EmulatorBaseOptions {
  clock: MonotonicClock;
  load: LoadModel;
  address?: number;
  /** The board's shunt (the INA260's is inside the chip: its table row). */
  shuntOhms?: number;
  /**
   * Gaussian noise of one shunt conversion, microvolts, at each chip's reference conversion: one
   * raw sample (INA219), 1.1 ms (INA226, INA260), 1.052 ms (INA228); longer conversions and the
   * chip's averaging reduce it by the square root of the samples.
   */
  noiseUv?: number;
  seed?: number;
}

export function errnoError(code: string, errno: number, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code, errno });
}

/** Box-Muller normal noise from the seeded PRNG, so a seeded run replays exactly. */
export function gaussian(seed: number): () => number {
  const rand = mulberry32(seed);
  return () => {
    const u = 1 - rand();
    const v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

/** Unknown register pointers read as this 16-bit zero. */
const UNKNOWN: RegisterSpec = { ptr: -1, name: 'unknown', access: 'r', bytes: 2, powerOn: 0, signed: false };

export abstract class RegisterEmulator implements I2cBus {
  private plugged = true;
  private faults: Fault[] = [];
  private readonly scratch = Buffer.alloc(8);
  /** Transactions served, for tests and benchmarks. */
  transactions = 0;

  constructor(
    readonly address: number,
    private readonly map: RegisterMap,
  ) {}

  /** Every register back to its power-on value (RST, brown-out, replug). */
  protected abstract powerOn(): void;
  /** The value a read of this register returns now (it may clear flags, as the chip does). */
  protected abstract readValue(ptr: number): number;
  /** A write the chip accepts (only writable registers reach here). */
  protected abstract writeValue(ptr: number, value: number): void;

  /** The next `count` transactions fail with this fault (NACK = EREMOTEIO, EIO). */
  injectFault(fault: Fault, count = 1): void {
    for (let i = 0; i < count; i++) this.faults.push(fault);
  }
  /** A brown-out: every register returns to its power-on value. */
  spontaneousReset(): void {
    this.powerOn();
  }
  unplug(): void {
    this.plugged = false;
  }
  replug(): void {
    this.plugged = true;
    this.powerOn();
  }

  async readI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesRead: number; buffer: Buffer }> {
    this.transaction(address);
    const spec = registerByPtr(command, this.map) ?? UNKNOWN;
    const value = this.readValue(command);
    const n = Math.min(length, spec.bytes);
    if (spec.bytes === 2) {
      // The usual case (every 16-bit register of every chip): no intermediate buffer.
      if (n >= 1) buffer[0] = (value >> 8) & 0xff;
      if (n >= 2) buffer[1] = value & 0xff;
    } else {
      encodeRegister(spec, value, this.scratch);
      this.scratch.copy(buffer, 0, 0, n);
    }
    return { bytesRead: n, buffer };
  }

  async writeI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesWritten: number; buffer: Buffer }> {
    this.transaction(address);
    // Writes to read-only or unknown registers are ignored by the chips.
    if (length >= 2 && registerByPtr(command, this.map)?.access === 'rw') this.writeValue(command, buffer.readUInt16BE(0));
    return { bytesWritten: length, buffer };
  }

  private transaction(address: number): void {
    this.transactions++;
    if (!this.plugged || address !== this.address) throw errnoError('ENXIO', -6, `no device answered at 0x${address.toString(16)}`);
    const fault = this.faults.shift();
    if (fault === 'nack') throw errnoError('EREMOTEIO', -121, 'Remote I/O error');
    if (fault === 'eio') throw errnoError('EIO', -5, 'i/o error');
  }
}
