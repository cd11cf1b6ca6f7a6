/** One SPI message part, as spi-device takes it. */
export interface SpiPart {
  sendBuffer: Buffer;
  byteLength: number;
  speedHz?: number;
}

/** The promisified subset of spi-device's transfer: one call = one kernel message. */
export interface SpiTransfer {
  transfer(message: SpiPart[]): Promise<void>;
}

/** An output GPIO line (D/C, RESET). */
export interface GpioLine {
  set(value: 0 | 1): Promise<void> | void;
  close?(): Promise<void> | void;
}
