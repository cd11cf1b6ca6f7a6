import type { SpiPart, SpiTransfer } from './interfaces.js';

/**
 * What went wrong opening or driving a device node, so an application can word the advice (the
 * system commands to run, which of its settings to change) without parsing the message; the
 * message states the fact and names no command: `missing` (no such device or
 * chip), `not-a-pi`, `permission`, `busy`, `bad-pin`, `tool-missing` (gpioset, spi-device),
 * `message-size`, `timeout`, `other`.
 */
export type DeviceFailure =
  | 'missing'
  | 'not-a-pi'
  | 'permission'
  | 'busy'
  | 'bad-pin'
  | 'tool-missing'
  | 'message-size'
  | 'timeout'
  | 'other';

export class DeviceOpenError extends Error {
  constructor(
    message: string,
    readonly kind: DeviceFailure = 'other',
  ) {
    super(message);
    this.name = 'DeviceOpenError';
  }
}

/** A failed open of /dev/spidevB.D, turned into what to do about it. */
export function spiOpenError(code: string, path: string, message = code): DeviceOpenError {
  if (code === 'ENOENT') return new DeviceOpenError(`${path} does not exist`, 'missing');
  if (code === 'EACCES' || code === 'EPERM') return new DeviceOpenError(`no permission to open ${path}`, 'permission');
  if (code === 'EBUSY')
    return new DeviceOpenError(
      `${path} is busy: a kernel display driver (an st7735r/fbtft dtoverlay) may own the bus; remove it from /boot/firmware/config.txt`,
      'busy',
    );
  return new DeviceOpenError(`cannot open ${path}: ${message}`);
}

/** Opens /dev/spidev<bus>.<device> with spi-device (loaded lazily: simulation never needs it). */
export async function openSpi(bus: number, device: number, maxSpeedHz: number): Promise<SpiTransfer & { close(): Promise<void> }> {
  const path = `/dev/spidev${bus}.${device}`;
  let spi: typeof import('spi-device');
  try {
    // A CommonJS addon: its functions live on the default export when imported from ESM.
    const mod = (await import('spi-device')) as typeof import('spi-device') & { default?: typeof import('spi-device') };
    spi = mod.default ?? mod;
  } catch (err) {
    throw new DeviceOpenError(
      `the spi-device module could not be loaded (${String(err)}): run ./install-requirements.sh on the device`,
      'tool-missing',
    );
  }
  const dev = await new Promise<import('spi-device').SpiDevice>((resolve, reject) => {
    const d = spi.open(bus, device, { mode: 0, maxSpeedHz }, (err) => (err ? reject(err) : resolve(d)));
  }).catch((err: NodeJS.ErrnoException) => {
    throw spiOpenError(err.code ?? '', path, err.message);
  });
  return {
    transfer: (message: SpiPart[]) =>
      new Promise<void>((resolve, reject) =>
        dev.transfer(message, (err) => {
          if (!err) return resolve();
          const e = err as NodeJS.ErrnoException;
          reject(
            e.code === 'EMSGSIZE'
              ? new DeviceOpenError(
                  `SPI message too large for spidev (${e.message}): keep messages <= 4096 bytes or raise spidev.bufsiz`,
                  'message-size',
                )
              : e,
          );
        }),
      ),
    close: () => new Promise<void>((resolve) => dev.close(() => resolve())),
  };
}
