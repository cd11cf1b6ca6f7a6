import { LOG_LEVELS, parseLogLevel, parsers, type LogLevel, type SettingSpec } from '@power-meter/service';
import { MODULE_VARIANTS, type ModuleVariant } from '@power-meter/st7735';
import { DEFAULT_FONT_DIR } from './screen/fonts.js';

/**
 * Every display setting, once: flag, environment variable, config key (inside the config file's
 * `display` object), default. The data directory shares POWER_METER_DATA_DIR with the backend.
 */

const s = <T>(spec: SettingSpec<T>): SettingSpec<T> => spec;

export const DISPLAY_SETTINGS = {
  dataDir: s({
    flag: 'data-dir',
    env: 'POWER_METER_DATA_DIR',
    default: '/home/pi/data/power-meter',
    describe: 'data directory the backend writes',
    parse: parsers.nonEmptyString,
    allowed: 'a directory path',
  }),
  panel: s({
    flag: 'panel',
    env: 'POWER_METER_DISPLAY_PANEL',
    default: 'st7735' as 'st7735' | 'png' | 'emulated',
    describe:
      'st7735 (the TFT over SPI), png (emulated panel saved as a PNG file) or emulated (the same driver and panel emulator with nothing saved: benchmarks, trying settings)',
    parse: parsers.oneOf(['st7735', 'png', 'emulated'] as const),
    allowed: 'st7735, png or emulated',
  }),
  png: s({
    flag: 'png',
    env: 'POWER_METER_DISPLAY_PNG',
    default: 'screen.png',
    describe:
      "where the png panel writes the current screen; a relative path is in the unit's state directory (/var/lib/power-meter-display) under systemd, else in the working directory",
    parse: parsers.nonEmptyString,
    allowed: 'a file path',
  }),
  spiBus: s({
    flag: 'spi-bus',
    env: 'POWER_METER_DISPLAY_SPI_BUS',
    default: 0,
    describe: 'SPI bus (/dev/spidevB.D)',
    parse: parsers.integer(0, 6),
    allowed: 'an integer 0-6',
  }),
  spiDevice: s({
    flag: 'spi-device',
    env: 'POWER_METER_DISPLAY_SPI_DEVICE',
    default: 0,
    describe: 'SPI chip select (CE0 = 0)',
    parse: parsers.integer(0, 3),
    allowed: 'an integer 0-3',
  }),
  dcPin: s({
    flag: 'dc-pin',
    env: 'POWER_METER_DISPLAY_DC_PIN',
    default: 25,
    describe: 'BCM GPIO number of the D/C line',
    parse: parsers.integer(0, 53),
    allowed: 'a BCM GPIO number 0-53',
  }),
  resetPin: s({
    flag: 'reset-pin',
    env: 'POWER_METER_DISPLAY_RESET_PIN',
    default: 24,
    describe: 'BCM GPIO number of the RESET line',
    parse: parsers.integer(0, 53),
    allowed: 'a BCM GPIO number 0-53',
  }),
  speedHz: s({
    flag: 'speed-hz',
    env: 'POWER_METER_DISPLAY_SPEED_HZ',
    default: 24_000_000,
    describe: 'SPI clock for pixel data, Hz (commands always <= 10 MHz)',
    parse: parsers.integer(1_000_000, 62_500_000),
    allowed: 'an integer 1000000-62500000',
  }),
  rotation: s({
    flag: 'rotation',
    env: 'POWER_METER_DISPLAY_ROTATION',
    default: 90 as 0 | 90 | 180 | 270,
    describe: 'panel rotation in degrees: 90/270 landscape 160x128, 0/180 portrait (the original used 0)',
    parse: (raw) => {
      const n = parsers.integer(0, 270)(raw);
      if (![0, 90, 180, 270].includes(n)) throw new Error('bad');
      return n as 0 | 90 | 180 | 270;
    },
    allowed: '0, 90, 180 or 270',
  }),
  variant: s({
    flag: 'variant',
    env: 'POWER_METER_DISPLAY_VARIANT',
    default: 'greentab' as ModuleVariant,
    describe: 'panel variant: tab colour of the 1.8" module, or the 0.96" mini (mini160x80plugin: the one with the plug-in flex cable)',
    parse: parsers.oneOf(MODULE_VARIANTS),
    allowed: MODULE_VARIANTS.join(', '),
  }),
  gpio: s({
    flag: 'gpio',
    env: 'POWER_METER_DISPLAY_GPIO',
    default: 'auto' as 'auto' | 'sysfs' | 'gpioset',
    describe: 'GPIO backend for D/C and RESET: auto (sysfs, else gpioset), sysfs, or gpioset (libgpiod)',
    parse: parsers.oneOf(['auto', 'sysfs', 'gpioset'] as const),
    allowed: 'auto, sysfs or gpioset',
  }),
  colOffset: s({
    flag: 'col-offset',
    env: 'POWER_METER_DISPLAY_COL_OFFSET',
    default: null as number | null,
    describe:
      "first column of the glass in portrait, as Adafruit's colstart (the same in every rotation), overriding the variant's (unset = the variant's)",
    parse: parsers.integer(0, 131),
    allowed: 'an integer 0-131',
    json: ['number'],
  }),
  rowOffset: s({
    flag: 'row-offset',
    env: 'POWER_METER_DISPLAY_ROW_OFFSET',
    default: null as number | null,
    describe:
      "first row of the glass in portrait, as Adafruit's rowstart (the same in every rotation), overriding the variant's (unset = the variant's)",
    parse: parsers.integer(0, 161),
    allowed: 'an integer 0-161',
    json: ['number'],
  }),
  bgr: s({
    flag: 'bgr',
    env: 'POWER_METER_DISPLAY_BGR',
    default: null as boolean | null,
    describe: "the glass has BGR sub-pixels, overriding the variant's (wrong = red and blue swapped)",
    parse: parsers.boolean,
    allowed: 'true or false',
    json: ['boolean'],
  }),
  invert: s({
    flag: 'invert',
    env: 'POWER_METER_DISPLAY_INVERT',
    default: null as boolean | null,
    describe: "send INVON for glasses that invert colours, overriding the variant's",
    parse: parsers.boolean,
    allowed: 'true or false',
    json: ['boolean'],
  }),
  fontDir: s({
    flag: 'font-dir',
    env: 'POWER_METER_DISPLAY_FONT_DIR',
    default: DEFAULT_FONT_DIR,
    describe: 'folder with DejaVuSans.ttf and DejaVuSans-Bold.ttf (Debian fonts-dejavu-core)',
    parse: parsers.nonEmptyString,
    allowed: 'a directory path',
  }),
  logLevel: s({
    flag: 'log-level',
    env: 'POWER_METER_DISPLAY_LOG_LEVEL',
    default: 'info' as LogLevel,
    describe: 'least important log lines kept: error, warning, notice, info or debug',
    parse: parseLogLevel,
    allowed: LOG_LEVELS.join(', '),
  }),
};

export type DisplaySettings = {
  [K in keyof typeof DISPLAY_SETTINGS]: (typeof DISPLAY_SETTINGS)[K] extends SettingSpec<infer T> ? T : never;
};
