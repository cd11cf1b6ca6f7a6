import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { I2cError, SensorFault } from '@power-meter/ina219';
import { exampleState, type MeterState } from '@power-meter/meter-files';
import {
  PERSISTING_AFTER_FAILURES,
  classifyAnswer,
  classifyAnswerV2,
  classifyNetworkError,
  classifyTaskAnswer,
  type Verdict,
} from '@power-meter/w3bstream';
import { describe, expect, it } from 'vitest';
import { buildScreenModel } from '../packages/power-meter-display/src/screen/model.js';
import { STATUS_FONTS, ScreenRenderer } from '../packages/power-meter-display/src/screen/render.js';
import { describeTokenFault } from '../packages/power-meter/src/key/token-key.js';
import { ROOT } from './support/processes.js';

/**
 * Every reason the meter can put in state.json, made by the meter's own code (the node-answer
 * classifiers, the network-error classifier, the sensor's errors), drawn on the real screen with
 * the real font: each status line fits the 160 px panel whole, and the README's Troubleshooting
 * quotes exactly these lines.
 */
const NOW = 1_764_000_000_000;
type Publishing = MeterState['publishing'];

/** A state as the backend writes it for a publisher verdict (publisher.ts handle()). */
function fromVerdict(v: Verdict, repeated = 1): Partial<Publishing> {
  if (v.kind === 'delivered') return { state: 'ok', reason: v.note, lastRejection: null };
  if (v.kind === 'rejected') return { state: 'ok', reason: null, rejected: 1, lastRejection: v.reason };
  const persisting = v.kind === 'transient' && v.persisting !== undefined && repeated >= v.persisting.afterFailures ? v.persisting : null;
  return { state: v.kind === 'config' || persisting ? 'failing' : 'retrying', reason: persisting?.reason ?? v.reason };
}

const json = (o: unknown) => JSON.stringify(o);
/** A task as the meter sends it (the classifier reads its project and signature). */
const TASK = `{"nonce":1,"projectID":"42","projectVersion":"0.1","payload":{"sensor_reading":1.0,"timestamp":1764000000},"signature":"0x${'ab'.repeat(64)}"}`;
/** The task state the meter follows (state.json publishing.task). */
const task = (state: string, error: string | null = null) => ({
  id: `0x${'cd'.repeat(32)}`,
  state,
  stateAtMs: NOW,
  txHash: null,
  error,
  checkedAtMs: NOW,
  failedCount: error ? 1 : 0,
});
const applet = (error: string) => json({ results: [{ code: -1, error }] });
const verdicts: Verdict[] = [
  // W3bstream 1: the node's error keys (classify.ts ADVICE), applet answers, what else answers.
  ...['InvalidToken', 'InvalidClaim', 'AccessKeyNotFound', 'AccessKeyExpired', 'PublisherNotFound'].map((key) =>
    classifyAnswer(401, json({ key })),
  ),
  classifyAnswer(200, json({ error: 'InvalidEventChannel' })),
  classifyAnswer(200, json({ error: 'TrafficLimitExceeded' })),
  classifyAnswer(200, applet('instance not running')),
  classifyAnswer(200, applet('InstanceNotRunning')),
  classifyAnswer(200, applet('wait timeout')),
  classifyAnswer(500, json({ key: 'UnknownError' })),
  classifyAnswer(200, '<html>login</html>', { contentType: 'text/html; charset=utf-8' }),
  classifyAnswer(200, ''),
  classifyAnswer(200, '', { oversized: true }),
  classifyAnswer(200, '', { cutShort: true }),
  classifyAnswer(404, 'not found'),
  classifyAnswer(403, ''),
  classifyAnswer(302, ''),
  classifyAnswer(400, json({ key: 'BadRequest' })),
  classifyAnswer(503, 'busy'),
  classifyAnswer(502, json({ key: 'BadGateway' })),
  classifyAnswer(429, ''),
  classifyAnswer(200, json({ results: null }), { eventType: 'DEFAULT' }),
  classifyAnswer(
    200,
    applet('abort: device 0x8a1f5e2b4c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f is not registered at applet/energy-meter.ts:181:24'),
  ),
  classifyAnswer(200, applet('abort: bad signature at applet/energy-meter.ts:90:5 (wasm trap: unreachable)')),
  // W3bstream 2 (classify-v2.ts).
  classifyAnswerV2(400, json({ error: 'invalid project id 0: must be above zero and registered' })),
  classifyAnswerV2(500, json({ error: 'failed to save message to the database' })),
  classifyAnswerV2(404, ''),
  classifyAnswerV2(301, ''),
  classifyAnswerV2(200, json({ ok: true })),
  classifyAnswerV2(200, '<html/>', { contentType: 'text/html' }),
  // W3bstream 2 /v1/task (classify-v2.ts classifyTaskAnswer): the current node's answers.
  classifyTaskAnswer(403, json({ error: 'device does not have permission' }), { requestBody: TASK }),
  classifyTaskAnswer(400, json({ error: 'failed to get project: project not exist, project_id 42' }), { requestBody: TASK }),
  classifyTaskAnswer(400, json({ error: 'failed to get project config: project config not exist' }), { requestBody: TASK }),
  classifyTaskAnswer(400, json({ error: 'invalid signature; could not recover public key: x' }), { requestBody: TASK }),
  classifyTaskAnswer(200, json({ taskID: `0x${'12'.repeat(32)}` }), { requestBody: TASK }),
  classifyTaskAnswer(500, json({ error: 'could not save task: x' }), { requestBody: TASK }),
  classifyTaskAnswer(404, '404 page not found', { requestBody: TASK }),
  // No answer at all (publisher.ts: the error code node-fetch reports).
  ...['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE'].map((c) =>
    classifyNetworkError(c),
  ),
  ...['CERT_HAS_EXPIRED', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'ERR_TLS_CERT_ALTNAME_INVALID'].map((c) =>
    classifyNetworkError(c),
  ),
  classifyNetworkError('ERR_SSL_WRONG_VERSION_NUMBER'),
  classifyNetworkError('network error'),
];

