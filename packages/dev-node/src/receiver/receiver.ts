import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import {
  createBodyVerifier,
  type VerifyResult,
  TASK_ROUTE,
  type DeviceApprovals,
  type TransportName,
  type V2Dialect,
} from '@power-meter/w3bstream';
import { answerBetween, type DevAnswerMode, type EventAnswer, type EventRequest, type ReceivedEvent } from './exchange.js';
import { answerMessageV2, V2_ROUTE } from './receiver-v2.js';
import { staticApprovals } from './approvals.js';
import { checkTask, type DevProjects, type DevTask, taskAnswer, taskStatusBody } from './receiver-task.js';
import {
  v1EventAnswer,
  V1_INVALID_TOKEN,
  matchV1EventRoute,
  newV1EventId,
  v1ErrorBody,
  v1TokenAccepted,
  V1_EVENT_ROUTE,
  v1AnswerHead,
  v1AppletResult,
  v1EventParams,
  v1EventPath,
  v1WrongChannelAnswer,
} from '../v1-event-route.js';

/**
 * A local stand-in for a W3bstream event endpoint, answering as the W3bstream node's source
 * (the v1 applet manager) does (the route itself, shared with applet-host: v1-event-route.ts):
 * the route `/srv-applet-mgr/v0/event/<project>`,
 * the token from `?authorization=` in preference to the Authorization header (`Bearer ` optional),
 * 401 `InvalidToken` (code 401999002) with the node's error body, the traffic limit checked before
 * the project name, 201 + `InvalidEventChannel` for another project, string `publisherID` and
 * `instanceID`, `results: null` when no applet handled the event. It verifies every signature,
 * records a mismatch between the eventID's address and the signer, writes an append-only
 * JSON-lines record (one line per event, before the answer), and can be switched to answer each
 * of the node's failure modes and the network's (captive portal HTML, empty, oversized, dropped).
 * A test double, not a replacement for W3bstream.
 *
 * `answerEvent` is the pure part (a request and the mode in, the answer and the record out); the
 * HTTP server around it is thin.
 */

/** The mode names a command line can pass. */
export const DEV_ANSWER_MODES = [
  'normal',
  'instance-not-loaded',
  'instance-stopped',
  'wait-timeout',
  'traffic-limit',
  'no-applet',
  'malformed-token',
  'html',
  'empty',
  'oversized',
  'drop',
] as const;

export interface AnswerConfig {
  project: string;
  token: string;
  /** Refuse readings of exactly 0 W like the tutorial applet does (results[].code -1). */
  rejectZeroReadings?: boolean;
}

/** The publisher the dev receiver names in its answers (snowflake-like string ids, as the node's). */
const DEV_PUBLISHER = { publisherId: '1830470000000000001', publisherKey: 'dev_publisher' };
/** An applet error per mode, as the node writes it. */
const APPLET_ERRORS: Partial<Record<string, string>> = {
  'instance-not-loaded': 'InstanceNotRunning',
  'instance-stopped': 'instance not running',
  'wait-timeout': 'wait timeout',
};

/**
 * The answer to one request (pure: the verifier and the duplicate check are passed in).
 * `counted`: the request was on the event route (what `requests()` counts).
 */
