#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { I2cError, Ina219SettingError, cycleMs, createSensor, realSleep, resolveIna219Settings } from '@power-meter/ina219';
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
} from '@power-meter/meter-files';
import {
  DEV_ANSWER_MODES,
  DEV_ANSWER_MODES_V2,
  IdentityCurveError,
  TRANSPORT_NAMES,
  type TransportName,
  IdentityError,
  OutboxCorruptError,
  OutboxLockedError,
  OutboxTooNewError,
  SequenceFloorError,
  loadOrCreateIdentity,
  startDevReceiver,
  type DevAnswerMode,
} from '@power-meter/w3bstream';
import { printDoctor, runDoctor } from './doctor.js';
import { sensorErrorHint } from './hints.js';
import { Meter, RuntimeDirError, stagingFileFor } from './meter.js';
import { TransportMismatchError, identityCurveFor, p256ForV2 } from './transport.js';
import { salvageOutbox } from './salvage.js';
import { libraryLog } from './service/library-log.js';
import { startSummary } from './service/summary.js';
import { verifyLines } from './verify.js';
import { readOutputFiles, startOutputs, type OutputFiles } from './outputs.js';
import { BACKEND_SETTINGS, type BackendSettings } from './settings.js';

const VERSION = packageVersion(import.meta.url);
/** Until the settings are read (and for the one-shot commands): info level, priorities under journald. */
let logger: Logger = createLogger({ program: 'power-meter' });
const log = (line: string): void => logger.info(line);
const fail = (message: string, code: number = EXIT.failure): never => {
  logger.error(message);
  process.exit(code);
};

function withSettings(cmd: Command): Command {
  cmd.option('--config <file>', `JSON config file (default: ${DEFAULT_CONFIG_FILE} when it exists; env POWER_METER_CONFIG)`);
  for (const spec of Object.values(BACKEND_SETTINGS)) if (spec.flag) cmd.addOption(new Option(`--${spec.flag} <value>`, helpText(spec)));
  cmd.addHelpText(
    'after',
    `\nAlso: ${BACKEND_SETTINGS.publisherToken.describe}: env W3BSTREAM_PUBLISHER_TOKEN or config "publisherToken".\n${BACKEND_SETTINGS.rewardTiers.describe}.`,
  );
  return cmd;
}

/** flags > environment > config file > defaults; invalid -> exit 2 with one message. */
function settingsFrom(flags: Record<string, unknown>): BackendSettings {
  try {
    const values = loadSettings({ specs: BACKEND_SETTINGS, flags, env: process.env, otherSections: ['display'], check: checkTogether })
      .values as BackendSettings;
    logger = createLogger({ program: 'power-meter', level: values.logLevel });
    return values;
  } catch (err) {
    if (err instanceof SettingError) return fail(err.message, EXIT.badSettings);
    throw err;
  }
}

/** Settings that only work together: check them before anything starts. */
function checkTogether(values: BackendSettings): void {
  // W3bstream 2 signs the project into every stored message: without it nothing could be signed.
  if (values.transport === 'w3bstream-v2') {
    if (values.projectId === '')
      throw new SettingError(
        '--project-id',
        '',
        'the W3bstream 2 project ID (a whole number from 1) with --transport w3bstream-v2',
        'default',
      );
    if (values.projectVersion === '')
      throw new SettingError(
        '--project-version',
        '',
        'the W3bstream 2 project version (e.g. 0.1) with --transport w3bstream-v2',
        'default',
      );
  }
  // The reward balance needs all three: where to ask, which token, whose balance.
  if (values.rpcUrl !== '' || values.rewardToken !== '') {
    if (values.rewardToken === '')
      throw new SettingError('--reward-token', '', "the token's contract address (0x + 40 hex digits) when --rpc-url is set", 'flag');
    if (values.rpcUrl === '')
      throw new SettingError('--rpc-url', '', 'the JSON-RPC URL of the chain the token lives on when --reward-token is set', 'flag');
    if (values.walletAddress === '')
      throw new SettingError(
        '--wallet-address',
        '',
        "the owner's wallet (0x + 40 hex digits, the address the device is bound to) when --rpc-url and --reward-token are set: its balance is what is read",
        'flag',
      );
  }
  // A client certificate needs its key and the other way round; TLS files only mean something for mqtts://.
  if ((values.mqttCert === '') !== (values.mqttKey === ''))
    throw new SettingError(
      values.mqttCert === '' ? '--mqtt-cert' : '--mqtt-key',
      '',
      values.mqttCert === '' ? 'the client certificate (PEM) that goes with --mqtt-key' : 'the private key (PEM) of --mqtt-cert',
      'flag',
    );
  for (const [flag, value] of [
    ['--mqtt-ca', values.mqttCa],
    ['--mqtt-cert', values.mqttCert],
  ] as const)
    if (value !== '' && !values.mqttUrl.startsWith('mqtts://'))
      throw new SettingError(flag, value, 'a PEM file only with an mqtts:// --mqtt-url (TLS); plain mqtt:// uses no certificates', 'flag');
  // The INA219 limits depend on two settings together: the driver's own check.
  try {
    resolveIna219Settings({ shuntOhms: values.shuntOhms, maxCurrentA: values.maxCurrentA });
  } catch (err) {
    if (err instanceof Ina219SettingError && err.setting === 'maxCurrentA')
      throw new SettingError('--max-current', values.maxCurrentA, err.allowed, 'flag');
    throw err;
  }
}

