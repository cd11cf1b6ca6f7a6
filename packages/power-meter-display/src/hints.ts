import { DeviceOpenError, GpioError, St7735Error } from '@power-meter/st7735';

/**
 * What to do about a device the st7735 library could not open: the library states the fact and
 * its kind; the program words the fix (the system commands for this Raspberry Pi OS set-up).
 */
function systemHint(err: DeviceOpenError): string {
  const gpio = err instanceof GpioError;
  switch (err.kind) {
    case 'missing':
      return gpio ? '' : ': enable SPI (sudo raspi-config nonint do_spi 0, or dtparam=spi=on in /boot/firmware/config.txt) and reboot';
    case 'permission':
      return `: add the user to the ${gpio ? 'gpio' : 'spi'} group (sudo adduser $USER ${gpio ? 'gpio' : 'spi'}) and log in again`;
    case 'tool-missing':
      return gpio ? ': install the libgpiod tools (sudo apt install gpiod)' : '';
    case 'not-a-pi':
      return gpio ? '; the gpioset backend needs the libgpiod tools (sudo apt install gpiod)' : '';
    default:
      return '';
  }
}

/**
 * The application's half of an error from the st7735 library: the library says what failed;
 * only the program says how to fix the system and which of its settings to change, so the
 * commands and flag names are added here. Empty when nothing can help.
 */
export function panelErrorHint(err: unknown): string {
  if (err instanceof DeviceOpenError) {
    const system = systemHint(err);
    switch (err.kind) {
      case 'missing':
      case 'not-a-pi':
        return `${system}; on a machine without the panel, use --panel png`;
      case 'bad-pin':
      case 'busy':
        return `${system}; the pins are set with --dc-pin and --reset-pin (BCM numbers)`;
      default:
        return system;
    }
  }
  if (err instanceof St7735Error) {
    if (err.kind === 'geometry') return '; the offsets are set with --col-offset and --row-offset, the module with --variant';
    if (err.kind === 'rotation') return '; see --rotation';
  }
  return '';
}