export function answerEvent(
  req: EventRequest,
  cfg: AnswerConfig,
  mode: DevAnswerMode,
  ctx: { verify: (body: string) => VerifyResult; seen: (eventId: string) => boolean },
): EventAnswer {
  const json = (status: number, body: unknown, counted = true): EventAnswer => ({
    drop: false,
    status,
    contentType: 'application/json',
    body: JSON.stringify(body),
    event: null,
    counted,
  });
  const nodeError = (status: number, key: string, code: number, desc: string): EventAnswer => json(status, v1ErrorBody(key, code, desc));
  const route = matchV1EventRoute(req.method, req.url);
  if (!route.ok) return json(route.status, route.body, false);
  const { url, channel } = route;
  const between = answerBetween(mode);
  if (between !== null) return between;
  if (typeof mode === 'object' && 'status' in mode)
    return nodeError(
      mode.status,
      mode.status >= 500 ? 'InternalServerError' : 'Failure',
      mode.status * 1_000_000,
      'dev receiver answering an injected failure',
    );
  if (mode === 'malformed-token') return nodeError(500, 'UnknownError', 500000000, 'UnknownError');
  if (!v1TokenAccepted(url, req.authorization, cfg.token)) return json(401, V1_INVALID_TOKEN);
  const params = v1EventParams(url, req.receivedAtMs);
  const eventId = params.eventId ?? '';
  const eventType = params.eventType;
  const base = v1AnswerHead(channel, DEV_PUBLISHER, params.eventId ?? newV1EventId(), params.timestampMs);
  const result = (code: number, error: string | null = null) => v1AppletResult('dev', '1830470000000000002', 'start', code, error);
  // The node checks the project's traffic limit before it looks the project up.
  if (mode === 'traffic-limit') return json(201, v1EventAnswer(base, [result(-1, 'TrafficLimitExceeded: project traffic limit exceeded')]));
  if (channel !== cfg.project) return json(201, v1WrongChannelAnswer(base));
  if (mode === 'oversized')
    return json(201, { ...v1EventAnswer(base, [result(-1, 'InstanceNotRunning')]), padding: 'x'.repeat((1 << 20) + 1024) });
  if (typeof mode === 'string' && APPLET_ERRORS[mode] !== undefined)
    return json(201, v1EventAnswer(base, [result(-1, APPLET_ERRORS[mode])]));
  if (typeof mode === 'object') return json(201, v1EventAnswer(base, [result(-1, mode.appletError)]));
  const v = ctx.verify(req.body);
  const seqText = /-(\d+)$/.exec(eventId)?.[1];
  const eventAddress = /^(0x[0-9a-f]{40})-\d+$/.exec(eventId)?.[1] ?? null;
  const signerMatchesEventId = eventAddress === null || v.deviceId === null ? null : eventAddress === v.deviceId;
  const handled = mode !== 'no-applet';
  // Like the tutorial applet: a message that does not verify is refused by the applet.
  const refusal = !handled
    ? null
    : !v.ok
      ? v.reason
      : cfg.rejectZeroReadings && v.sensorReading === 0
        ? 'sensor_reading must not be 0'
        : null;
  const event: ReceivedEvent = {
    receivedAtMs: req.receivedAtMs,
    project: channel,
    eventType,
    eventId,
    seq: seqText === undefined ? null : Number(seqText),
    duplicate: eventId !== '' && ctx.seen(eventId),
    sensorReading: v.sensorReading,
    timestamp: v.timestamp,
    signedSeq: v.seq,
    energyWh: v.energyWh,
    verified: v.ok,
    reason:
      v.reason ??
      (signerMatchesEventId === false
        ? `eventID names ${eventAddress}, the body is signed by ${v.deviceId}`
        : v.seq !== null && seqText !== undefined && v.seq !== Number(seqText)
          ? `eventID names sequence number ${seqText}, the signed data ${v.seq}`
          : null),
    publicKey: v.publicKeyHex,
    deviceId: v.deviceId,
    publicKeyForm: v.publicKeyForm,
    curve: v.curve,
    signerMatchesEventId,
    handled,
    appletError: refusal,
    body: req.body,
  };
  return {
    drop: false,
    status: 201,
    contentType: 'application/json',
    body: JSON.stringify(v1EventAnswer(base, handled ? [result(refusal ? -1 : 0, refusal)] : null)),
    event,
    counted: true,
  };
}