/**
 * Origin and path only: a query string may carry credentials and never goes to the journal.
 * `originOnly` for RPC URLs, whose path often is the API key.
 */
function safeUrl(url: string, originOnly = false): string {
  const u = new URL(url);
  if (originOnly) return `${u.origin}${u.pathname === '/' ? '' : '/…'}`;
  return `${u.origin}${u.pathname}${u.search ? '?…' : ''}`;
}

function summary(s: BackendSettings): string {
  const transport =
    s.transport === 'w3bstream-v2'
      ? `transport=${s.transport} project_id=${s.projectId} project_version=${JSON.stringify(s.projectVersion)}`
      : `transport=${s.transport} token=${s.publisherToken ? 'set' : 'not set'} event_type=${s.eventType}`;
  return `settings data_dir=${s.dataDir} sensor=${s.sensor} window_s=${s.window} publish_url=${s.publishUrl ? safeUrl(s.publishUrl) : '(disabled)'} ${transport} signature=${s.signature} public_key=${s.publicKeyField} timestamp_unit=${s.timestampUnit} hold_unsynced_clock=${s.holdUnsyncedClock} reward_balance=${s.rpcUrl ? `${s.rewardToken}@${safeUrl(s.rpcUrl, true)}` : 'off'}`;
}

const program = new Command('power-meter')
  .description('Measures power with an INA219, signs each window and delivers it to W3bstream; writes live values for power-meter-display')
  .version(VERSION)
  .addHelpText(
    'after',
    '\nWith no command, runs the daemon: `power-meter run --help` lists every setting with its default and environment variable.',
  );

withSettings(program.command('run', { isDefault: true }).description('run the meter daemon (the default when no command is given)')).action(
  async (flags: Record<string, unknown>) => {
    const s = settingsFrom(flags);
    log(`start pid=${process.pid} version=${VERSION}`);
    log(summary(s));
    if (s.publishUrl && !s.publisherToken && s.transport === 'w3bstream-v1')
      logger.warning('a publish URL is set but W3BSTREAM_PUBLISHER_TOKEN is not: the node will answer InvalidToken');
    const service = new ServiceNotifier({ warn: logger.warning });
    // Certificates and keys for the outputs, before anything starts: a bad file is a setting to fix.
    let outputFiles: OutputFiles;
    try {
      outputFiles = await readOutputFiles(s);
    } catch (err) {
      return fail(err instanceof Error ? err.message : String(err), EXIT.badSettings);
    }
    let meter: Meter;
    // A damaged outbox stops the program for good (systemd does not restart on status 3): running
    // on would mean numbering from scratch or losing what it holds.
    const corrupt = (err: OutboxCorruptError | OutboxTooNewError | SequenceFloorError): never =>
      fail(
        err instanceof OutboxCorruptError
          ? `${err.message}. The meter stops rather than start a new outbox. To recover the undelivered readings that can still be read into a new outbox (the damaged file is kept beside it): power-meter outbox salvage --data-dir ${s.dataDir}, then start the meter again`
          : err.message,
        EXIT.corruptData,
      );
    let stopping = false;
    const testFault = process.env.POWER_METER_TEST_FAULT;
    try {
      meter = await Meter.start({
        settings: s,
        log: libraryLog(logger),
        warn: logger.warning,
        // A component that stopped for good: exit non-zero so systemd restarts the whole program.
        onStopped: (reason) => {
          if (stopping) return;
          stopping = true;
          service.status(`fault: ${reason}`);
          fail(`${reason}; exiting so the service manager restarts the meter`, EXIT.failure);
        },
        timesyncRoot: process.env.POWER_METER_TIMESYNC_ROOT,
        retryMaxMs: process.env.POWER_METER_RETRY_MAX_MS ? Number(process.env.POWER_METER_RETRY_MAX_MS) : undefined,
        onFatal: corrupt,
        testFault: testFault === 'sampler' || testFault === 'publisher' ? testFault : undefined,
      });
    } catch (err) {
      if (err instanceof OutboxCorruptError || err instanceof OutboxTooNewError || err instanceof SequenceFloorError) return corrupt(err);
      // A P-256 key for W3bstream 2, or a backlog signed for the other transport: a setting to change, never data to discard.
      if (err instanceof IdentityCurveError || err instanceof TransportMismatchError) return fail(err.message, EXIT.badSettings);
      if (err instanceof OutboxLockedError || err instanceof IdentityError) return fail(err.message);
      if (err instanceof RuntimeDirError) return fail(err.message, EXIT.badSettings);
      throw err;
    }
    const outputs = await startOutputs(meter, s, log, outputFiles);
    const summaryTimer = startSummary(
      meter,
      { log: logger.info, status: (text) => service.status(text) },
      Number(process.env.POWER_METER_SUMMARY_MS) || undefined,
    );
    service.ready('started');
    service.startWatchdog();
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log(`stop signal=${signal}`);
      service.stopping();
      clearInterval(summaryTimer);
      setTimeout(() => {
        logger.warning('clean stop took too long; exiting');
        process.exit(EXIT.ok);
      }, 1800).unref();
      void outputs
        .stop()
        .then(() => meter.stop())
        .then(() => {
          log('stopped');
          process.exit(EXIT.ok);
        });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  },
);

