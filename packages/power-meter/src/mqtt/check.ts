import { constants, accessSync, existsSync, readFileSync } from 'node:fs';
import type { Check } from '../check.js';
import { createMqttClient, isProtocolRefusal, type MqttTls } from './connection.js';
import { safeBroker } from './output.js';
import { describeMqttError } from './problems.js';
import { readMqttTls } from './tls-files.js';
import { ENV_FILE } from '../hints.js';

/**
 * `doctor`: can this machine log in to the broker with the meter's user and password? Uses its
 * own client id (the daemon's would kick the running meter off the broker) and no last will.
 * Run interactively, the login is usually only in the root-only environment file: it is read
 * from there when readable.
 */
export async function checkMqtt(
  s: { mqttUrl: string; mqttUser: string; mqttPassword: string; mqttCa?: string; mqttCert?: string; mqttKey?: string },
  opts: { envFile?: string; timeoutMs?: number } = {},
): Promise<Check> {
  let tls: MqttTls;
  try {
    tls = readMqttTls({ mqttCa: s.mqttCa ?? '', mqttCert: s.mqttCert ?? '', mqttKey: s.mqttKey ?? '' });
  } catch (err) {
    return {
      name: 'mqtt',
      status: 'fail',
      detail: (err as Error).message,
      fix: 'fix the file or the setting (run doctor as the user the service runs as, or with sudo, when the file is only readable by it)',
    };
  }
  const envFile = opts.envFile ?? ENV_FILE;
  let { mqttUser: username, mqttPassword: password } = s;
  let from = 'the environment';
  if (!username && !password && existsSync(envFile)) {
    if (!canRead(envFile))
      return {
        name: 'mqtt',
        status: 'warn',
        detail: `cannot read ${envFile} (root only) to get the MQTT login`,
        fix: 'run sudo power-meter doctor to check the broker login',
      };
    const env = parseEnvFile(readFileSync(envFile, 'utf8'));
    username = env.POWER_METER_MQTT_USER ?? '';
    password = env.POWER_METER_MQTT_PASSWORD ?? '';
    from = envFile;
  }
  const broker = safeBroker(s.mqttUrl);
  const login = username ? `as the configured user (from ${from})` : 'without a login';
  const options = {
    clientId: `power-meter-doctor-${process.pid}`,
    username: username || undefined,
    password: password || undefined,
    reconnectPeriod: 0,
    connectTimeout: opts.timeoutMs ?? 5000,
  };
  try {
    let v311 = false;
    await connectOnce(s.mqttUrl, tls, options).catch(async (err: Error) => {
      if (!isProtocolRefusal(err)) throw err;
      v311 = true;
      await connectOnce(s.mqttUrl, tls, options, true);
    });
    return {
      name: 'mqtt',
      status: 'ok',
      detail: `${broker} accepted a connection ${login}${v311 ? ' (MQTT 3.1.1: it refuses MQTT 5)' : ''}; nothing was published`,
    };
  } catch (err) {
    const p = describeMqttError(err as Error);
    if (p.kind === 'login')
      return {
        name: 'mqtt',
        status: 'fail',
        detail: `${broker} refused the login ${login}: ${(err as Error).message.replace(/^Connection refused: /, '')}`,
        fix: `set POWER_METER_MQTT_USER and POWER_METER_MQTT_PASSWORD in ${ENV_FILE} to a user of the broker (Home Assistant: a user of the Mosquitto add-on), then sudo systemctl restart power-meter`,
      };
    const certificate = p.kind === 'certificate' || p.kind === 'client-certificate';
    return { name: 'mqtt', status: 'fail', detail: `${broker}: ${certificate ? 'certificate problem: ' : ''}${p.text}`, fix: p.fix };
  }
}

/** One connection through the meter's own client (packet guard, TLS files), closed at once. */
function connectOnce(url: string, tls: MqttTls, client: Parameters<typeof createMqttClient>[0]['client'], v311 = false): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = createMqttClient({ url, tls, client, protocolVersion: v311 ? 4 : 5 });
    c.once('connect', () => {
      resolve();
      c.end();
    });
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
    // A close before CONNACK without an error (the broker hung up): say so rather than hang.
    c.once('close', () => reject(new Error('the broker closed the connection before answering')));
  });
}

/** KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments, optional quotes). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m || line.trim().startsWith('#')) continue;
    let v = m[2] ?? '';
    if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0])) v = v.slice(1, -1);
    out[m[1]!] = v;
  }
  return out;
}

function canRead(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}