export interface DevReceiverOptions {
  /** Listen address; loopback by default (it is a development tool). */
  host?: string;
  /** 0 = an ephemeral port. */
  port?: number;
  project?: string;
  /** The publisher token to accept (a local test value). */
  token?: string;
  /** Append one JSON line per received event here. */
  recordFile?: string;
  /** Refuse readings of exactly 0 W like the tutorial applet does (results[].code -1). Default false. */
  rejectZeroReadings?: boolean;
  /** How to answer when no one-off answer is queued (default `normal`). */
  mode?: DevAnswerMode;
  /** Which node to stand in for (default `w3bstream-v1`); `w3bstream-v2` serves the apinode (receiver-v2.ts). */
  transport?: TransportName;
  /**
   * W3bstream 2 `POST /v1/task`: which devices are approved for which project (approvals.ts; the
   * node answers 403 "device does not have permission" to the others). Default: every device
   * (`staticApprovals({ approveAll: true })`). Closed with the receiver.
   */
  approvals?: DeviceApprovals;
  /** W3bstream 2: which API to serve, `task` (`/v1/task`, the current node; default) or `message` (`/message`, nodes before v0.17). */
  dialect?: V2Dialect;
  /** W3bstream 2 `/v1/task`: the projects the node knows (400 "failed to get project" for others); default: any. */
  projects?: DevProjects;
  /** W3bstream 2 `/v1/task`: where each task ends (`GET /v1/task/<id>`): `settled` (default), `failed` or `packed`. */
  taskOutcome?: DevTask['outcome'];
  /** W3bstream 2 `/v1/task`: time between a task's states (default 2000 ms). */
  taskStepMs?: number;
  log?: (line: string) => void;
}

export interface DevReceiver {
  /** The full publish URL, including `/srv-applet-mgr/v0/event/<project>` (v1) or `/message` (v2). */
  url: string;
  port: number;
  received: ReceivedEvent[];
  /** Requests seen on the event route, including refused and misbehaved ones. */
  requests(): number;
  /** Answer the next `count` requests in this mode (queued after earlier ones), then go back. */
  answerNext(count: number, mode: DevAnswerMode): void;
  /** The mode for every request while no one-off answer is queued. */
  setMode(mode: DevAnswerMode): void;
  /** Delay every answer by this long (0: answer at once). */
  delayMs(ms: number): void;
  close(): Promise<void>;
}