withSettings(program.command('identity').description('print the device address and public key (creates the identity on first use)'))
  .option('--json', 'print {"deviceId","publicKey","curve","did","publicKeyJwk"}')
  .action((flags: Record<string, unknown>) => {
    const s = settingsFrom(flags);
    try {
      const id = loadOrCreateIdentity(join(s.dataDir, 'identity'), { curve: identityCurveFor(s) });
      if (flags.json)
        console.log(
          JSON.stringify({
            deviceId: id.deviceId,
            publicKey: id.publicKeyHex,
            curve: id.curve,
            did: id.did,
            publicKeyJwk: id.publicKeyJwk,
          }),
        );
      else
        console.log(
          `device_id   ${id.deviceId}\npublic_key  ${id.publicKeyHex}\ncurve       ${id.curve}\ndid         ${id.did}\njwk         ${JSON.stringify(id.publicKeyJwk)}${id.created ? '\n(new identity created)' : ''}`,
        );
      if (s.transport === 'w3bstream-v2' && id.curve !== 'secp256k1') logger.warning(p256ForV2(id.keyFile));
    } catch (err) {
      fail(err instanceof Error ? err.message : String(err));
    }
  });

withSettings(program.command('read').description('take one measurement and print it'))
  .option('--json', 'print JSON')
  .action(async (flags: Record<string, unknown>) => {
    const s = settingsFrom(flags);
    try {
      const sensor = await createSensor({
        kind: s.sensor,
        i2cBus: s.i2cBus,
        settings: { address: s.i2cAddress, shuntOhms: s.shuntOhms, maxCurrentA: s.maxCurrentA },
        simLoad: s.simLoad,
      });
      await sensor.driver.init();
      await realSleep(cycleMs(sensor.driver.settings) + 2);
      const r = await sensor.driver.read();
      await sensor.close();
      const out = {
        powerW: Number(r.powerW.toFixed(4)),
        busV: r.busV,
        currentA: Number(r.currentA.toFixed(6)),
        shuntUv: r.shuntUv,
        outOfRange: r.outOfRange,
        sensor: s.sensor,
      };
      if (flags.json) console.log(JSON.stringify(out));
      else
        console.log(
          `power ${out.powerW} W   bus ${out.busV} V   current ${out.currentA} A${r.outOfRange ? '   (OUT OF RANGE: raise --max-current or lower --shunt-ohms)' : ''}`,
        );
    } catch (err) {
      if (err instanceof I2cError || err instanceof Error) fail(`${err.message}${sensorErrorHint(err)}`);
    }
  });

program
  .command('verify [file]')
  .description(
    'check signed messages: one body per line, a single body, or dev-receiver records ("-" or no file = stdin); prints the device address of each; exit 0 only if all verify',
  )
  .option(
    '--expect-address <0x…>',
    'fail unless every body is signed by this device address (`power-meter identity` prints it); also requires a low S in every encoding',
  )
  .option('--expect-key <04…>', 'fail unless every body carries this public key; also requires a low S in every encoding')
  .action((file: string | undefined, o: { expectAddress?: string; expectKey?: string }) => {
    if (o.expectAddress !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(o.expectAddress))
      fail(`invalid setting --expect-address = ${JSON.stringify(o.expectAddress)}: allowed 0x + 40 hex digits`, EXIT.badSettings);
    if (o.expectKey !== undefined && !/^04[0-9a-fA-F]{128}$/.test(o.expectKey))
      fail(`invalid setting --expect-key = ${JSON.stringify(o.expectKey)}: allowed 04 + 128 hex digits`, EXIT.badSettings);
    const text = !file || file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
    const { lines, bad } = verifyLines(text, { expectAddress: o.expectAddress, expectKey: o.expectKey });
    if (lines.length === 0) fail('no messages found in the input');
    for (const l of lines) console.log(l);
    console.log(`${lines.length - bad} of ${lines.length} verified`);
    process.exit(bad === 0 ? 0 : 1);
  });

