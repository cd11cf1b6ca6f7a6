import { fileURLToPath } from 'node:url';
import { type AppletHost, type ProjectConfig, appletWasmFile } from '../src/index.js';

export const TOKEN = 'local-test-token';

/** A project file with every kind of monitor and a cron job (see its description). */
export const MONITORS_PROJECT = fileURLToPath(new URL('./fixtures/monitors.project.json', import.meta.url));

/** The probe applet's project: each probe handler is routed by an eventType of the same name. */
export function probeProject(extra: Partial<ProjectConfig> = {}): ProjectConfig {
  const handlers = [
    'probe_log',
    'probe_get_data',
    'probe_set_data',
    'probe_get_data_unknown',
    'probe_kv',
    'probe_sql_set',
    'probe_sql_get',
    'probe_sql_bad',
    'probe_send_tx',
    'probe_call_contract',
    'probe_get_env',
    'probe_mqtt',
    'probe_abort',
    'probe_throw',
    'probe_trap',
    'probe_loop',
    'probe_return',
    'no_such_handler',
  ];
  return {
    name: 'probe_project',
    publisherToken: TOKEN,
    applets: [
      { appletName: 'abi-probe', wasmFile: appletWasmFile('abi-probe'), strategies: handlers.map((h) => ({ eventType: h, handler: h })) },
    ],
    envs: { env: [['GREETING', 'hello from the project env']] },
    database: {
      schemas: [
        {
          schema: 'public',
          tables: [
            {
              name: 'probe',
              cols: [
                { name: 'id', constrains: { datatype: 'INT64', autoincrement: true } },
                { name: 'name', constrains: { datatype: 'TEXT' } },
                { name: 'count32', constrains: { datatype: 'INT32' } },
                { name: 'count64', constrains: { datatype: 'INT64' } },
                { name: 'ratio', constrains: { datatype: 'FLOAT64' } },
                { name: 'active', constrains: { datatype: 'BOOL' } },
                { name: 'raw', constrains: { datatype: 'TEXT', null: true } },
              ],
              keys: [{ name: 'primary', isUnique: true, columnNames: ['id'] }],
            },
          ],
        },
      ],
    },
    ...extra,
  };
}

export interface Answer {
  status: number;
  body: {
    channel?: string;
    eventID?: string;
    results?: { appletName: string; handler: string; code: number; error?: string; instanceID: string; returnValue: null }[] | null;
    error?: string;
    key?: string;
  };
}

/** POSTs one event like a publisher does. */
export async function publish(
  host: AppletHost,
  eventType: string,
  body: string,
  opts: { token?: string; eventId?: string; url?: string } = {},
): Promise<Answer> {
  const url = new URL(opts.url ?? host.url);
  url.searchParams.set('eventType', eventType);
  if (opts.eventId) url.searchParams.set('eventID', opts.eventId);
  const res = await fetch(url, {
    method: 'POST',
    headers: { Authorization: `Bearer ${opts.token ?? TOKEN}` },
    body,
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

/** The applet's own log lines (ws_log) for one handler, in order. */
export function wasmLogs(host: AppletHost, handler: string): string[] {
  return host.logs.filter((l) => l.src === 'wasm' && l.handler === handler).map((l) => l.message);
}
