#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import {
  CHIPS,
  CalibrationError,
  ChipMismatchError,
  ChipSettingError,
  I2cError,
  calibrateReading,
  realSleep,
  resolveIna219Settings,
  resolveIna226Settings,
  resolveIna228Settings,
} from '@power-meter/ina219';
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
  type SettingSource,
} from '@power-meter/service';
import {
  IdentityCurveError,
  MAX_PROJECT_ID,
  v2DialectOfUrl,
  IdentityError,
  OutboxCorruptError,
  OutboxLockedError,
  OutboxTooNewError,
  SequenceFloorError,
  TokenError,
  loadIdentity,
} from '@power-meter/w3bstream';
import { MeterRunningError, UnsteadyLoadError, calibrate } from './calibration/command.js';
import { activeCalibration, readCalibration } from './calibration/store.js';
import { printDoctor, runDoctor } from './doctor.js';
import { outboxErrorText, sensorErrorHint } from './hints.js';
import { Meter, RuntimeDirError, stagingFileFor } from './meter.js';
import { programDeps } from './program-deps.js';
import {
  ProjectMismatchError,
  SignerMismatchError,
  TransportMismatchError,
  identityCurveFor,
  p256ForV2,
  requireSecp256k1Key,
  signedForSettings,
  v2Dialect,
} from './transport.js';
import { moduleFor, openMeterKey } from './key/meter-key.js';
import { TokenKeyError, describeTokenFault } from './key/token-key.js';
import { salvageOutbox } from './salvage.js';
import { dataDirFault, prepareDataDir } from './data-dir.js';
import { describeGroup, discardBacklog, exportBacklog, resignBacklog, summarizeBacklog } from './backlog.js';
import { addDevReceiverCommand } from './dev-receiver.js';
import { startSummary } from './service/summary.js';
import { verifyLines } from './verify.js';
import { readOutputFiles, startOutputs, type OutputFiles } from './outputs.js';
import { BACKEND_SETTINGS, applyChipDefaults, sensorChip, type BackendSettings } from './settings.js';

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
  for (const [key, spec] of Object.entries(BACKEND_SETTINGS))
    if (spec.flag) cmd.addOption(new Option(`--${spec.flag} <value>`, helpText(key, spec)));
  cmd.addHelpText(
    'after',
    `\nAlso: ${BACKEND_SETTINGS.publisherToken.describe}: env W3BSTREAM_PUBLISHER_TOKEN or config "publisherToken".\n${BACKEND_SETTINGS.rewardTiers.describe}.`,
  );
  return cmd;
}

/**
 * flags > environment > config file > defaults, the shunt and current defaulting to the chip's
 * breakout; invalid -> exit 2 with one message.
 */
function settingsFrom(flags: Record<string, unknown>, ioidCommand = false): BackendSettings {
  try {
    const loaded = loadSettings({
      specs: BACKEND_SETTINGS,
      flags,
      env: process.env,
      otherSections: ['display'],
      check: (v: BackendSettings, sources: Record<keyof BackendSettings, SettingSource>) => checkTogether(v, sources, ioidCommand),
    });
    const values = applyChipDefaults(loaded.values as BackendSettings, loaded.sources);
    logger = createLogger({ program: 'power-meter', level: values.logLevel });
    return values;
  } catch (err) {
    if (err instanceof SettingError) return fail(err.message, EXIT.badSettings);
    throw err;
  }
}

