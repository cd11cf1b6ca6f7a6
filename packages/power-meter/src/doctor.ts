import { constants, accessSync, existsSync, readFileSync, statSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import tls from 'node:tls';
import { dirname, join } from 'node:path';
import { Ina219, openI2cBus } from '@power-meter/ina219';
import { KEY_FILE } from '@power-meter/w3bstream';
import { buildFloorMs } from './meter.js';
import type { BackendSettings } from './settings.js';
import { decideClockSync, probeClock } from './timesync.js';

/**
 * `power-meter doctor`: every check says what it found and, when something is wrong, how to
 * fix it. Exit 0 only when nothing failed (warnings do not fail).
 */
export interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  fix?: string;
}

export async function runDoctor(s: BackendSettings, opts: { timesyncRoot?: string; devRoot?: string } = {}): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (c: Check): void => void checks.push(c);
  const dev = opts.devRoot ?? '/dev';
  add({ name: 'config', status: 'ok', detail: 'settings are valid' });

  // I2C and the chip.
  if (s.sensor === 'sim') {
    add({ name: 'sensor', status: 'ok', detail: 'simulated sensor (--sensor sim): no I2C needed' });
  } else {
    const bus = join(dev, `i2c-${s.i2cBus}`);
    if (!existsSync(bus)) {
      add({ name: 'i2c', status: 'fail', detail: `${bus} does not exist`, fix: 'enable I2C: sudo raspi-config nonint do_i2c 0 (or dtparam=i2c_arm=on in /boot/firmware/config.txt), then reboot' });
    } else if (!canAccess(bus, constants.R_OK | constants.W_OK)) {
      add({ name: 'i2c', status: 'fail', detail: `no read/write permission on ${bus}`, fix: 'sudo adduser $USER i2c, then log in again (the service runs with SupplementaryGroups=i2c)' });
    } else {
      add({ name: 'i2c', status: 'ok', detail: `${bus} is present and accessible` });
      try {
        const b = await openI2cBus(s.i2cBus);
        try {
          const driver = new Ina219(b, { address: s.i2cAddress, shuntOhms: s.shuntOhms, maxCurrentA: s.maxCurrentA }, { attempts: 2 });
          const config = await driver.readRegister('config');
          add({ name: 'ina219', status: 'ok', detail: `INA219 answers at 0x${s.i2cAddress.toString(16)} (configuration 0x${config.toString(16)})` });
        } finally {
          await b.close();
        }
      } catch (err) {
        add({ name: 'ina219', status: 'fail', detail: err instanceof Error ? err.message : String(err), fix: 'check wiring and --i2c-address; i2cdetect -y 1 lists the addresses that answer' });
      }
    }
  }

  // SPI for the display (informational for the backend, but users run doctor for both).
  const spi = join(dev, 'spidev0.0');
  if (existsSync(spi)) add({ name: 'spi', status: 'ok', detail: `${spi} is present (display)` });
  else add({ name: 'spi', status: 'warn', detail: `${spi} does not exist (only the display needs it)`, fix: 'enable SPI: sudo raspi-config nonint do_spi 0, then reboot; or run the display with --panel png' });

  // Data directory and key. Doctor only looks: creating the directory here (perhaps under sudo)
  // would leave it owned by the wrong user.
  if (!existsSync(s.dataDir)) {
    let parent = dirname(s.dataDir);
    while (!existsSync(parent) && parent !== dirname(parent)) parent = dirname(parent);
    if (canAccess(parent, constants.W_OK)) add({ name: 'data-dir', status: 'warn', detail: `${s.dataDir} does not exist yet; it is created on first start` });
    else add({ name: 'data-dir', status: 'fail', detail: `${s.dataDir} does not exist and ${parent} is not writable`, fix: `sudo install -d -o $USER ${s.dataDir}, or choose --data-dir` });
  } else if (canAccess(s.dataDir, constants.W_OK)) {
    add({ name: 'data-dir', status: 'ok', detail: `${s.dataDir} is writable` });
  } else {
    add({ name: 'data-dir', status: 'fail', detail: `${s.dataDir} is not writable by this user`, fix: `sudo chown -R $USER ${s.dataDir}, or choose --data-dir` });
  }
  const key = join(s.dataDir, 'identity', KEY_FILE);
  if (!existsSync(key)) add({ name: 'identity', status: 'warn', detail: `no key yet at ${key}`, fix: 'it is created on first start (power-meter identity creates it now)' });
  else {
    const mode = statSync(key).mode & 0o777;
    if (mode & 0o077) add({ name: 'identity', status: 'fail', detail: `${key} has mode ${mode.toString(8)}: other users can read the private key`, fix: `chmod 600 ${key}` });
    else add({ name: 'identity', status: 'ok', detail: `${key} is private (mode ${mode.toString(8)})` });
  }

  // Clock.
  const clock = decideClockSync(await probeClock({ floorMs: buildFloorMs(), root: opts.timesyncRoot }));
  if (clock.state === 'unsynced') add({ name: 'clock', status: 'fail', detail: clock.reason, fix: 'check the network and NTP: timedatectl status; readings are held (not lost) until the clock syncs' });
  else if (clock.state === 'unknown') add({ name: 'clock', status: 'warn', detail: clock.reason });
  else add({ name: 'clock', status: 'ok', detail: clock.reason });

  // Endpoint.
  if (!s.publishUrl) {
    add({ name: 'publish', status: 'warn', detail: 'no publish URL: readings are measured, signed and stored but not sent', fix: 'set "publishUrl" in /etc/power-meter/config.json (W3bstream project settings) and restart' });
  } else {
    const envFile = '/etc/power-meter/power-meter.env';
    const envToken = !s.publisherToken && canAccess(envFile, constants.R_OK) && /^\s*W3BSTREAM_PUBLISHER_TOKEN=\S+/m.test(readFileSync(envFile, 'utf8'));
    if (envToken) add({ name: 'token', status: 'ok', detail: `publisher token is set in ${envFile} (not shown)` });
    else if (!s.publisherToken && existsSync(envFile) && !canAccess(envFile, constants.R_OK))
      add({ name: 'token', status: 'warn', detail: `cannot read ${envFile} (root only) to check the token`, fix: 'run sudo power-meter doctor to check it' });
    else if (!s.publisherToken) add({ name: 'token', status: 'fail', detail: 'publish URL set but no publisher token', fix: 'put W3BSTREAM_PUBLISHER_TOKEN=<token> in /etc/power-meter/power-meter.env (mode 600) and restart' });
    else add({ name: 'token', status: 'ok', detail: 'publisher token is set (not shown)' });
    add(await checkEndpoint(s.publishUrl));
  }
  if (s.mqttUrl) add(await (await import('./mqtt/check.js')).checkMqtt(s));
  return checks;
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
    return { name: 'endpoint', status: 'fail', detail: `cannot resolve ${u.hostname} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, fix: 'check the publish URL and DNS (cat /etc/resolv.conf)' };
  }
  return new Promise<Check>((resolve) => {
    const done = (c: Check, sock: net.Socket): void => {
      sock.destroy();
      resolve(c);
    };
    const opts = { host: u.hostname, port, servername: u.hostname, timeout: 5000 };
    const sock: net.Socket = u.protocol === 'https:' ? tls.connect(opts) : net.connect(opts);
    sock.once(u.protocol === 'https:' ? 'secureConnect' : 'connect', () => done({ name: 'endpoint', status: 'ok', detail: `${u.host} reachable${u.protocol === 'https:' ? ' over TLS (certificate valid)' : ' (plain HTTP: fine for a local receiver only)'}; no event was posted` }, sock));
    sock.once('timeout', () => done({ name: 'endpoint', status: 'fail', detail: `${u.host} did not answer within 5 s`, fix: 'check the network, a firewall, or the host in the publish URL' }, sock));
    sock.once('error', (err: NodeJS.ErrnoException) => done({ name: 'endpoint', status: 'fail', detail: `${u.host}: ${err.code ?? err.message}`, fix: 'check the publish URL (host, port, https) and the network' }, sock));
  });
}
