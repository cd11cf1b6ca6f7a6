import { constants, accessSync, existsSync, lstatSync, readFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import tls from 'node:tls';
import { dirname, join } from 'node:path';
import { CHIPS, ChipMismatchError, RegisterIo, checkIdentity as checkChipIdentity, openI2cBus, type ChipSpec } from '@power-meter/ina219';
import { KEY_FILE, TokenError } from '@power-meter/w3bstream';
import { readState } from '@power-meter/meter-files';
import { readCalibration } from './calibration/store.js';
import { moduleFor, openMeterKey } from './key/meter-key.js';
import { TokenKeyError, describeTokenFault } from './key/token-key.js';
import { buildFloorMs } from './meter.js';
import { sensorChip, type BackendSettings } from './settings.js';
import { v2Dialect } from './transport.js';
import { decideClockSync, probeClock } from './timesync.js';
import { ENV_FILE } from './hints.js';
import type { Check } from './check.js';

export type { Check } from './check.js';

/**
 * `power-meter doctor`: every check says what it found and, when something is wrong, how to
 * fix it. Exit 0 only when nothing failed (warnings do not fail).
 */

export interface DoctorOptions {
  timesyncRoot?: string;
  devRoot?: string;
  /** Where the token file is looked for (tests). */
  envFile?: string;
  /** Runs `systemctl show` (tests pass a stand-in); null skips the services check. */
  systemctl?: ((args: string[]) => string | null) | null;
}

/** Every check, in the order printed. Each is small and independent; none changes anything. */
export async function runDoctor(s: BackendSettings, opts: DoctorOptions = {}): Promise<Check[]> {
  const dev = opts.devRoot ?? '/dev';
  return [
    { name: 'config', status: 'ok', detail: 'settings are valid' },
    ...(await checkSensor(s, dev)),
    checkCalibration(s),
    checkSpi(dev),
    checkDataDir(s.dataDir),
    s.keyUri === '' ? checkIdentity(s.dataDir) : await checkTokenKey(s, opts.envFile ?? '/etc/power-meter/power-meter.env'),
    await checkClock(opts.timesyncRoot),
    ...(await checkPublishing(s, opts.envFile ?? ENV_FILE)),
    // Loaded only when MQTT is on: the broker library stays out of every other run.
    ...(s.mqttUrl ? [await (await import('./mqtt/check.js')).checkMqtt(s)] : []),
    ...(s.rpcUrl && s.rewardToken ? [await (await import('./chain/check.js')).checkRewardBalance(s)] : []),
    ...(s.rpcUrl && s.ioidRegistry ? [await (await import('./chain/check.js')).checkIoId(s)] : []),
    ...checkServices(opts.systemctl === undefined ? systemctlShow : opts.systemctl),
  ];
}

/** I2C bus, permissions and the chip itself (nothing to check for the simulated sensor). */
async function checkSensor(s: BackendSettings, dev: string): Promise<Check[]> {
  if (s.sensor === 'sim')
    return [
      {
        name: 'sensor',
        status: 'ok',
        detail: `simulated ${CHIPS[s.simChip].name} (--sensor sim --sim-chip ${s.simChip}, load ${s.simLoad}): no I2C needed`,
      },
    ];
  const bus = join(dev, `i2c-${s.i2cBus}`);
  if (!existsSync(bus))
    return [
      {
        name: 'i2c',
        status: 'fail',
        detail: `${bus} does not exist`,
        fix: 'enable I2C: sudo raspi-config nonint do_i2c 0 (or dtparam=i2c_arm=on in /boot/firmware/config.txt), then reboot',
      },
    ];
  if (!canAccess(bus, constants.R_OK | constants.W_OK))
    return [
      {
        name: 'i2c',
        status: 'fail',
        detail: `no read/write permission on ${bus}`,
        fix: 'sudo adduser $USER i2c, then log in again (the service runs with SupplementaryGroups=i2c)',
      },
    ];
  return [{ name: 'i2c', status: 'ok', detail: `${bus} is present and accessible` }, await checkChip(s)];
}

/**
 * The chip at the address, without touching its settings (the meter may be running): its ID
 * registers where it has them, and for the INA219, which has none, that no other chip names
 * itself there.
 */
async function checkChip(s: BackendSettings): Promise<Check> {
  const chip: ChipSpec = CHIPS[sensorChip(s)];
  const name = chip.id;
  try {
    const b = await openI2cBus(s.i2cBus);
    try {
      const io = new RegisterIo(b, s.i2cAddress, `${chip.name} at 0x${s.i2cAddress.toString(16)}`, { attempts: 2 });
      await checkChipIdentity(io, chip);
      const config = await io.read(chip.registers.config!);
      const id = chip.identity
        ? `manufacturer 0x${chip.identity.manufacturerId.toString(16)} ("TI"), die 0x${chip.identity.dieId.toString(16)}`
        : 'it has no ID registers';
      return {
        name,
        status: 'ok',
        detail: `${chip.name} answers at 0x${s.i2cAddress.toString(16)} (${id}; configuration 0x${config.toString(16)})`,
      };
    } finally {
      await b.close();
    }
  } catch (err) {
    if (err instanceof ChipMismatchError)
      return {
        name,
        status: 'fail',
        detail: err.message,
        fix: err.foundId
          ? `set --sensor ${err.foundId} (config "sensor": "${err.foundId}"), or connect an ${chip.name}`
          : `check --sensor and --i2c-address; i2cdetect -y ${s.i2cBus} lists the addresses that answer`,
      };
    return {
      name,
      status: 'fail',
      detail: err instanceof Error ? err.message : String(err),
      fix: `check wiring and --i2c-address; i2cdetect -y ${s.i2cBus} lists the addresses that answer`,
    };
  }
}

/** The calibration the meter applies (calibration.json), or why it does not. */
function checkCalibration(s: BackendSettings): Check {
  const stored = readCalibration(s.dataDir, { chip: sensorChip(s), simulated: s.sensor === 'sim', fullScaleA: s.maxCurrentA });
  if (stored.state === 'none')
    return {
      name: 'calibration',
      status: 'ok',
      detail:
        "none: the figures carry the chip's and the shunt's own tolerance; power-meter calibrate corrects them against a reference meter",
    };
  if (stored.state === 'unusable')
    return {
      name: 'calibration',
      status: 'fail',
      detail: `not applied: ${stored.problem}`,
      fix: 'stop the meter, run power-meter calibrate --new --reference-w <watts> with a steady load, then start it',
    };
  const f = stored.file;
  return {
    name: 'calibration',
    status: 'ok',
    detail: `${f.id} of ${f.createdAt.slice(0, 10)} (${f.method}): voltage gain ${f.voltageGain.toFixed(5)}, current gain ${f.currentGain.toFixed(5)}, offset ${(f.currentOffsetA * 1000).toFixed(3)} mA`,
  };
}

/** SPI for the display (informational for the backend, but users run doctor for both). */
function checkSpi(dev: string): Check {
  const spi = join(dev, 'spidev0.0');
  if (existsSync(spi)) return { name: 'spi', status: 'ok', detail: `${spi} is present (display)` };
  return {
    name: 'spi',
    status: 'warn',
    detail: `${spi} does not exist (only the display needs it)`,
    fix: 'enable SPI: sudo raspi-config nonint do_spi 0, then reboot; or run the display with --panel png',
  };
}

/** Doctor only looks: creating the directory here (perhaps under sudo) would leave it owned by the wrong user. */
function checkDataDir(dataDir: string): Check {
  if (existsSync(dataDir)) {
    if (canAccess(dataDir, constants.W_OK)) return { name: 'data-dir', status: 'ok', detail: `${dataDir} is writable` };
    return {
      name: 'data-dir',
      status: 'fail',
      detail: `${dataDir} is not writable by this user`,
      fix: `sudo chown -R $USER ${dataDir}, or choose --data-dir`,
    };
  }
  let parent = dirname(dataDir);
  while (!existsSync(parent) && parent !== dirname(parent)) parent = dirname(parent);
  if (canAccess(parent, constants.W_OK))
    return { name: 'data-dir', status: 'warn', detail: `${dataDir} does not exist yet; it is created on first start` };
  return {
    name: 'data-dir',
    status: 'fail',
    detail: `${dataDir} does not exist and ${parent} is not writable`,
    fix: `sudo install -d -o $USER ${dataDir}, or choose --data-dir`,
  };
}

function checkIdentity(dataDir: string): Check {
  const key = join(dataDir, 'identity', KEY_FILE);
  if (!existsSync(key))
    return {
      name: 'identity',
      status: 'warn',
      detail: `no key yet at ${key}`,
      fix: 'it is created on first start (power-meter identity creates it now)',
    };
  const mode = statSync(key).mode & 0o777;
  if (mode & 0o077)
    return {
      name: 'identity',
      status: 'fail',
      detail: `${key} has mode ${mode.toString(8)}: other users can read the private key`,
      fix: `chmod 600 ${key}`,
    };
  return { name: 'identity', status: 'ok', detail: `${key} is private (mode ${mode.toString(8)})` };
}

/** The PIN for doctor's own login: the environment, else (as root) the environment file. */
function pinFrom(envFile: string): string {
  if (process.env.POWER_METER_PKCS11_PIN) return process.env.POWER_METER_PKCS11_PIN;
  if (!canAccess(envFile, constants.R_OK)) return '';
  return /^\s*POWER_METER_PKCS11_PIN=(.*)$/m.exec(readFileSync(envFile, 'utf8'))?.[1]?.trim() ?? '';
}

/**
 * The key in a PKCS#11 token (`--key-uri`): the running meter's own view when it runs (its
 * state.json; doctor does not log in beside it), else doctor opens the key itself, through the
 * same PIN guard (a PIN the token refused before is not tried: doctor never adds a wrong attempt).
 */
async function checkTokenKey(s: BackendSettings, envFile: string): Promise<Check> {
  const module = moduleFor(s);
  if (!existsSync(module))
    return {
      name: 'signing-key',
      status: 'fail',
      detail: `the PKCS#11 module ${module} does not exist`,
      fix: "install the token's library (Debian libtpm2-pkcs11-1 for a TPM 2.0) or correct --pkcs11-module",
    };
  const st = await readState(s.dataDir);
  // Running: state.json is a link into the RAM directory (a clean stop leaves a real file) and fresh.
  const linked = (() => {
    try {
      return lstatSync(join(s.dataDir, 'state.json')).isSymbolicLink();
    } catch {
      return false;
    }
  })();
  const fresh = linked && st.ok && Date.now() - st.state.updatedAtMs < Math.max(3 * st.state.windowS * 1000, 15_000);
  if (st.ok && fresh && st.state.signing !== undefined) {
    const g = st.state.signing;
    if (g.state === 'ok')
      return { name: 'signing-key', status: 'ok', detail: `the running meter signs with the key in the token (${s.keyUri})` };
    const kinds = ['module', 'no-token', 'pin-incorrect', 'pin-locked', 'key-missing', 'curve', 'other-key', 'timeout', 'device'] as const;
    const kind = kinds.find((k) => describeTokenFault(k, '').reason === g.reason) ?? 'device';
    return {
      name: 'signing-key',
      status: 'fail',
      detail: `the running meter cannot sign: ${g.reason}; ${g.unsigned} reading(s) kept unsigned${g.pinAttempts > 0 ? `; the token refused the PIN ${g.pinAttempts} time(s)` : ''}`,
      fix: describeTokenFault(kind, 'see journalctl -u power-meter -p warning').advice,
    };
  }
  try {
    const key = await openMeterKey(s, { log: () => {}, warn: () => {}, pin: pinFrom(envFile), curve: s.curve });
    const ks = key.status();
    const info = key.token?.info;
    await key.close();
    if (ks.state === 'fault') return { name: 'signing-key', status: 'fail', detail: `${ks.reason}`, fix: ks.advice ?? undefined };
    return {
      name: 'signing-key',
      status: info?.extractable === false && info.sensitive !== false ? 'ok' : 'warn',
      detail: `key ${key.curve} in token "${info?.token.label}" (${s.keyUri}), device ${key.deviceId}: ${info?.sensitive ? 'sensitive' : 'not marked sensitive'}, ${info?.extractable === false ? 'not extractable' : 'EXTRACTABLE'}`,
    };
  } catch (err) {
    if (err instanceof TokenError || err instanceof TokenKeyError) {
      const w = describeTokenFault(err.kind, err.message);
      return { name: 'signing-key', status: 'fail', detail: w.reason, fix: w.advice };
    }
    return { name: 'signing-key', status: 'fail', detail: err instanceof Error ? err.message : String(err) };
  }
}

async function checkClock(timesyncRoot: string | undefined): Promise<Check> {
  const clock = decideClockSync(await probeClock({ floorMs: buildFloorMs(), root: timesyncRoot }));
  if (clock.state === 'unsynced')
    return {
      name: 'clock',
      status: 'fail',
      detail: clock.reason,
      fix: 'check the network and NTP: timedatectl status; readings are held (not lost) until the clock syncs',
    };
  if (clock.state === 'unknown') return { name: 'clock', status: 'warn', detail: clock.reason };
  return { name: 'clock', status: 'ok', detail: clock.reason };
}

/** The publish URL, the token (never shown) and whether the endpoint answers (nothing is posted). */
async function checkPublishing(s: BackendSettings, envFile: string): Promise<Check[]> {
  if (!s.publishUrl)
    return [
      {
        name: 'publish',
        status: 'warn',
        detail: 'no publish URL: readings are measured, signed and stored but not sent',
        fix: 'set "publishUrl" in /etc/power-meter/config.json (W3bstream project settings) and restart',
      },
    ];
  // W3bstream 2 has no token: the node identifies the device by the signature (the key check covers it).
  if (s.transport === 'w3bstream-v2')
    return [
      {
        name: 'transport',
        status: 'ok',
        detail: `W3bstream 2 (${v2Dialect(s) === 'task' ? 'POST /v1/task' : 'POST /message, a node before v0.17'}): project ${s.projectId} version ${s.projectVersion === '' ? "(the project's default)" : JSON.stringify(s.projectVersion)}${s.signedKeys.length > 0 ? `, signed keys ${s.signedKeys.join(',')}` : ''}, no token needed (the device is its signature)`,
      },
      await checkEndpoint(s.publishUrl),
      ...(await checkDelivery(s)),
    ];
  return [checkToken(s.publisherToken, envFile), await checkEndpoint(s.publishUrl)];
}

/**
 * What the running (or last) meter wrote in state.json about delivery: a device the node does not
 * approve, an unknown project, and the newest followed task (settled, failed, still on its way).
 */
async function checkDelivery(s: BackendSettings): Promise<Check[]> {
  const r = await readState(s.dataDir);
  if (!r.ok) return [];
  const p = r.state.publishing;
  const checks: Check[] = [];
  if (p.state === 'failing' && /^device not approved/.test(p.reason ?? ''))
    checks.push({
      name: 'approval',
      status: 'fail',
      detail: `the node answers 403 "device does not have permission": ${p.reason}; ${p.waiting} reading(s) wait, none lost`,
      fix: `register this device's ioID for project ${s.projectId}: the owner runs the registration with the device's permit (power-meter ioid permit --owner <owner wallet> …, README "Put the meter on IoTeX"); the meter delivers everything once the node sees the registration`,
    });
  else if (p.state === 'failing' && /^unknown project/.test(p.reason ?? ''))
    checks.push({
      name: 'project',
      status: 'fail',
      detail: `the node does not know this project: ${p.reason}; ${p.waiting} reading(s) wait`,
      fix: 'check --project-id and --project-version against the project registered on the chain the node watches (an empty version takes the default)',
    });
  else if (p.state === 'failing')
    checks.push({
      name: 'delivery',
      status: 'fail',
      detail: `failing: ${p.reason ?? 'error'}; ${p.waiting} reading(s) wait`,
      fix: 'see journalctl -u power-meter -p warning -b',
    });
  const t = p.task;
  if (t) {
    const failed = t.failedCount > 0 ? `; ${t.failedCount} followed task(s) failed since the meter started` : '';
    if (t.state === 'failed' || t.state === 'error')
      checks.push({
        name: 'task',
        status: 'warn',
        detail: `task ${t.id} ${t.state}: ${t.error ?? 'no reason given'}${failed}`,
        fix: "the node took the reading but its prover failed the task: the project's owner sees why on the node (GET /v1/task/<id>)",
      });
    else
      checks.push({
        name: 'task',
        status: 'ok',
        detail: `task ${t.id} ${t.state}${t.txHash ? ` (transaction ${t.txHash})` : ''}${failed}`,
      });
  }
  return checks;
}

function checkToken(token: string, envFile: string): Check {
  if (token) return { name: 'token', status: 'ok', detail: 'publisher token is set (not shown)' };
  if (existsSync(envFile) && !canAccess(envFile, constants.R_OK))
    return {
      name: 'token',
      status: 'warn',
      detail: `cannot read ${envFile} (root only) to check the token`,
      fix: 'run sudo power-meter doctor to check it',
    };
  const inFile = canAccess(envFile, constants.R_OK) && /^\s*W3BSTREAM_PUBLISHER_TOKEN=\S+/m.test(readFileSync(envFile, 'utf8'));
  if (inFile) return { name: 'token', status: 'ok', detail: `publisher token is set in ${envFile} (not shown)` };
  return {
    name: 'token',
    status: 'fail',
    detail: 'publish URL set but no publisher token',
    fix: `put W3BSTREAM_PUBLISHER_TOKEN=<token> in ${envFile} (mode 600) and restart`,
  };
}

const UNITS = ['power-meter.service', 'power-meter-display.service'] as const;

/**
 * The installed services as systemd sees them: failed, restarting, or running with a problem in
 * their status line (a display whose redraws fail says so there). Skipped where the units are
 * not installed or systemctl is missing.
 */
function checkServices(show: ((args: string[]) => string | null) | null): Check[] {
  if (show === null) return [];
  const checks: Check[] = [];
  for (const unit of UNITS) {
    const out = show(['show', unit, '--property=LoadState,ActiveState,SubState,NRestarts,StatusText']);
    if (out === null) return checks;
    const p = Object.fromEntries(out.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    if (p.LoadState !== 'loaded') continue;
    const name = unit.replace('.service', '');
    const logs = `journalctl -u ${name} -p warning -b`;
    const status = p.StatusText ? `; status: ${p.StatusText}` : '';
    if (p.ActiveState === 'failed' || p.SubState === 'auto-restart')
      checks.push({
        name,
        status: 'fail',
        detail: `${unit} is ${p.ActiveState} (${p.SubState}), restarted ${p.NRestarts ?? '?'} times${status}`,
        fix: `see why: systemctl status ${name}; ${logs}`,
      });
    else if (p.ActiveState !== 'active')
      checks.push({ name, status: 'warn', detail: `${unit} is ${p.ActiveState}`, fix: `sudo systemctl start ${name}` });
    else if (/^(fault|failing|error)/i.test(p.StatusText ?? ''))
      checks.push({ name, status: 'fail', detail: `${unit} is running but reports a problem${status}`, fix: `see ${logs}` });
    else
      checks.push({
        name,
        status: 'ok',
        detail: `${unit} is running${Number(p.NRestarts) > 0 ? ` (restarted ${p.NRestarts} times)` : ''}${status}`,
      });
  }
  return checks;
}

function systemctlShow(args: string[]): string | null {
  const r = spawnSync('systemctl', args, { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout : null;
}

function canAccess(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

async function checkEndpoint(url: string): Promise<Check> {
  const u = new URL(url);
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  try {
    await lookup(u.hostname);
  } catch (err) {
    return {
      name: 'endpoint',
      status: 'fail',
      detail: `cannot resolve ${u.hostname} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      fix: 'check the publish URL and DNS (cat /etc/resolv.conf)',
    };
  }
  return new Promise<Check>((resolve) => {
    const done = (c: Check, sock: net.Socket): void => {
      sock.destroy();
      resolve(c);
    };
    const opts = { host: u.hostname, port, servername: u.hostname, timeout: 5000 };
    const sock: net.Socket = u.protocol === 'https:' ? tls.connect(opts) : net.connect(opts);
    sock.once(u.protocol === 'https:' ? 'secureConnect' : 'connect', () =>
      done(
        {
          name: 'endpoint',
          status: 'ok',
          detail: `${u.host} reachable${u.protocol === 'https:' ? ' over TLS (certificate valid)' : ' (plain HTTP: fine for a local receiver only)'}; no event was posted`,
        },
        sock,
      ),
    );
    sock.once('timeout', () =>
      done(
        {
          name: 'endpoint',
          status: 'fail',
          detail: `${u.host} did not answer within 5 s`,
          fix: 'check the network, a firewall, or the host in the publish URL',
        },
        sock,
      ),
    );
    sock.once('error', (err: NodeJS.ErrnoException) =>
      done(
        {
          name: 'endpoint',
          status: 'fail',
          detail: `${u.host}: ${err.code ?? err.message}`,
          fix: 'check the publish URL (host, port, https) and the network',
        },
        sock,
      ),
    );
  });
}

/** Prints the checks (text with fixes, or one JSON object); true when nothing failed. */
export function printDoctor(checks: Check[], json: boolean, print: (text: string) => void): boolean {
  const failed = checks.filter((c) => c.status === 'fail').length;
  if (json) {
    print(JSON.stringify({ ok: failed === 0, failed, checks }));
    return failed === 0;
  }
  for (const c of checks)
    print(
      `${c.status === 'ok' ? 'ok  ' : c.status === 'warn' ? 'warn' : 'FAIL'} ${c.name.padEnd(9)} ${c.detail}${c.fix ? `\n     fix: ${c.fix}` : ''}`,
    );
  print(failed === 0 ? 'all checks passed' : `${failed} problem(s) found`);
  return failed === 0;
}