export async function startDevReceiver(opts: DevReceiverOptions = {}): Promise<DevReceiver> {
  const cfg: AnswerConfig = {
    project: opts.project ?? 'demo',
    token: opts.token ?? 'dev-token',
    rejectZeroReadings: opts.rejectZeroReadings,
  };
  const host = opts.host ?? '127.0.0.1';
  const received: ReceivedEvent[] = [];
  const verify = createBodyVerifier();
  const seen = new Set<string>();
  const queue: Array<{ count: number; mode: DevAnswerMode }> = [];
  let mode: DevAnswerMode = opts.mode ?? 'normal';
  let requests = 0;
  let delay = 0;
  let recordFd: number | null = null;
  if (opts.recordFile) {
    mkdirSync(dirname(opts.recordFile), { recursive: true });
    recordFd = openSync(opts.recordFile, 'a');
  }
  const nextMode = (): DevAnswerMode => {
    const head = queue[0];
    if (head === undefined) return mode;
    if (--head.count <= 0) queue.shift();
    return head.mode;
  };

  const v2 = opts.transport === 'w3bstream-v2';
  const taskApi = v2 && (opts.dialect ?? 'task') === 'task';
  const approvals = opts.approvals ?? staticApprovals({ approveAll: true });
  const projects = opts.projects ?? null;
  const tasks = new Map<string, DevTask>();
  const taskStatus = new RegExp(`^${TASK_ROUTE}/([^/]+)$`);
  /** The approved recovery id: the node asks about id 0's address, then id 1's. */
  const approvedOf = async (candidates: [string, string], projectId: string): Promise<0 | 1 | null | 'failed'> => {
    try {
      if (await approvals.isApproved(candidates[0], projectId)) return 0;
      if (await approvals.isApproved(candidates[1], projectId)) return 1;
      return null;
    } catch {
      return 'failed';
    }
  };
  const answerFor = async (request: EventRequest, path: string, m: DevAnswerMode): Promise<EventAnswer> => {
    if (!v2) return answerEvent(request, cfg, m, { verify, seen: (id) => seen.has(id) });
    if (!taskApi) return answerMessageV2(request, m, { seen: (key) => seen.has(key) });
    const status = request.method === 'GET' ? taskStatus.exec(path) : null;
    if (status !== null) {
      const id = decodeURIComponent(status[1]!);
      const key = /^(0x)?[0-9a-fA-F]{1,64}$/.test(id) ? `0x${id.replace(/^0x/, '').toLowerCase().padStart(64, '0')}` : '';
      return {
        drop: false,
        status: 200,
        contentType: 'application/json; charset=utf-8',
        body: taskStatusBody(id, tasks.get(key) ?? null, Date.now()),
        event: null,
        counted: false,
      };
    }
    if (request.method !== 'POST' || path !== TASK_ROUTE)
      return { drop: false, status: 404, contentType: 'text/plain', body: '404 page not found', event: null, counted: false };
    const c = checkTask(request.body, projects);
    const approved = c.ok && answerBetween(m) === null && typeof m !== 'object' ? await approvedOf(c.candidates, c.projectId) : null;
    const { answer, taskId } = taskAnswer(request, m, c, approved, { seen: (key) => seen.has(key) });
    if (taskId !== null && c.ok)
      tasks.set(taskId, {
        taskId,
        projectId: c.projectId,
        createdAtMs: request.receivedAtMs,
        outcome: opts.taskOutcome ?? 'settled',
        stepMs: opts.taskStepMs ?? 2000,
      });
    return answer;
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined); // a client that hangs up mid-request is not our problem
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      const onRoute = v2 ? path === (taskApi ? TASK_ROUTE : V2_ROUTE) : V1_EVENT_ROUTE.test(path);
      const request: EventRequest = {
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        authorization: req.headers.authorization,
        body: Buffer.concat(chunks).toString('utf8'),
        receivedAtMs: Date.now(),
      };
      const m = onRoute && req.method === 'POST' ? nextMode() : 'normal';
      void answerFor(request, path, m).then((a) => {
        if (a.counted) requests++;
        if (a.drop) return void req.socket.destroy();
        const e = a.event;
        if (e !== null) {
          if (e.eventId !== '') seen.add(e.eventId);
          if (e.dedupeKey && e.taskId !== null && e.taskId !== undefined) seen.add(e.dedupeKey);
          received.push(e);
          // Written (to the OS) before answering, so whoever tails the file sees every acknowledged event.
          if (recordFd !== null) writeSync(recordFd, `${JSON.stringify(e)}\n`);
          if (v2)
            opts.log?.(
              `received project=${e.project || '?'} version=${e.projectVersion || '-'}${e.nonce ? ` nonce=${e.nonce}` : ''} device=${e.deviceId ?? '?'} reading=${e.sensorReading ?? '?'} verified=${e.verified}${e.duplicate ? ' duplicate' : ''}${e.taskId ? ` task_id=${e.taskId}` : ''}${e.reason ? ` reason="${e.reason}"` : ''}`,
            );
          else
            opts.log?.(
              `received seq=${e.seq ?? '?'} event_id=${e.eventId || '-'} reading=${e.sensorReading ?? '?'} verified=${e.verified}${e.verified ? ` signer=${e.deviceId} curve=${e.curve} public_key=${e.publicKeyForm}` : ''}${e.duplicate ? ' duplicate' : ''}${e.handled ? '' : ' unhandled'}${e.signerMatchesEventId === false ? ' signer-mismatch' : ''}${e.reason ? ` reason="${e.reason}"` : ''}`,
            );
        }
        const send = (): void => {
          if (res.destroyed) return;
          res.writeHead(a.status, { 'Content-Type': a.contentType });
          res.end(a.body);
        };
        if (delay > 0) setTimeout(send, delay);
        else send();
      });
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: v2 ? `http://${urlHost}:${port}${taskApi ? TASK_ROUTE : V2_ROUTE}` : `http://${urlHost}:${port}${v1EventPath(cfg.project)}`,
    port,
    received,
    requests: () => requests,
    answerNext: (count, m) => void (count > 0 && queue.push({ count, mode: m })),
    setMode: (m) => {
      mode = m;
    },
    delayMs: (ms) => {
      delay = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          if (recordFd !== null) closeSync(recordFd);
          recordFd = null;
          void Promise.resolve(approvals.close?.()).finally(resolve);
        });
      }),
  };
}
