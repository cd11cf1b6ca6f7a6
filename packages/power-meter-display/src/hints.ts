import { DeviceOpenError, St7735Error } from '@power-meter/st7735';

/**
 * The application's half of an error from the st7735 library: the library says what failed
 * and how to fix the system (enable SPI, join a group); only the program knows which of its
 * settings to change, so the flag names are added here. Empty when no setting can help.
 */
export function panelErrorHint(err: unknown): string {
  if (err instanceof DeviceOpenError) {
    switch (err.kind) {
      case 'missing':
      case 'not-a-pi':
        return '; on a machine without the panel, use --panel png';
      case 'bad-pin':
      case 'busy':
        return '; the pins are set with --dc-pin and --reset-pin (BCM numbers)';
      default:
        return '';
    }
  }
  if (err instanceof St7735Error) {
    if (err.kind === 'geometry') return '; the offsets are set with --col-offset and --row-offset, the module with --variant';
    if (err.kind === 'rotation') return '; see --rotation';
  }
  return '';
}