const outbox = program.command('outbox').description('maintenance of the outbox (the undelivered signed readings)');
withSettings(
  outbox
    .command('salvage')
    .description(
      'move a damaged outbox aside and put every undelivered reading that can still be read into a new one (stop the meter first)',
    ),
).action((flags: Record<string, unknown>) => {
  const s = settingsFrom(flags);
  try {
    const r = salvageOutbox(s.dataDir, Date.now(), stagingFileFor(s));
    console.log(
      `salvaged ${r.restored} undelivered reading(s)${r.expected === null ? '' : ` of the ${r.expected} the damaged outbox counted`} into a new ${r.damagedFile}`,
    );
    if (r.expected !== null && r.expected > r.restored) console.log(`${r.expected - r.restored} reading(s) could not be read and are lost`);
    if (r.unreadable.length > 0)
      console.log(`sequence numbers whose lookup failed: ${r.unreadable.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(', ')}`);
    console.log(
      `totals ${r.totalsRecovered ? 'carried over' : 'unreadable: the next start takes them from state.json'}; numbering continues at ${r.nextSeq}`,
    );
    console.log(`the damaged file is kept at ${r.keptAt}; start the meter again (sudo systemctl restart power-meter)`);
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
});

withSettings(
  program
    .command('doctor')
    .description(
      'check I2C, SPI, permissions, data directory, key, clock sync, config, the endpoint and the installed services; says how to fix each problem',
    ),
)
  .option('--json', 'print {"ok", "checks": [{"name","status","detail","fix"}]}')
  .action(async (flags: Record<string, unknown>) => {
    const s = settingsFrom(flags);
    const checks = await runDoctor(s, { timesyncRoot: process.env.POWER_METER_TIMESYNC_ROOT });
    const ok = printDoctor(checks, flags.json === true, (text) => console.log(text));
    process.exit(ok ? EXIT.ok : EXIT.failure);
  });

program
  .command('dev-receiver')
  .description('local stand-in for a W3bstream event endpoint, for development and tests (verifies every message)')
  .option('--port <n>', 'TCP port on 127.0.0.1 (default: 8080; 0 = any free port)', '8080')
  .option('--host <addr>', 'address to listen on', '127.0.0.1')
  .option(
    '--transport <name>',
    'the node to stand in for: w3bstream-v1 (event route, token) or w3bstream-v2 (POST /message, signature recovery)',
    'w3bstream-v1',
  )
  .option('--project <name>', 'project name in the route /srv-applet-mgr/v0/event/<project> (v1)', 'demo')
  .option(
    '--token <token>',
    'publisher token to accept (default: env DEV_RECEIVER_TOKEN or "dev-token"; a local test value, not a real secret)',
  )
  .option('--record <file>', 'append every received message to this JSON-lines file')
  .option(
    '--answer <mode>',
    `answer every request like this (the node's failure answers and what stands in front of a node): v1 ${DEV_ANSWER_MODES.join(', ')}; v2 ${DEV_ANSWER_MODES_V2.join(', ')} (no-applet: an empty taskID, the node aggregating; wait-timeout: 500, the node cannot store)`,
    'normal',
  )
  .action(
    async (o: { port: string; host: string; project: string; token?: string; record?: string; answer: string; transport: string }) => {
      const port = Number(o.port);
      if (!/^\d+$/.test(o.port) || port > 65535)
        fail(`invalid setting --port = ${JSON.stringify(o.port)}: allowed 0-65535`, EXIT.badSettings);
      if (!(TRANSPORT_NAMES as readonly string[]).includes(o.transport))
        fail(`invalid setting --transport = ${JSON.stringify(o.transport)}: allowed ${TRANSPORT_NAMES.join(' or ')}`, EXIT.badSettings);
      const modes: readonly string[] = o.transport === 'w3bstream-v2' ? DEV_ANSWER_MODES_V2 : DEV_ANSWER_MODES;
      if (!modes.includes(o.answer))
        fail(
          `invalid setting --answer = ${JSON.stringify(o.answer)}: allowed ${modes.join(', ')} (with --transport ${o.transport})`,
          EXIT.badSettings,
        );
      const r = await startDevReceiver({
        transport: o.transport as TransportName,
        port,
        host: o.host,
        project: o.project,
        token: o.token ?? process.env.DEV_RECEIVER_TOKEN ?? 'dev-token',
        recordFile: o.record,
        mode: o.answer as DevAnswerMode,
        log,
      });
      log(`dev-receiver listening publish_url=${r.url}`);
      const stop = (): void => void r.close().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    },
  );

program.parseAsync(process.argv).catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)));
