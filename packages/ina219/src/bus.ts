import { I2cError } from './errors.js';

/**
 * The slice of i2c-bus's PromisifiedBus the driver needs. i2c-bus satisfies it as is; so does
 * the emulator. Block reads are used because SMBus read-word is little-endian and the INA219
 * sends the most significant byte first.
 */
export interface I2cBus {
  readI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesRead: number; buffer: Buffer }>;
  writeI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesWritten: number; buffer: Buffer }>;
}

export interface ClosableI2cBus extends I2cBus {
  close(): Promise<void>;
}

/** Opens `/dev/i2c-<busNumber>` with i2c-bus, loaded lazily so simulation never needs the addon. */
export async function openI2cBus(busNumber: number): Promise<ClosableI2cBus> {
  const target = `/dev/i2c-${busNumber}`;
  let mod: typeof import('i2c-bus');
  try {
    // A CommonJS addon: its functions live on the default export when imported from ESM.
    const m = (await import('i2c-bus')) as typeof import('i2c-bus') & { default?: typeof import('i2c-bus') };
    mod = m.default ?? m;
  } catch (err) {
    throw new Error(`the i2c-bus module could not be loaded (${String(err)}): run npm ci on the device (./install-requirements.sh)`);
  }
  try {
    return await mod.openPromisified(busNumber);
  } catch (err) {
    throw new I2cError('open', target, err);
  }
}