const publishings: Array<Partial<Publishing>> = [
  ...verdicts.flatMap((v) => [fromVerdict(v), fromVerdict(v, PERSISTING_AFTER_FAILURES)]),
  // publisher.ts's own reasons: a request timeout and an outbox that stopped working.
  { state: 'retrying', reason: 'timeout 10000 ms' },
  { state: 'failing', reason: 'outbox error' },
  { state: 'retrying', reason: null, waiting: 12 },
  { state: 'ok', reason: null, waiting: 40 },
  { state: 'ok', reason: null, waiting: 0 },
  { state: 'disabled', reason: null },
  { held: 3 },
  // W3bstream 2 /v1/task: the newest followed task's state.
  ...['packed', 'assigned', 'settled'].map((st) => ({ state: 'ok' as const, reason: null, waiting: 0, task: task(st) })),
  { state: 'ok', reason: null, waiting: 0, task: task('failed', 'prover: proof rejected') },
];

const sensorReasons: string[] = [
  ...['ENOENT', 'EACCES', 'EPERM', 'EBUSY', 'ENXIO', 'EREMOTEIO', 'EIO', 'ETIMEDOUT'].map(
    (code) => new I2cError('open', '/dev/i2c-1', Object.assign(new Error(code), { code })).message,
  ),
  new SensorFault('bus voltage', new I2cError('read', '0x40', Object.assign(new Error('x'), { code: 'ENXIO' }))).message,
  'sampler stopped: test fault',
];

function statusOf(p: Partial<Publishing>, sensorReason?: string): string {
  const base = exampleState({ updatedAtMs: NOW });
  const state: MeterState = {
    ...base,
    publishing: { ...base.publishing, ...p },
    ...(sensorReason ? { powerW: null, sensor: { state: 'fault', reason: sensorReason, busV: null, currentA: null } } : {}),
  };
  return buildScreenModel(state, null, NOW).statusText;
}