/** Settings that only work together: check them before anything starts. */
function checkTogether(raw: BackendSettings, sources: Record<keyof BackendSettings, SettingSource>, ioidCommand: boolean): void {
  const values = applyChipDefaults(raw, sources);
  // W3bstream 2 signs the project into every stored message: without it nothing could be signed.
  if (values.transport === 'w3bstream-v2') {
    if (values.projectId === '')
      throw new SettingError(
        '--project-id',
        '',
        'the W3bstream 2 project ID (a whole number from 1) with --transport w3bstream-v2',
        'default',
      );
    // The node API is the URL's ending: the bodies signed for one cannot be sent to the other.
    if (values.publishUrl !== '' && v2DialectOfUrl(values.publishUrl) === null)
      throw new SettingError(
        '--publish-url',
        safeUrl(values.publishUrl),
        'with --transport w3bstream-v2, the node URL ending in /v1/task (current nodes: https://<node>/v1/task) or /message (nodes before v0.17: https://<node>/message)',
        'flag',
      );
    if (v2Dialect(values) === 'message') {
      if (values.projectVersion === '')
        throw new SettingError(
          '--project-version',
          '',
          'the W3bstream 2 project version (e.g. 0.1): a /message node requires it',
          'default',
        );
      if (BigInt(values.projectId) > MAX_PROJECT_ID)
        throw new SettingError(
          '--project-id',
          values.projectId,
          `at most ${MAX_PROJECT_ID} for a /message node (its project ID is a uint64)`,
          'flag',
        );
      if (values.signedKeys.length > 0)
        throw new SettingError('--signed-keys', values.signedKeys.join(','), 'empty for a /message node (it signs no keys)', 'flag');
    }
  }
  // A key in a token needs its module (the setting, or module-path in the URI).
  if (values.keyUri !== '' && moduleFor(values) === '')
    throw new SettingError(
      '--pkcs11-module',
      '',
      "the token's PKCS#11 library (an absolute path, e.g. /usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so) when --key-uri is set",
      'default',
    );
  if (values.keyUri === '' && values.pkcs11Module !== '')
    throw new SettingError(
      '--pkcs11-module',
      values.pkcs11Module,
      'a module only together with --key-uri (which key in the token to use)',
      'flag',
    );
  // The reward balance needs all three: where to ask, which token, whose balance. The RPC URL
  // also serves the ioID status: with neither of them it would be read for nothing.
  if (values.rpcUrl !== '' && values.rewardToken === '' && values.ioidRegistry === '')
    throw new SettingError(
      '--reward-token',
      '',
      "the token's contract address (0x + 40 hex digits), or --ioid-registry, when --rpc-url is set",
      'flag',
    );
  if (values.rewardToken !== '') {
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
  // The ioID commands take the registry as --registry and can sign a permit without a chain.
  if (values.ioidRegistry !== '' && values.rpcUrl === '' && !ioidCommand)
    throw new SettingError('--rpc-url', '', 'the JSON-RPC URL of the chain the ioID registry lives on when --ioid-registry is set', 'flag');
  // The chip's limits depend on the shunt and the current together: the driver's own check.
  const chip = sensorChip(values);
  if (CHIPS[chip].internalShuntOhms !== null && sources.shuntOhms !== 'default')
    throw new SettingError(
      '--shunt-ohms',
      values.shuntOhms,
      `no value with ${values.sensor === 'sim' ? '--sim-chip' : '--sensor'} ${chip}: the ${CHIPS[chip].name} measures through its own ${CHIPS[chip].internalShuntOhms! * 1000} mohm shunt`,
      sources.shuntOhms as SettingSource,
    );
  const chipSettings = { shuntOhms: values.shuntOhms, maxCurrentA: values.maxCurrentA };
  try {
    if (chip === 'ina219') resolveIna219Settings(chipSettings);
    else if (chip === 'ina228') resolveIna228Settings(chipSettings);
    else resolveIna226Settings(CHIPS[chip], chipSettings);
  } catch (err) {
    if (err instanceof ChipSettingError && err.setting === 'maxCurrentA')
      throw new SettingError('--max-current', values.maxCurrentA, `${err.allowed} (${CHIPS[chip].name})`, sources.maxCurrentA);
    if (err instanceof ChipSettingError && err.setting === 'shuntOhms')
      throw new SettingError('--shunt-ohms', values.shuntOhms, `${err.allowed} (${CHIPS[chip].name})`, sources.shuntOhms);
    throw err;
  }
}

/** The advice for a chip that is not the configured one (library errors name no flags). */
function wrongChip(err: ChipMismatchError, s: BackendSettings): string {
  const setting = s.sensor === 'sim' ? 'sim-chip' : 'sensor';
  const fix = err.foundId
    ? `set --${setting} ${err.foundId} (config "${setting === 'sensor' ? 'sensor' : 'simChip'}": "${err.foundId}"), or connect the ${CHIPS[sensorChip(s)].name} the setting names`
    : `check --sensor ${s.sensor} and --i2c-address 0x${s.i2cAddress.toString(16)} (i2cdetect -y ${s.i2cBus} lists what answers)`;
  return `${err.message}: ${fix}`;
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

/**
 * The PKCS#11 user PIN: from POWER_METER_PKCS11_PIN only (the environment file), never a flag or
 * a config key (`ps` and world-readable files). Never printed; a control character is refused.
 */
function pkcs11Pin(s: BackendSettings): string {
  const pin = process.env.POWER_METER_PKCS11_PIN ?? '';
  if (s.keyUri === '') return '';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
  if (/[\u0000-\u001f\u007f]/.test(pin))
    fail(
      'invalid setting POWER_METER_PKCS11_PIN = <hidden>: allowed the PIN without line breaks or other control characters (check the environment file for a CR or a stray space)',
      EXIT.badSettings,
    );
  return pin;
}

/** A key in a token that cannot be opened (and this meter has never seen it): what to do, exit 2. */
function tokenFailure(err: TokenError | TokenKeyError): string {
  const w = describeTokenFault(err.kind, err.message);
  return `signing key: ${w.reason}: ${w.advice}`;
}

function summary(s: BackendSettings): string {
  const transport =
    s.transport === 'w3bstream-v2'
      ? `transport=${s.transport} api=${v2Dialect(s)} project_id=${s.projectId} project_version=${JSON.stringify(s.projectVersion)}${s.signedKeys.length > 0 ? ` signed_keys=${s.signedKeys.join(',')}` : ''}`
      : `transport=${s.transport} token=${s.publisherToken ? 'set' : 'not set'} event_type=${s.eventType}`;
  return `settings data_dir=${s.dataDir} sensor=${s.sensor}${s.sensor === 'sim' ? ` sim_chip=${s.simChip}` : ''} window_s=${s.window} publish_url=${s.publishUrl ? safeUrl(s.publishUrl) : '(disabled)'} ${transport} signature=${s.signature} public_key=${s.publicKeyField} timestamp_unit=${s.timestampUnit} hold_unsynced_clock=${s.holdUnsyncedClock} reward_balance=${s.rpcUrl ? `${s.rewardToken}@${safeUrl(s.rpcUrl, true)}` : 'off'} key=${s.keyUri ? `pkcs11 ${s.keyUri} module=${moduleFor(s)} pin=${process.env.POWER_METER_PKCS11_PIN ? 'set' : 'not set'}` : 'file'}`;
}

const program = new Command('power-meter')
  .description(
    'Measures power with an INA219, INA226, INA260 or INA228, signs each window and delivers it to W3bstream; writes live values for power-meter-display',
  )
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
    // The PIN is read once; the programs this one starts (systemd-notify, timedatectl) do not inherit it.
    const pin = pkcs11Pin(s);
    delete process.env.POWER_METER_PKCS11_PIN;
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
          : err instanceof OutboxTooNewError
            ? outboxErrorText(err)
            : err.message,
        EXIT.corruptData,
      );
    let stopping = false;
    try {
      meter = await Meter.start({
        settings: s,
        log: logger.info,
        warn: logger.warning,
        logger,
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
        pkcs11Pin: pin,
        tokenRetryMs: process.env.POWER_METER_TOKEN_RETRY_MS
          ? { first: Number(process.env.POWER_METER_TOKEN_RETRY_MS), max: Number(process.env.POWER_METER_TOKEN_RETRY_MS) * 4 }
          : undefined,
        ...programDeps,
        // Another chip at the address: a setting or the wiring to change, so no restart loop.
        onWrongChip: (err) => {
          if (stopping) return;
          stopping = true;
          service.status(`fault: ${err.message}`);
          fail(wrongChip(err, s), EXIT.badSettings);
        },
      });
    } catch (err) {
      if (err instanceof OutboxCorruptError || err instanceof OutboxTooNewError || err instanceof SequenceFloorError) return corrupt(err);
      // A P-256 key for W3bstream 2, or a backlog signed for the other transport: a setting to change, never data to discard.
      if (
        err instanceof IdentityCurveError ||
        err instanceof TransportMismatchError ||
        err instanceof ProjectMismatchError ||
        err instanceof SignerMismatchError
      )
        return fail(err.message, EXIT.badSettings);
      // A damaged key, or one with the wrong owner or permissions: restarting cannot fix it.
      if (err instanceof IdentityError) return fail(`${err.message}; then start the meter again`, EXIT.corruptData);
      if (err instanceof OutboxLockedError) return fail(outboxErrorText(err));
      if (err instanceof RuntimeDirError) return fail(err.message, EXIT.badSettings);
      // The token cannot be used and this meter has never seen its key: no device address to
      // measure under. A setting to fix (URI, module, PIN, the key not created yet), so exit 2.
      if (err instanceof TokenError || err instanceof TokenKeyError) return fail(tokenFailure(err), EXIT.badSettings);
      const fault = dataDirFault(err, s.dataDir);
      if (fault !== null) return fail(fault.message, fault.status);
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

withSettings(
  program
    .command('identity')
    .description(
      'print the device address and public key (creates the identity on first use: the key file, or with --key-uri the key inside the PKCS#11 token)',
    ),
)
  .option('--json', 'print {"deviceId","publicKey","curve","did","publicKeyJwk","key"}')
  .option('--retry-pin', 'with --key-uri: try the PIN in POWER_METER_PKCS11_PIN once more although the token refused it before')
  .action(async (flags: Record<string, unknown>) => {
    const s = settingsFrom(flags);
    let key: Awaited<ReturnType<typeof openMeterKey>>;
    try {
      prepareDataDir(s.dataDir);
      key = await openMeterKey(s, {
        log,
        // A fault is the failure below, said once.
        warn: () => {},
        pin: pkcs11Pin(s),
        curve: identityCurveFor(s),
        createInToken: true,
        retryPin: flags.retryPin === true,
      });
    } catch (err) {
      if (err instanceof TokenError || err instanceof TokenKeyError) {
        // A TPM has no secp256k1: say so in the terms of the use that needs it.
        if (err.kind === 'curve' && s.transport === 'w3bstream-v2')
          return fail(
            `${tokenFailure(err)}. W3bstream 2 needs a secp256k1 key; a TPM 2.0 (and an ATECC608) offers NIST curves only. Use a token that offers secp256k1, the key file (no --key-uri), or --transport w3bstream-v1`,
            EXIT.badSettings,
          );
        return fail(tokenFailure(err), EXIT.badSettings);
      }
      // A damaged key file, or one other users can read: restarting cannot fix it.
      if (err instanceof IdentityError) return fail(err.message, EXIT.corruptData);
      const fault = dataDirFault(err, s.dataDir);
      return fail(fault?.message ?? (err instanceof Error ? err.message : String(err)), fault?.status ?? EXIT.failure);
    }
    const ks = key.status();
    if (ks.state === 'fault') {
      await key.close();
      return fail(`signing key: ${ks.reason}: ${ks.advice}`, EXIT.badSettings);
    }
    // The key W3bstream 2 needs is not this one: printing it as the device's identity would be a
    // dead end (exit 2, nothing printed on standard output).
    if (s.transport === 'w3bstream-v2' && key.curve !== 'secp256k1') {
      await key.close();
      try {
        requireSecp256k1Key(key, 'W3bstream 2 (--transport w3bstream-v2)');
      } catch (err) {
        return fail((err as Error).message, EXIT.badSettings);
      }
    }
    const info = key.token?.info ?? null;
    const where =
      info === null
        ? { source: 'file', file: key.where }
        : {
            source: 'pkcs11',
            uri: key.where,
            token: info.token.label,
            label: info.label,
            id: info.idHex,
            sensitive: info.sensitive,
            extractable: info.extractable,
            neverExtractable: info.neverExtractable,
            alwaysSensitive: info.alwaysSensitive,
          };
    if (flags.json)
      console.log(
        JSON.stringify({
          deviceId: key.deviceId,
          publicKey: key.publicKeyHex,
          curve: key.curve,
          did: key.did,
          publicKeyJwk: key.publicKeyJwk,
          key: where,
        }),
      );
    else {
      const created = info?.created ?? (key.signer as { created?: boolean }).created ?? false;
      const keyLine =
        info === null
          ? key.where
          : `in token "${info.token.label}" (${key.where}): ${info.sensitive ? 'sensitive' : 'NOT sensitive'}, ${info.extractable === false ? 'not extractable' : 'EXTRACTABLE'}; no key file`;
      console.log(
        `device_id   ${key.deviceId}\npublic_key  ${key.publicKeyHex}\ncurve       ${key.curve}\ndid         ${key.did}\njwk         ${JSON.stringify(key.publicKeyJwk)}\nkey         ${keyLine}${created ? '\n(new identity created)' : ''}`,
      );
    }
    await key.close();
  });

withSettings(program.command('read').description('take one measurement and print it (calibrated, naming the chip)'))
  .option('--json', 'print JSON')
  .action(async (flags: Record<string, unknown>) => {
    const s = settingsFrom(flags);
    try {
      const sensor = await programDeps.createSensor({
        kind: s.sensor,
        simChip: s.simChip,
        i2cBus: s.i2cBus,
        settings: { address: s.i2cAddress, shuntOhms: s.shuntOhms, maxCurrentA: s.maxCurrentA },
        simLoad: s.simLoad,
      });
      let r: Awaited<ReturnType<typeof sensor.driver.read>>;
      try {
        await sensor.driver.init();
        await realSleep(sensor.driver.cycleMs + 2);
        r = await sensor.driver.read();
        // A result is ready one cycle after the settings are written; a slow oscillator can make it a little later.
        for (let polls = 0; !r.ready && polls < 40; polls++) {
          await realSleep(1);
          r = await sensor.driver.read();
        }
      } finally {
        await sensor.close();
      }
      const stored = readCalibration(s.dataDir, { chip: sensor.chip.id, simulated: sensor.simulated, fullScaleA: s.maxCurrentA });
      const { calibration, id } = activeCalibration(stored);
      const c = calibrateReading(r, calibration);
      const chipLabel = `${sensor.chip.name}${sensor.simulated ? ' (simulated)' : ''}`;
      const out = {
        powerW: Number(c.powerW.toFixed(4)),
        busV: Number(c.busV.toFixed(4)),
        currentA: Number(c.currentA.toFixed(6)),
        shuntUv: r.shuntUv === undefined ? null : Number(r.shuntUv.toFixed(3)),
        outOfRange: r.outOfRange,
        sensor: s.sensor,
        chip: sensor.chip.name,
        simulated: sensor.simulated,
        calibrationId: id,
      };
      if (flags.json) console.log(JSON.stringify(out));
      else
        console.log(
          `power ${out.powerW} W   bus ${out.busV} V   current ${out.currentA} A   ${chipLabel}, ${id === null ? 'uncalibrated' : `calibration ${id}`}${r.outOfRange ? '   (OUT OF RANGE: raise --max-current or lower --shunt-ohms)' : ''}`,
        );
      if (stored.state === 'unusable') logger.warning(`calibration not applied: ${stored.problem}`);
    } catch (err) {
      if (err instanceof ChipMismatchError) return fail(wrongChip(err, s), EXIT.badSettings);
      if (err instanceof I2cError || err instanceof Error) fail(`${err.message}${sensorErrorHint(err)}`);
    }
  });

withSettings(
  program
    .command('calibrate')
    .description(
      'measure a steady load against a reference meter and store the correction (stop the meter first); one point gives a gain, a second at another current (e.g. --reference-w 0 with the load off) gain and offset',
    ),
)
  .option('--reference-w <watts>', 'the power the reference meter shows while the load runs')
  .option('--reference-v <volts>', 'the supply voltage the reference shows (calibrates the voltage)')
  .option('--reference-a <amperes>', 'the current the reference shows')
  .option('--seconds <n>', 'how long to measure (3-120)', '10')
  .option('--new', 'forget the earlier points: start the calibration from this one')
  .option('--json', 'print the stored calibration as JSON')
  .action(async (flags: Record<string, unknown>) => {
    const s = settingsFrom(flags);
    const ref = (name: string, flag: string, min: number, max: number): number | null => {
      const raw = flags[name];
      if (raw === undefined) return null;
      const n = typeof raw === 'string' && /^-?(\d+(\.\d*)?|\.\d+)$/.test(raw.trim()) ? Number(raw) : Number.NaN;
      if (!(n >= min && n <= max))
        fail(
          `invalid setting --${flag} = ${JSON.stringify(raw)}: allowed a number from ${min} to ${max} (plain decimal)`,
          EXIT.badSettings,
        );
      return n;
    };
    const referenceW = ref('referenceW', 'reference-w', 0, 100_000);
    const referenceV = ref('referenceV', 'reference-v', 0.1, 1000);
    const referenceA = ref('referenceA', 'reference-a', 0, 1000);
    const seconds = ref('seconds', 'seconds', 3, 120)!;
    if (referenceW === null && referenceV === null && referenceA === null)
      return fail('calibrate needs what the reference meter shows: --reference-w, --reference-a and/or --reference-v', EXIT.badSettings);
    try {
      const r = await calibrate(s, { referenceW, referenceV, referenceA, seconds: Math.round(seconds), fresh: flags.new === true }, logger);
      const f = r.file;
      if (flags.json) {
        console.log(JSON.stringify(f));
        return;
      }
      console.log(
        `measured ${r.point.measuredW.toFixed(4)} W (${r.point.measuredV.toFixed(4)} V, ${r.point.measuredA.toFixed(6)} A) over ${r.point.seconds.toFixed(0)} s, ${r.chipLabel}`,
      );
      console.log(
        `calibration ${f.id}: voltage gain ${f.voltageGain.toFixed(6)}, current gain ${f.currentGain.toFixed(6)}, current offset ${(f.currentOffsetA * 1000).toFixed(3)} mA (${f.method})`,
      );
      console.log(`stored in ${r.path}; it applies from the next start: sudo systemctl restart power-meter`);
    } catch (err) {
      if (err instanceof CalibrationError || err instanceof UnsteadyLoadError)
        return fail(`calibration refused: ${err.message}; nothing was stored`, EXIT.badSettings);
      if (err instanceof ChipMismatchError) return fail(wrongChip(err, s), EXIT.badSettings);
      if (err instanceof MeterRunningError) return fail(err.message);
      if (err instanceof Error) return fail(`${err.message}${sensorErrorHint(err)}`);
      throw err;
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

const ioid = program.command('ioid').description("the device's side of an ioID registration on IoTeX (the key never leaves the meter)");
/** `--registry` is the ioID commands' name for the --ioid-registry setting (checked by its parser). */
const withRegistry = (flags: Record<string, unknown>): Record<string, unknown> =>
  flags.registry === undefined ? flags : { ...flags, ioidRegistry: flags.registry };
const printResult = (r: { exit: number; out: string[]; err: string[] }): never => {
  for (const line of r.out) console.log(line);
  for (const line of r.err) logger.error(line);
  process.exit(r.exit);
};
withSettings(
  ioid
    .command('permit')
    .description(
      "print the EIP-712 Permit(owner, nonce) signature by the device key that ioIDRegistry.register takes, with the device's DID, DID document and the document's hash",
    ),
)
  .option('--owner <0x…>', 'the wallet that will send ioIDRegistry.register (the ioID is minted to it)')
  .option('--registry <0x…>', 'the ioIDRegistry contract (default: --ioid-registry)')
  .option('--chain-id <n>', 'the chain id (read from --rpc-url when given)')
  .option('--nonce <n>', "the registry's nonces(device) (read from the registry with --rpc-url when not given)")
  .option(
    '--json',
    'print {"device","owner","nonce","chainId","registry","v","r","s","digest","signature","did","didDocument","didDocumentText","didDocumentHash"}',
  )
  .action(async (flags: Record<string, unknown>) => {
    const s = settingsFrom(withRegistry(flags), true);
    const { ioIdPermitCommand } = await import('./ioid-command.js');
    printResult(await ioIdPermitCommand(s, flags as { owner?: string; chainId?: string; nonce?: string; json?: boolean }));
  });
withSettings(ioid.command('status').description("read the device's ioID registration: registered or not, its ioID, owner and project"))
  .option('--registry <0x…>', 'the ioIDRegistry contract (default: --ioid-registry)')
  .option('--json', 'print {"device","did","registry","registered","ioIdContract","ioId","owner","projectId","approved"}')
  .action(async (flags: Record<string, unknown>) => {
    const s = settingsFrom(withRegistry(flags), true);
    const { ioIdStatusCommand } = await import('./ioid-command.js');
    printResult(await ioIdStatusCommand(s, { json: flags.json === true }));
  });

/** A destructive command's confirmation: --yes, or "yes" typed at a terminal; otherwise exit 2 saying how. */
async function confirmed(flags: Record<string, unknown>, question: string): Promise<boolean> {
  if (flags.yes === true) return true;
  if (!process.stdin.isTTY) return false;
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(`${question} Type yes to go on: `)).trim().toLowerCase() === 'yes';
  } finally {
    rl.close();
  }
}

/** The outbox commands need the meter stopped: its lock says so. */
function outboxFailure(err: unknown, s: BackendSettings): never {
  if (err instanceof OutboxCorruptError)
    return fail(`${err.message}. First: power-meter outbox salvage --data-dir ${s.dataDir}`, EXIT.corruptData);
  if (err instanceof OutboxLockedError) return fail(`${outboxErrorText(err)} (sudo systemctl stop power-meter)`);
  if (err instanceof OutboxTooNewError) return fail(outboxErrorText(err));
  return fail(err instanceof Error ? err.message : String(err));
}

withSettings(
  outbox
    .command('export')
    .description(
      'print every undelivered reading as one JSON line {seq, createdAtMs, signedFor, powerW, timestampMs, body} (stop the meter first); the outbox is not changed',
    ),
).action((flags: Record<string, unknown>) => {
  const s = settingsFrom(flags);
  try {
    const r = exportBacklog(s, (line) => process.stdout.write(`${line}\n`));
    logger.info(`exported ${r.waiting} undelivered reading(s): ${r.groups.map(describeGroup).join('; ') || 'none'}`);
  } catch (err) {
    outboxFailure(err, s);
  }
});

withSettings(
  outbox
    .command('discard')
    .description(
      'remove every undelivered reading from the outbox, for good (stop the meter first; export them first if they matter); asks for confirmation, or --yes',
    ),
)
  .option('--yes', 'do not ask: discard')
  .action(async (flags: Record<string, unknown>) => {
    const s = settingsFrom(flags);
    try {
      const before = summarizeBacklog(s);
      if (before.waiting === 0) return void console.log('the outbox holds no undelivered reading: nothing to discard');
      const what = before.groups.map(describeGroup).join('; ');
      if (!(await confirmed(flags, `This removes ${before.waiting} undelivered reading(s) for good (${what}).`)))
        return fail(
          `not confirmed: nothing was discarded. ${before.waiting} reading(s) wait (${what}); save them with "power-meter outbox export --data-dir ${s.dataDir} > backlog.jsonl", then run this again with --yes`,
          EXIT.badSettings,
        );
      const n = discardBacklog(s);
      console.log(`discarded ${n} undelivered reading(s) (${what}); the totals (energy, rewards) keep them; start the meter again`);
    } catch (err) {
      outboxFailure(err, s);
    }
  });

withSettings(
  outbox
    .command('resign')
    .description(
      'sign every undelivered reading again for the current settings (--transport, the publish URL, --project-id, --project-version, --signed-keys) with the current identity: same power and time, new signature and sequence number (stop the meter first); asks for confirmation, or --yes',
    ),
)
  .option('--yes', 'do not ask: sign again')
  .action(async (flags: Record<string, unknown>) => {
    const s = settingsFrom(flags);
    try {
      const before = summarizeBacklog(s);
      if (before.waiting === 0) return void console.log('the outbox holds no undelivered reading: nothing to sign again');
      // Re-signing runs synchronously inside one outbox transaction: the key file's path only.
      if (s.keyUri !== '')
        return fail(
          'outbox resign signs with the key file (identity/device-key.pem); with --key-uri (a key in a PKCS#11 token) it is not available: let the backlog drain with the settings it was signed for, or export and discard it (power-meter outbox export / discard)',
          EXIT.badSettings,
        );
      const identity = loadIdentity(join(s.dataDir, 'identity'));
      if (s.transport === 'w3bstream-v2' && identity.curve !== 'secp256k1') return fail(p256ForV2(identity.keyFile), EXIT.badSettings);
      const to = signedForSettings(s);
      const target = to === 'w3bstream-v1' ? to : `${to}, project ${s.projectId} version ${s.projectVersion || '(default)'}`;
      const what = before.groups.map(describeGroup).join('; ');
      if (
        !(await confirmed(
          flags,
          `This signs ${before.waiting} undelivered reading(s) (${what}) again for ${target} with ${identity.deviceId}; their old signatures are gone.`,
        ))
      )
        return fail(
          `not confirmed: nothing was changed. Run this again with --yes to sign ${before.waiting} reading(s) for ${target}`,
          EXIT.badSettings,
        );
      const r = resignBacklog(s, identity);
      console.log(
        `signed ${r.resigned} reading(s) again for ${target} with ${identity.deviceId}${r.firstSeq === null ? '' : ` (sequence numbers ${r.firstSeq}-${r.lastSeq})`}${r.unreadable > 0 ? `; ${r.unreadable} held no reading to sign and were left as they were (export and discard them)` : ''}; start the meter again`,
      );
    } catch (err) {
      if (err instanceof IdentityError)
        return fail(`${err.message}; create the identity first: power-meter identity --data-dir ${s.dataDir} …(the same settings)`);
      outboxFailure(err, s);
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

addDevReceiverCommand(program, { log, fail });

program.parseAsync(process.argv).catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)));
