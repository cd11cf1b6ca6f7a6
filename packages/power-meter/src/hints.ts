import { I2cError, SensorFault } from '@power-meter/ina219';

/** The service's environment file (install.sh): where advice sends the user for tokens and passwords. */
export const ENV_FILE = '/etc/power-meter/power-meter.env';

/**
 * The application's half of a sensor error: the ina219 library says what failed and how to
 * fix the system; only this program knows which of its settings selects the bus and address.
 * Empty when no setting can help.
 */
export function sensorErrorHint(err: unknown): string {
  const i2c = err instanceof SensorFault ? err.cause : err;
  if (!(i2c instanceof I2cError)) return '';
  if (i2c.kind === 'missing-bus') return ' (the bus is set with --i2c-bus / i2cBus)';
  if (i2c.kind === 'nack') return ' (the address is set with --i2c-address / i2cAddress)';
  return '';
}