/** The key in a token (state.json `signing`): every fault the backend words (token-key.ts), with readings kept. */
const signingReasons = (
  ['module', 'no-token', 'pin-incorrect', 'pin-locked', 'key-missing', 'curve', 'other-key', 'timeout', 'device', 'other'] as const
).map((kind) => describeTokenFault(kind, 'detail').reason);
function signingStatusOf(reason: string, unsigned: number): string {
  const base = exampleState({ updatedAtMs: NOW });
  return buildScreenModel(
    { ...base, signing: { key: 'pkcs11', state: 'fault', reason, unsigned, pinAttempts: 1, sinceMs: NOW } },
    null,
    NOW,
  ).statusText;
}

const lines = [
  ...new Set([
    ...publishings.map((p) => statusOf(p)),
    ...sensorReasons.map((r) => statusOf({}, r)),
    ...signingReasons.flatMap((r) => [signingStatusOf(r, 0), signingStatusOf(r, 12), signingStatusOf(r, 17_280)]),
  ]),
];

describe('the status line for every reason the meter produces', () => {
  it('fits the 160 px panel whole in bold 10 px (no cut, no squeeze), and a 128 px portrait one in a status font', () => {
    expect(lines.length).toBeGreaterThan(25);
    const landscape = new ScreenRenderer('landscape');
    const portrait = new ScreenRenderer('portrait');
    for (const line of lines) {
      const fit = landscape.statusFit(line);
      expect(fit, line).toMatchObject({ text: line, font: expect.stringMatching(/^bold 10px /) });
      expect(fit.width, line).toBeLessThanOrEqual(152);
      expect(portrait.statusFit(line).text, `${line} (portrait)`).toBe(line);
    }
    // A reason nobody listed (a future node key) is cut to fit, never squeezed or spilled.
    const long = landscape.statusFit('failing: SomeFutureNodeErrorKeyThatIsVeryLong');
    expect(long.text).toMatch(/^failing: SomeFuture.*…$/);
    expect(long.width).toBeLessThanOrEqual(152);
    expect(long.font).toMatch(new RegExp(`^${STATUS_FONTS.at(-1)} `));
  });

  it('says why for every publishing state, retrying included, in plain words', () => {
    expect(statusOf(fromVerdict(classifyAnswer(200, applet('instance not running'))))).toBe('retrying: applet stopped');
    expect(statusOf(fromVerdict(classifyAnswer(401, json({ key: 'InvalidToken' }))))).toBe('failing: bad token');
    expect(statusOf(fromVerdict(classifyAnswer(200, '<html/>', { contentType: 'text/html' }), 3))).toBe('failing: not W3bstream');
    expect(statusOf(fromVerdict(classifyAnswer(500, json({ key: 'UnknownError' })), 3))).toBe('failing: bad token? (500)');
    expect(statusOf(fromVerdict(classifyAnswer(500, json({ key: 'UnknownError' })), 1))).toBe('retrying: HTTP 500');
    expect(statusOf(fromVerdict(classifyNetworkError('ECONNREFUSED')))).toBe('retrying: conn. refused');
    expect(statusOf({}, sensorReasons[0])).toBe('sensor: I2C is off');
    for (const line of lines) expect(line, line).not.toMatch(/: $|undefined|null/);
  });

  it("the README's Troubleshooting quotes exactly these lines", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Troubleshooting'), readme.indexOf('\n## ', readme.indexOf('## Troubleshooting') + 5));
    const quotes = [...section.matchAll(/screen says ((?:`[^`]+`(?:, then | or | \/ )?)+)/g)].flatMap((m) =>
      [...m[1]!.matchAll(/`([^`]+)`/g)].map((q) => q[1]!),
    );
    expect(quotes.length).toBeGreaterThan(10);
    const stale = buildScreenModel(exampleState({ updatedAtMs: NOW - 60_000 }), null, NOW).statusText;
    const shown = new Set([...lines, stale]);
    // In the README, N stands for a count and … for any text (an age).
    const pattern = (quote: string) =>
      new RegExp(
        `^${quote
          .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
          .replace(/\bN\b/g, '\\d+')
          .replace(/…/g, '.+')}$`,
      );
    const matches = (quote: string) => [...shown].some((l) => pattern(quote).test(l));
    for (const q of quotes) expect(matches(q), `README quotes "${q}", which the screen never shows`).toBe(true);
  });
});
