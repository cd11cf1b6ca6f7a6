#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { I2cError, cycleMs, createSensor, realSleep } from '@power-meter/ina219';
import { EXIT, SettingError, helpText, loadConfigFile, resolveSettings } from '@power-meter/meter-files';
import { DEV_ANSWER_MODES, IdentityError, OutboxCorruptError, OutboxLockedError, SequenceFloorError, loadOrCreateIdentity, startDevReceiver, type DevAnswerMode } from '@power-meter/w3bstream';
import { runDoctor } from './doctor.js';
import { Meter } from './meter.js';
import { salvageOutbox } from './salvage.js';
import { verifyLines } from './verify.js';
import { startOutputs } from './outputs.js';
import { BACKEND_SETTINGS, type BackendSettings } from './settings.js';

const DEFAULT_CONFIG = '/etc/power-meter/config.json';
const log = (line: string): void => console.log(line);
const fail = (message: string, code = 1): never => {
  console.error(`power-meter: ${message}`);
  process.exit(code);
};

function withSettings(cmd: Command): Command {
  cmd.option('--config <file>', `JSON config file (default: ${DEFAULT_CONFIG} when it exists; env POWER_METER_CONFIG)`);
  for (const spec of Object.values(BACKEND_SETTINGS)) if (spec.flag) cmd.addOption(new Option(`--${spec.flag} <value>`, helpText(spec)));
  cmd.addHelpText('after', `\nAlso: ${BACKEND_SETTINGS.publisherToken.describe}: env W3BSTREAM_PUBLISHER_TOKEN or config "publisherToken".\n${BACKEND_SETTINGS.rewardTiers.describe}.`);
  return cmd;
}

/** flags > environment > config file > defaults; invalid -> exit 2 with one message. */
function settingsFrom(flags: Record<string, unknown>): BackendSettings {
  try {
    const explicit = flags.config !== undefined || process.env.POWER_METER_CONFIG !== undefined;
    const path = (flags.config as string | undefined) ?? process.env.POWER_METER_CONFIG ?? DEFAULT_CONFIG;
    const config = explicit || existsSync(path) ? loadConfigFile(path, explicit) : {};
    const values = resolveSettings(BACKEND_SETTINGS, { flags, env: process.env, config }).values as BackendSettings;
    // The INA219 limits depend on two settings together: check them before anything starts.
    const maxA = 0.32 / values.shuntOhms;
    if (values.maxCurrentA > maxA * 1.0001)
      throw new SettingError('--max-current', values.maxCurrentA, `at most ${maxA.toFixed(2)} A with a ${values.shuntOhms} ohm shunt (320 mV range)`, 'flag');
    if (values.publishUrl && new URL(values.publishUrl).searchParams.has('authorization'))
      throw new SettingError('--publish-url', '<hidden: contains ?authorization=>', 'a URL without the token; put it in W3BSTREAM_PUBLISHER_TOKEN (env file) instead', 'flag');
    return values;
  } catch (err) {
    if (err instanceof SettingError) return fail(err.message, 2);
    throw err;
  }
}

