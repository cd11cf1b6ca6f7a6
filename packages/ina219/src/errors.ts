/**
 * Typed errors: what failed, where, and what to check on the wire; errors carry their cause. They
 * name no command to run and no application's flag: a program words those from `kind` (enable
 * I2C, join the i2c group, which of its settings selects the bus).
 */

export type I2cFailure = 'missing-bus' | 'permission' | 'busy' | 'nack' | 'io' | 'timeout' | 'other';

const HINTS: Record<I2cFailure, string> = {
  'missing-bus': 'the I2C bus device does not exist',
  permission: 'no permission to open the I2C bus',
  busy: 'a kernel driver owns this address (ina2xx hwmon?): remove its dtoverlay or pick another address',
  nack: 'nothing answered at this address: check wiring (SDA GPIO2, SCL GPIO3, 3.3 V, GND), the A0/A1 address straps and the configured address; i2cdetect -y 1 lists what is on the bus',
  io: 'I2C transfer failed (electrical noise, a loose wire, or a brown-out): check wiring and power',
  timeout: 'the I2C transfer timed out: check wiring and pull-ups',
  other: 'unexpected I2C error',
};

/** Classify an errno-style error from i2c-bus (or the emulator, which throws the same codes). */
export function classifyI2cError(err: unknown): I2cFailure {
  const code = (err as { code?: string } | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'missing-bus';
    case 'EACCES':
    case 'EPERM':
      return 'permission';
    case 'EBUSY':
      return 'busy';
    case 'ENXIO':
    case 'EREMOTEIO':
      return 'nack';
    case 'EIO':
      return 'io';
    case 'ETIMEDOUT':
      return 'timeout';
    default:
      return 'other';
  }
}

/** Failures worth retrying: the chip may answer the next time. */
export function isTransient(kind: I2cFailure): boolean {
  return kind === 'nack' || kind === 'io' || kind === 'timeout';
}

export class I2cError extends Error {
  readonly kind: I2cFailure;
  constructor(
    readonly operation: string,
    readonly target: string,
    override readonly cause: unknown,
  ) {
    const kind = classifyI2cError(cause);
    const code = (cause as { code?: string } | null)?.code ?? 'unknown';
    super(`${operation} ${target} failed (${code}): ${HINTS[kind]}`);
    this.name = 'I2cError';
    this.kind = kind;
  }
}

/** A setting outside what the chip or the wiring allows. */
export class ChipSettingError extends Error {
  constructor(
    readonly chip: string,
    readonly setting: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super(`invalid ${chip} setting ${setting}=${JSON.stringify(value)}: allowed ${allowed}`);
    this.name = 'ChipSettingError';
  }
}

/** A setting outside what the INA219 or its wiring allows. */
export class Ina219SettingError extends ChipSettingError {
  constructor(setting: string, value: unknown, allowed: string) {
    super('INA219', setting, value, allowed);
    this.name = 'Ina219SettingError';
  }
}

/** The sensor stopped answering; the sampler keeps retrying and recovers by itself. */
export class SensorFault extends Error {
  constructor(
    readonly register: string,
    override readonly cause: I2cError,
    chip = 'INA219',
  ) {
    super(`${chip} ${register}: ${cause.message}`);
    this.name = 'SensorFault';
  }
}

/**
 * The chip at the address is not the one configured: its ID registers name another chip, or it
 * has none where the configured chip has them. A restart cannot fix this; the setting (or the
 * wiring) must change. `foundId` is the chip it identified as, when it is one the meter knows.
 */
export class ChipMismatchError extends Error {
  constructor(
    readonly expected: string,
    readonly address: number,
    readonly foundId: string | null,
    readonly found: string,
  ) {
    super(`the chip at I2C address 0x${address.toString(16)} is ${found}, not an ${expected}`);
    this.name = 'ChipMismatchError';
  }
}
