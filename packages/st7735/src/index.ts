export {
  CMD,
  MADCTL,
  MEMORY,
  MODULE_VARIANTS,
  VARIANTS,
  ROTATION_MADCTL,
  INIT_SEQUENCE,
  GAMMA,
  MAX_MESSAGE_BYTES,
  MAX_COMMAND_HZ,
  COLMOD_16BIT,
  centredMemory,
  isLandscape,
} from './protocol.js';
export type { ModuleVariant, Rotation, VariantSpec } from './protocol.js';
export type { SpiTransfer, SpiPart, GpioLine } from './interfaces.js';
export { rgbaToRgb565be, rgb565ToRgb } from './convert.js';
export type { Rect, PixelOrder } from './convert.js';
export { St7735, St7735Error } from './driver.js';
export type { St7735Options, St7735ErrorKind } from './driver.js';
export { EmulatedSt7735, ProtocolError } from './emulator.js';
export type { EmulatorStats, GlassOptions, GlassSpec } from './emulator.js';
export { openSpi, spiOpenError, DeviceOpenError } from './spi.js';
export type { DeviceFailure } from './spi.js';
export {
  openGpioLine,
  listGpioChips,
  listCharChips,
  parseGpiodetect,
  headerChip,
  sysfsNumber,
  sysfsExportError,
  parseLibgpiodVersion,
  gpiosetMode,
  gpiosetArgs,
  parseGetReply,
  GpioError,
} from './gpio.js';
export type { GpioChipInfo, GpioBackend, GpioLineOptions, GpiosetMode } from './gpio.js';
export { openModule } from './module.js';
export type { St7735Module, ModuleOptions, ModuleSettings } from './module.js';