/** Origin and path only: a query string may carry credentials and never goes to the journal. */
function safeUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}${u.search ? '?…' : ''}`;
}

function summary(s: BackendSettings): string {
  return `settings data_dir=${s.dataDir} sensor=${s.sensor} window_s=${s.window} publish_url=${s.publishUrl ? safeUrl(s.publishUrl) : '(disabled)'} token=${s.publisherToken ? 'set' : 'not set'} event_type=${s.eventType} signature=${s.signature} timestamp_unit=${s.timestampUnit} hold_unsynced_clock=${s.holdUnsyncedClock}`;
}

const program = new Command('power-meter')
  .description('Measures power with an INA219, signs each window and delivers it to W3bstream; writes live values for power-meter-display')
  .version('0.1.0')
  .addHelpText('after', '\nWith no command, runs the daemon: `power-meter run --help` lists every setting with its default and environment variable.');

withSettings(program.command('run', { isDefault: true }).description('run the meter daemon (the default when no command is given)')).action(async (flags: Record<string, unknown>) => {
  const s = settingsFrom(flags);
  log(`start pid=${process.pid}`);
  log(summary(s));
  if (s.publishUrl && !s.publisherToken) log('warning: a publish URL is set but W3BSTREAM_PUBLISHER_TOKEN is not: the node will answer InvalidToken');
  let meter: Meter;
  // A damaged outbox stops the program for good (systemd does not restart on status 3): running
  // on would mean numbering from scratch or losing what it holds.
  const corrupt = (err: OutboxCorruptError | SequenceFloorError): never =>
    fail(
      err instanceof OutboxCorruptError
        ? `${err.message}. The meter stops rather than start a new outbox. To recover the undelivered readings that can still be read into a new outbox (the damaged file is kept beside it): power-meter outbox salvage --data-dir ${s.dataDir}, then start the meter again`
        : err.message,
      EXIT.corruptData,
    );
  try {
    meter = await Meter.start({
      settings: s,
      log,
      timesyncRoot: process.env.POWER_METER_TIMESYNC_ROOT,
      retryMaxMs: process.env.POWER_METER_RETRY_MAX_MS ? Number(process.env.POWER_METER_RETRY_MAX_MS) : undefined,
      onFatal: corrupt,
    });
  } catch (err) {
    if (err instanceof OutboxCorruptError || err instanceof SequenceFloorError) return corrupt(err);
    if (err instanceof OutboxLockedError || err instanceof IdentityError) return fail(err.message);
    throw err;
  }
  const outputs = await startOutputs(meter, s, log);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`stop signal=${signal}`);
    setTimeout(() => {
      console.error('power-meter: clean stop took too long; exiting');
      process.exit(0);
    }, 1800).unref();
    void outputs.stop().then(() => meter.stop()).then(() => {
      log('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
});

withSettings(program.command('identity').description('print the device address and public key (creates the identity on first use)'))
  .option('--json', 'print {"device_id","public_key","curve"}')
  .action((flags: Record<string, unknown>) => {
    const s = settingsFrom(flags);
    try {
      const id = loadOrCreateIdentity(join(s.dataDir, 'identity'), { curve: s.curve });
      if (flags.json) console.log(JSON.stringify({ device_id: id.deviceId, public_key: id.publicKeyHex, curve: id.curve }));
      else console.log(`device_id   ${id.deviceId}\npublic_key  ${id.publicKeyHex}\ncurve       ${id.curve}${id.created ? '\n(new identity created)' : ''}`);
    } catch (err) {
      fail(err instanceof Error ? err.message : String(err));
    }
  });

withSettings(program.command('read').description('take one measurement and print it'))
  .option('--json', 'print JSON')
  .action(async (flags: Record<string, unknown>) => {
    const s = settingsFrom(flags);
    try {
      const sensor = await createSensor({ kind: s.sensor, i2cBus: s.i2cBus, settings: { address: s.i2cAddress, shuntOhms: s.shuntOhms, maxCurrentA: s.maxCurrentA }, simLoad: s.simLoad });
      await sensor.driver.init();
      await realSleep(cycleMs(sensor.driver.settings) + 2);
      const r = await sensor.driver.read();
      await sensor.close();
      const out = { power_w: Number(r.powerW.toFixed(4)), bus_v: r.busV, current_a: Number(r.currentA.toFixed(6)), shunt_uv: r.shuntUv, out_of_range: r.outOfRange, sensor: s.sensor };
      if (flags.json) console.log(JSON.stringify(out));
      else console.log(`power ${out.power_w} W   bus ${out.bus_v} V   current ${out.current_a} A${r.outOfRange ? '   (OUT OF RANGE: raise --max-current or lower --shunt-ohms)' : ''}`);
    } catch (err) {
      if (err instanceof I2cError || err instanceof Error) fail(err.message);
    }
  });

program
  .command('verify [file]')
  .description('check signed messages: one body per line, a single body, or dev-receiver records ("-" or no file = stdin); prints the device address of each; exit 0 only if all verify')
  .option('--expect-address <0x…>', 'fail unless every body is signed by this device address (`power-meter identity` prints it); also requires a low S in every encoding')
  .option('--expect-key <04…>', 'fail unless every body carries this public key; also requires a low S in every encoding')
  .action((file: string | undefined, o: { expectAddress?: string; expectKey?: string }) => {
    if (o.expectAddress !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(o.expectAddress)) fail(`invalid setting --expect-address = ${JSON.stringify(o.expectAddress)}: allowed 0x + 40 hex digits`, EXIT.badSettings);
    if (o.expectKey !== undefined && !/^04[0-9a-fA-F]{128}$/.test(o.expectKey)) fail(`invalid setting --expect-key = ${JSON.stringify(o.expectKey)}: allowed 04 + 128 hex digits`, EXIT.badSettings);
    const text = !file || file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
    const { lines, bad } = verifyLines(text, { expectAddress: o.expectAddress, expectKey: o.expectKey });
    if (lines.length === 0) fail('no messages found in the input');
    for (const l of lines) console.log(l);
    console.log(`${lines.length - bad} of ${lines.length} verified`);
    process.exit(bad === 0 ? 0 : 1);
  });

const outbox = program.command('outbox').description('maintenance of the outbox (the undelivered signed readings)');
withSettings(outbox.command('salvage').description('move a damaged outbox aside and put every undelivered reading that can still be read into a new one (stop the meter first)')).action((flags: Record<string, unknown>) => {
  const s = settingsFrom(flags);
  try {
    const r = salvageOutbox(s.dataDir);
    console.log(`salvaged ${r.restored} undelivered reading(s)${r.expected === null ? '' : ` of the ${r.expected} the damaged outbox counted`} into a new ${r.damagedFile}`);
    if (r.expected !== null && r.expected > r.restored) console.log(`${r.expected - r.restored} reading(s) could not be read and are lost`);
    if (r.unreadable.length > 0) console.log(`sequence numbers whose lookup failed: ${r.unreadable.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(', ')}`);
    console.log(`totals ${r.totalsRecovered ? 'carried over' : 'unreadable: the next start takes them from state.json'}; numbering continues at ${r.nextSeq}`);
    console.log(`the damaged file is kept at ${r.keptAt}; start the meter again (sudo systemctl restart power-meter)`);
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
});

withSettings(program.command('doctor').description('check I2C, SPI, permissions, data directory, key, clock sync, config and the endpoint; says how to fix each problem')).action(async (flags: Record<string, unknown>) => {
  const s = settingsFrom(flags);
  const checks = await runDoctor(s, { timesyncRoot: process.env.POWER_METER_TIMESYNC_ROOT });
  for (const c of checks) console.log(`${c.status === 'ok' ? 'ok  ' : c.status === 'warn' ? 'warn' : 'FAIL'} ${c.name.padEnd(9)} ${c.detail}${c.fix ? `\n     fix: ${c.fix}` : ''}`);
  const failed = checks.filter((c) => c.status === 'fail').length;
  console.log(failed === 0 ? 'all checks passed' : `${failed} problem(s) found`);
  process.exit(failed === 0 ? 0 : 1);
});

program
  .command('dev-receiver')
  .description('local stand-in for a W3bstream event endpoint, for development and tests (verifies every message)')
  .option('--port <n>', 'TCP port on 127.0.0.1 (default: 8080; 0 = any free port)', '8080')
  .option('--host <addr>', 'address to listen on', '127.0.0.1')
  .option('--project <name>', 'project name in the route /srv-applet-mgr/v0/event/<project>', 'demo')
  .option('--token <token>', 'publisher token to accept (default: env DEV_RECEIVER_TOKEN or "dev-token"; a local test value, not a real secret)')
  .option('--record <file>', 'append every received message to this JSON-lines file')
  .option('--answer <mode>', `answer every request like this (the node's failure answers and what stands in front of a node): ${DEV_ANSWER_MODES.join(', ')}`, 'normal')
  .action(async (o: { port: string; host: string; project: string; token?: string; record?: string; answer: string }) => {
    const port = Number(o.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`invalid setting --port = ${JSON.stringify(o.port)}: allowed 0-65535`, EXIT.badSettings);
    if (!(DEV_ANSWER_MODES as readonly string[]).includes(o.answer)) fail(`invalid setting --answer = ${JSON.stringify(o.answer)}: allowed ${DEV_ANSWER_MODES.join(', ')}`, EXIT.badSettings);
    const r = await startDevReceiver({ port, host: o.host, project: o.project, token: o.token ?? process.env.DEV_RECEIVER_TOKEN ?? 'dev-token', recordFile: o.record, mode: o.answer as DevAnswerMode, log });
    log(`dev-receiver listening publish_url=${r.url}`);
    const stop = (): void => void r.close().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });

program.parseAsync(process.argv).catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)));
