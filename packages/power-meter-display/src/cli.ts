#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import { SettingError, helpText, loadConfigFile, resolveSettings } from '@power-meter/meter-files';
import { startDisplay } from './daemon.js';
import { openPanel } from './panel.js';
import { DISPLAY_SETTINGS, type DisplaySettings } from './settings.js';

const DEFAULT_CONFIG = '/etc/power-meter/config.json';
const log = (line: string): void => console.log(line);

const program = new Command('power-meter-display')
  .description('Shows live power and rewards from the power-meter data directory on an ST7735 TFT (or a PNG file)')
  .option('--config <file>', `JSON config file; the display reads its "display" object (default: ${DEFAULT_CONFIG} when it exists; env POWER_METER_CONFIG)`);
for (const spec of Object.values(DISPLAY_SETTINGS)) {
  if (spec.flag) program.addOption(new Option(`--${spec.flag} <value>`, helpText(spec)));
}
program.action(async (flags: Record<string, unknown>) => {
  let settings: DisplaySettings;
  try {
    const configPath = (flags.config as string | undefined) ?? process.env.POWER_METER_CONFIG ?? DEFAULT_CONFIG;
    const explicit = flags.config !== undefined || process.env.POWER_METER_CONFIG !== undefined;
    const config = explicit || existsSync(configPath) ? loadConfigFile(configPath, explicit, 'display') : {};
    // The data directory is shared with the backend: accept the top-level key too.
    if (config.dataDir === undefined && (explicit || existsSync(configPath))) {
      const top = loadConfigFile(configPath, explicit);
      if (typeof top.dataDir === 'string') config.dataDir = top.dataDir;
    }
    settings = resolveSettings(DISPLAY_SETTINGS, { flags, env: process.env, config }).values as DisplaySettings;
  } catch (err) {
    if (err instanceof SettingError) {
      console.error(`power-meter-display: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }

  let panel;
  try {
    panel = await openPanel(settings);
  } catch (err) {
    console.error(`power-meter-display: cannot open the panel: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
  log(`start panel=${settings.panel}${settings.panel === 'png' ? ` png=${settings.png}` : ` spi=${settings.spiBus}.${settings.spiDevice} dc=${settings.dcPin} reset=${settings.resetPin}`} data_dir=${settings.dataDir} rotation=${settings.rotation} variant=${settings.variant}`);
  const running = await startDisplay(settings, panel, log);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`stop signal=${signal}`);
    // Never hang on shutdown: systemd and Ctrl-C expect us gone within 2 s.
    setTimeout(() => process.exit(0), 1500).unref();
    void running.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
});

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`power-meter-display: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
