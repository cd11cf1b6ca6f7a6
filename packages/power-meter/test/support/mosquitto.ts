import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { freePort } from '../../../../test/support/free-port.js';

/**
 * A real Mosquitto broker for the tests (Debian package `mosquitto`, installed by
 * `./install-requirements.sh --test`): its own config and password file in a temporary
 * directory, a free loopback port, stopped by its PID. A system broker the package may have
 * started is never used or touched.
 */
export interface Broker {
  port: number;
  /** mqtt://127.0.0.1:<port>, or mqtts:// with `tls`. */
  url: string;
  user: string;
  password: string;
  /** Stops the broker process (SIGTERM, or SIGKILL) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port, same users (retained messages are not persisted). */
  start(): Promise<void>;
  log(): string;
}

function binary(name: string, dirs: string[]): string {
  for (const d of [...dirs, ...(process.env.PATH ?? '').split(':')]) if (d && existsSync(join(d, name))) return join(d, name);
  throw new Error(
    `${name} not found: the MQTT tests need a real broker. Install it with ./install-requirements.sh --test (Debian package mosquitto)`,
  );
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A TLS listener instead of plain MQTT: the broker's certificate and key, and its CA for client certificates. */
export interface BrokerTls {
  certFile: string;
  keyFile: string;
  /** CA that signs the client certificates it accepts (with requireCertificate). */
  caFile?: string;
  /** Refuse clients without a certificate signed by caFile (mosquitto require_certificate). */
  requireCertificate?: boolean;
}

export async function startBroker(opts: { tls?: BrokerTls } = {}): Promise<Broker> {
  const mosquitto = binary('mosquitto', ['/usr/sbin', '/usr/local/sbin']);
  const passwd = binary('mosquitto_passwd', ['/usr/bin', '/usr/local/bin']);
  const dir = mkdtempSync(join(tmpdir(), 'pm-mosquitto-'));
  const user = 'meter';
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const pwFile = join(dir, 'passwd');
  const r = spawnSync(passwd, ['-b', '-c', pwFile, user, password], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mosquitto_passwd failed: ${r.stderr}`);
  let port = 0;
  let proc: ChildProcess | null = null;
  let out = '';

  const launch = async (): Promise<boolean> => {
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        ...(opts.tls
          ? [
              `certfile ${opts.tls.certFile}`,
              `keyfile ${opts.tls.keyFile}`,
              ...(opts.tls.caFile ? [`cafile ${opts.tls.caFile}`] : []),
              `require_certificate ${opts.tls.requireCertificate === true}`,
            ]
          : []),
        'allow_anonymous false',
        `password_file ${pwFile}`,
        'persistence false',
        'log_dest stderr',
        'log_type error',
        'log_type warning',
        'log_type notice',
        'log_type information',
        // As root, mosquitto would switch to the `mosquitto` user, which cannot read this directory.
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        '',
      ].join('\n'),
    );
    const p = spawn(mosquitto, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    p.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    const t0 = Date.now();
    while (Date.now() - t0 < 20_000) {
      if (p.exitCode !== null || p.signalCode !== null) return false;
      if (await portOpen(port)) return true;
      await new Promise((res) => setTimeout(res, 50));
    }
    p.kill('SIGKILL');
    throw new Error(`mosquitto did not listen on 127.0.0.1:${port} within 20 s:\n${out}`);
  };

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((res) => p.once('exit', () => res()));
    p.kill(signal);
    await exited;
  };

  // A port found free can be taken before mosquitto binds it: then try another.
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    if (await launch()) break;
    if (attempt >= 4) throw new Error(`mosquitto would not start:\n${out}`);
  }
  return {
    port,
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    user,
    password,
    stop,
    async start() {
      if (!(await launch())) throw new Error(`mosquitto did not restart on port ${port}:\n${out}`);
    },
    log: () => out,
  };
}

export interface Seen {
  topic: string;
  payload: string;
  retain: boolean;
}

/** A subscriber like Home Assistant (by default everything under the discovery prefix and the meter's topics). */
export async function subscriber(
  b: Broker,
  onCleanup: (fn: () => Promise<unknown>) => void,
  filters = ['homeassistant/#', 'power-meter/#'],
  extra: IClientOptions = {},
): Promise<{ client: MqttClient; seen: Seen[] }> {
  const client = await connectAsync(b.url, {
    username: b.user,
    password: b.password,
    reconnectPeriod: 200,
    clientId: `test-${Math.random()}`,
    ...extra,
  });
  onCleanup(() => client.endAsync(true));
  const seen: Seen[] = [];
  client.on('message', (topic, payload, packet) => seen.push({ topic, payload: payload.toString(), retain: packet.retain }));
  await client.subscribeAsync(filters);
  return { client, seen };
}
