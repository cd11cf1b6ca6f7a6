import { I2cError, SensorFault } from '@power-meter/ina219';
import { IdentityCorruptError, IdentityMissingError, OutboxLockedError, OutboxTooNewError } from '@power-meter/w3bstream';
import { describe, expect, it } from 'vitest';
import {
  identityErrorText,
  outboxErrorText,
  publishSettingHint,
  sensorErrorHint,
  sensorSettingHint,
  sensorSystemFix,
} from '../src/hints.js';

/** An I2cError as the bus reports it (errno code on the cause). */
const i2c = (code: string) => new I2cError('read config', 'INA219 at 0x40', Object.assign(new Error(code), { code }));

describe("power-meter's words for what the libraries report (issue 25: the libraries name no flag, command or program)", () => {
  it('sensor errors: the system fix and the setting, by the I2C failure kind', () => {
    const missing = i2c('ENOENT');
    expect(missing.message).toBe('read config INA219 at 0x40 failed (ENOENT): the I2C bus device does not exist');
    expect(`${missing.message}${sensorErrorHint(missing)}`).toBe(
      'read config INA219 at 0x40 failed (ENOENT): the I2C bus device does not exist: enable I2C (sudo raspi-config nonint do_i2c 0, or dtparam=i2c_arm=on in /boot/firmware/config.txt) and reboot, or choose the bus the sensor is on (the bus is set with --i2c-bus / i2cBus)',
    );
    expect(sensorErrorHint(new SensorFault('config', i2c('EACCES')))).toBe(
      ': add the user to the i2c group (sudo adduser $USER i2c) and log in again',
    );
    expect(sensorErrorHint(i2c('ENXIO'))).toBe(' (the address is set with --i2c-address / i2cAddress)');
    expect(sensorErrorHint(i2c('EIO'))).toBe('');
    expect(sensorErrorHint(new Error('not a bus error'))).toBe('');
    // The system half goes into state.json (the screen) too, so it names no flag; the log gets both.
    expect(sensorSystemFix(missing)).toMatch(/^: enable I2C .*or choose the bus the sensor is on$/);
    expect(sensorSettingHint(missing)).toBe(' (the bus is set with --i2c-bus / i2cBus)');
    expect(sensorErrorHint(missing)).toBe(`${sensorSystemFix(missing)}${sensorSettingHint(missing)}`);
  });

  it('publish advice: this program flags for the settings a verdict names', () => {
    expect(publishSettingHint(['projectId'])).toBe(' (--project-id)');
    expect(publishSettingHint(['projectId', 'projectVersion', 'publishUrl'])).toBe(' (--project-id, --project-version, --publish-url)');
    expect(publishSettingHint(['eventType'])).toBe(' (--event-type)');
    expect(publishSettingHint(['signingKey'])).toBe(' (power-meter identity shows the key)');
    expect(publishSettingHint([])).toBe('');
  });

  it('outbox and identity errors: the service, the command that shows it, how to create an identity', () => {
    expect(outboxErrorText(new OutboxLockedError('/d/outbox.sqlite'))).toBe(
      'outbox /d/outbox.sqlite is in use by another process: another power-meter is already running on this data directory (systemctl status power-meter); stop it first',
    );
    expect(outboxErrorText(new OutboxTooNewError('/d/outbox.sqlite', 'schema version 99'))).toBe(
      'outbox /d/outbox.sqlite was written by a newer release of power-meter (schema version 99): install that release again; this one does not change the file',
    );
    expect(identityErrorText(new IdentityMissingError('/d/identity/device-key.pem'))).toBe(
      'no device identity at /d/identity/device-key.pem: start the meter once or run "power-meter identity" to create it',
    );
    const corrupt = new IdentityCorruptError('/d/identity/device-key.pem', 'not a PEM private key');
    expect(identityErrorText(corrupt)).toBe(corrupt.message);
  });
});
