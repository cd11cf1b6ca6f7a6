import { I2cError, SensorFault } from '@power-meter/ina219';
import { type IdentityError, OutboxLockedError, type OutboxTooNewError, type PublishSetting } from '@power-meter/w3bstream';

/** The service's environment file (install.sh): where advice sends the user for tokens and passwords. */
export const ENV_FILE = '/etc/power-meter/power-meter.env';

/**
 * The application's half of a sensor error: the ina219 library says what failed (and what to
 * check on the wire); this program words the system fix (the commands to run) and which of its
 * settings selects the bus and address. Empty when nothing can help.
 */
export function sensorErrorHint(err: unknown): string {
  return `${sensorSystemFix(err)}${sensorSettingHint(err)}`;
}

/** The bus error the sensor error carries, if any. */
function i2cErrorOf(err: unknown): I2cError | null {
  const i2c = err instanceof SensorFault ? err.cause : err;
  return i2c instanceof I2cError ? i2c : null;
}

/** The system half of the hint (no flag: state.json and the screen show it too). */
export function sensorSystemFix(err: unknown): string {
  const kind = i2cErrorOf(err)?.kind;
  if (kind === 'missing-bus')
    return ': enable I2C (sudo raspi-config nonint do_i2c 0, or dtparam=i2c_arm=on in /boot/firmware/config.txt) and reboot, or choose the bus the sensor is on';
  if (kind === 'permission') return ': add the user to the i2c group (sudo adduser $USER i2c) and log in again';
  return '';
}

/** The settings half: which of this program's settings selects the bus or the address (for the log). */
export function sensorSettingHint(err: unknown): string {
  const kind = i2cErrorOf(err)?.kind;
  if (kind === 'missing-bus') return ' (the bus is set with --i2c-bus / i2cBus)';
  if (kind === 'nack') return ' (the address is set with --i2c-address / i2cAddress)';
  return '';
}

/** This program's flags for the publishing settings the w3bstream library names in its advice. */
const SETTING_WORDS: Record<PublishSetting, string> = {
  projectId: '--project-id',
  projectVersion: '--project-version',
  publishUrl: '--publish-url',
  eventType: '--event-type',
  signingKey: 'power-meter identity shows the key',
};

/** Appended to the publisher's advice that names settings (Publisher `settingHint`), e.g. ` (--project-id)`. */
export function publishSettingHint(settings: readonly PublishSetting[]): string {
  return settings.length === 0 ? '' : ` (${settings.map((s) => SETTING_WORDS[s]).join(', ')})`;
}

/**
 * The outbox errors in this program's words: the library says the file is held or too new; only
 * the program knows it is the meter's service holding it, and which command shows it.
 */
export function outboxErrorText(err: OutboxLockedError | OutboxTooNewError): string {
  if (err instanceof OutboxLockedError)
    return `outbox ${err.file} is in use by another process: another power-meter is already running on this data directory (systemctl status power-meter); stop it first`;
  return `outbox ${err.file} was written by a newer release of power-meter (${err.detail}): install that release again; this one does not change the file`;
}

/** An identity error with how this program creates a missing identity. */
export function identityErrorText(err: IdentityError): string {
  return err.kind === 'missing' ? `${err.message}: start the meter once or run "power-meter identity" to create it` : err.message;
}
