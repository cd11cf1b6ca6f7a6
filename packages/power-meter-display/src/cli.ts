#!/usr/bin/env node
import { isAbsolute, resolve } from 'node:path';
import { Command, Option } from 'commander';
import {
  DEFAULT_CONFIG_FILE,
  EXIT,
  ServiceNotifier,
  SettingError,
  createLogger,
  helpText,
  packageVersion,
  loadSettings,
  type Logger,
} from '@power-meter/service';
import { startDisplay } from './daemon.js';
import { panelErrorHint } from './hints.js';
import { openPanel } from './panel.js';
import { DISPLAY_SETTINGS, type DisplaySettings } from './settings.js';

const VERSION = packageVersion(import.meta.url);
let logger: Logger = createLogger({ program: 'power-meter-display' });
const fail = (message: string, code: number): never => {
  logger.error(message);
  process.exit(code);
};

const program = new Command('power-meter-display')
  .description('Shows live power and rewards from the power-meter data directory on an ST7735 TFT (or a PNG file)')
  .version(VERSION)
  .option(
    '--config <file>',
    `JSON config file; the display reads its "display" object (default: ${DEFAULT_CONFIG_FILE} when it exists; env POWER_METER_CONFIG)`,
  );
for (const [key, spec] of Object.entries(DISPLAY_SETTINGS)) {
  if (spec.flag) program.addOption(new Option(`--${spec.flag} <value>`, helpText(key, spec)));
}

/** flags > environment > config `display` object (the data directory also from the top level) > defaults. */
function settingsFrom(flags: Record<string, unknown>): DisplaySettings {
  try {
    const settings = loadSettings({ specs: DISPLAY_SETTINGS, flags, env: process.env, section: 'display', inheritFromTop: ['dataDir'] })
      .values as DisplaySettings;
    logger = createLogger({ program: 'power-meter-display', level: settings.logLevel });
    return { ...settings, png: pngPath(settings.png) };
  } catch (err) {
    if (err instanceof SettingError) return fail(err.message, EXIT.badSettings);
    throw err;
  }
}

/**
 * A relative --png is resolved in the unit's state directory when systemd runs the display
 * (StateDirectory= sets STATE_DIRECTORY; the rest of the file system is read-only for the unit),
 * else in the working directory.
 */
function pngPath(png: string): string {
  if (isAbsolute(png)) return png;
  const stateDir = process.env.STATE_DIRECTORY?.split(':')[0];
  return resolve(stateDir || process.cwd(), png);
}

program.action(async (flags: Record<string, unknown>) => {
  const settings = settingsFrom(flags);
  let panel: Awaited<ReturnType<typeof openPanel>>;
  try {
    panel = await openPanel(settings);
  } catch (err) {
    return fail(`cannot open the panel: ${err instanceof Error ? err.message : String(err)}${panelErrorHint(err)}`, EXIT.failure);
  }
  logger.info(
    `start pid=${process.pid} version=${VERSION} panel=${settings.panel}${settings.panel === 'png' ? ` png=${settings.png}` : settings.panel === 'emulated' ? '' : ` spi=${settings.spiBus}.${settings.spiDevice} dc=${settings.dcPin} reset=${settings.resetPin}`} data_dir=${settings.dataDir} rotation=${settings.rotation} variant=${settings.variant}`,
  );
  const service = new ServiceNotifier({ warn: logger.warning });
  const running = await startDisplay(settings, panel, logger, (text) => service.status(text));
  service.ready('started');
  service.startWatchdog();
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info(`stop signal=${signal}`);
    service.stopping();
    // Never hang on shutdown: systemd and Ctrl-C expect us gone within 2 s.
    setTimeout(() => process.exit(EXIT.ok), 1500).unref();
    void running.stop().then(() => process.exit(EXIT.ok));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
});

program.parseAsync(process.argv).catch((err: unknown) => fail(err instanceof Error ? err.message : String(err), EXIT.failure));
