import { constants, accessSync, existsSync, readFileSync } from 'node:fs';
import { connectAsync, type ErrorWithReasonCode } from 'mqtt';
import type { Check } from '../doctor.js';
import { safeBroker } from './output.js';

const ENV_FILE = '/etc/power-meter/power-meter.env';

/**
 * `doctor`: can this machine log in to the broker with the meter's user and password? Uses its
 * own client id (the daemon's would kick the running meter off the broker) and no last will.
 * Run interactively, the login is usually only in the root-only environment file: it is read
 * from there when readable.
 */
export async function checkMqtt(
  s: { mqttUrl: string; mqttUser: string; mqttPassword: string },
  opts: { envFile?: string; timeoutMs?: number } = {},
): Promise<Check> {
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
  try {
    const client = await connectAsync(s.mqttUrl, {
      clientId: `power-meter-doctor-${process.pid}`,
      username: username || undefined,
      password: password || undefined,
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: opts.timeoutMs ?? 5000,
    });
    await client.endAsync();
    return { name: 'mqtt', status: 'ok', detail: `${broker} accepted a connection ${login}; nothing was published` };
  } catch (err) {
    const code = (err as ErrorWithReasonCode).code;
    if (code === 134 || code === 135 || code === 4 || code === 5)
      return {
        name: 'mqtt',
        status: 'fail',
        detail: `${broker} refused the login ${login}: ${(err as Error).message.replace(/^Connection refused: /, '')}`,
        fix: `set POWER_METER_MQTT_USER and POWER_METER_MQTT_PASSWORD in ${ENV_FILE} to a user of the broker (Home Assistant: a user of the Mosquitto add-on), then sudo systemctl restart power-meter`,
      };
    return {
      name: 'mqtt',
      status: 'fail',
      detail: `${broker}: ${typeof code === 'string' ? code : (err as Error).message}`,
      fix: 'check that the broker runs, the host and port in --mqtt-url (mqtt:// is 1883, mqtts:// 8883) and the network',
    };
  }
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
