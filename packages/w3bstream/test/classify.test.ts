import { describe, expect, it } from 'vitest';
import { classifyAnswer, classifyNetworkError, retryDelayMs } from '../src/index.js';

const ok = (results: unknown[] = [{ code: 0 }], extra = {}) =>
  JSON.stringify({ channel: 'p', publisherID: '1', publisherKey: 'k', eventID: 'e', timestamp: 1, results, ...extra });

describe('classification of node answers (docs/w3bstream.md section 4)', () => {
  it('delivered: 2xx, no error, every result code 0 (or no results)', () => {
    expect(classifyAnswer(201, ok())).toEqual({
      kind: 'delivered',
      reason: null,
      errorKey: null,
      advice: null,
      note: null,
      unhandled: false,
    });
    expect(classifyAnswer(201, ok([])).kind).toBe('delivered');
    expect(classifyAnswer(200, ok([{ code: 0 }, { code: 0 }])).kind).toBe('delivered');
  });

  it('201 failures: InvalidEventChannel is configuration, traffic limit and stopped instance are transient', () => {
    expect(classifyAnswer(201, ok([], { error: 'InvalidEventChannel' }))).toMatchObject({
      kind: 'config',
      reason: 'InvalidEventChannel',
      errorKey: 'InvalidEventChannel',
      advice: expect.stringMatching(/project name/),
    });
    expect(classifyAnswer(201, ok([{ code: -1, error: 'wasm: TrafficLimitExceeded for project' }]))).toMatchObject({
      kind: 'transient',
      errorKey: 'TrafficLimitExceeded',
    });
    expect(classifyAnswer(201, ok([], { error: 'TrafficLimitExceeded' }))).toMatchObject({
      kind: 'transient',
      errorKey: 'TrafficLimitExceeded',
    });
    expect(classifyAnswer(201, ok([{ code: 0 }, { code: -1, error: 'InstanceNotRunning' }]))).toMatchObject({
      kind: 'transient',
      errorKey: 'InstanceNotRunning',
    });
  });

  it("the node's other 'not now' applet answers are transient: a stopped instance and a busy VM keep the reading", () => {
    expect(classifyAnswer(201, ok([{ code: -1, error: 'instance not running' }]))).toMatchObject({
      kind: 'transient',
      errorKey: 'instance not running',
      advice: expect.stringMatching(/stopped/),
    });
    expect(classifyAnswer(201, ok([{ code: -1, error: 'wait timeout' }]))).toMatchObject({
      kind: 'transient',
      errorKey: 'wait timeout',
      advice: expect.stringMatching(/busy/),
    });
  });

  it('results: null is delivered, but flagged as handled by no applet (named by eventType)', () => {
    expect(classifyAnswer(201, ok(null as unknown as unknown[]), { eventType: 'METER' })).toEqual({
      kind: 'delivered',
      reason: null,
      errorKey: null,
      advice: null,
      note: 'no applet handled eventType METER',
      unhandled: true,
    });
  });

  it('a persisting 500 UnknownError names a malformed token as the usual cause', () => {
    const v = classifyAnswer(500, '{"key":"UnknownError","code":500000000,"msg":"UnknownError"}');
    expect(v).toMatchObject({
      kind: 'transient',
      reason: 'HTTP 500 UnknownError',
      persisting: {
        afterFailures: 3,
        reason: 'HTTP 500 UnknownError (token?)',
        advice: expect.stringMatching(/malformed publisher token/),
      },
    });
    expect(classifyAnswer(500, '{"key":"InternalServerError"}')).not.toHaveProperty('persisting');
  });

  it('any other applet error is delivered-but-rejected (retrying cannot help)', () => {
    expect(classifyAnswer(201, ok([{ code: -1, error: 'abort: zero reading' }]))).toMatchObject({
      kind: 'rejected',
      reason: 'applet: abort: zero reading',
      errorKey: 'AppletRefused',
    });
    expect(classifyAnswer(201, ok([{ code: 7 }]))).toMatchObject({ kind: 'rejected', reason: 'applet: code 7' });
  });

  it('401/403/404 are configuration errors named by the node key', () => {
    expect(classifyAnswer(401, '{"key":"InvalidToken","code":401999003,"msg":"InvalidToken"}')).toMatchObject({
      kind: 'config',
      reason: 'InvalidToken',
      advice: expect.stringMatching(/W3BSTREAM_PUBLISHER_TOKEN/),
    });
    expect(classifyAnswer(401, '{"key":"InvalidClaim"}').errorKey).toBe('InvalidClaim');
    expect(classifyAnswer(404, '{"key":"AccessKeyNotFound"}')).toMatchObject({ kind: 'config', errorKey: 'AccessKeyNotFound' });
    expect(classifyAnswer(403, '{"key":"AccessKeyExpired"}')).toMatchObject({ kind: 'config', errorKey: 'AccessKeyExpired' });
    expect(classifyAnswer(404, '{"key":"PublisherNotFound"}').advice).toMatch(/deleted/);
    expect(classifyAnswer(404, '<html>nginx</html>')).toMatchObject({
      kind: 'config',
      errorKey: 'HTTP 404',
      advice: expect.stringMatching(/event URL/),
    });
  });

  it('5xx, 408, 429 are transient; redirects and other 4xx are configuration', () => {
    expect(classifyAnswer(500, '{"key":"InternalServerError"}')).toMatchObject({
      kind: 'transient',
      reason: 'HTTP 500 InternalServerError',
    });
    expect(classifyAnswer(503, 'busy')).toMatchObject({ kind: 'transient', reason: 'HTTP 503' });
    expect(classifyAnswer(429, '').kind).toBe('transient');
    expect(classifyAnswer(408, '').kind).toBe('transient');
    expect(classifyAnswer(302, '')).toMatchObject({ kind: 'config', advice: expect.stringMatching(/redirect/) });
    expect(classifyAnswer(400, '{"key":"BadRequest"}')).toMatchObject({ kind: 'config', reason: 'HTTP 400 BadRequest' });
  });

  it('a 2xx that is not a W3bstream answer object never delivers: transient, failing once it persists', () => {
    const portal = classifyAnswer(200, '<html><form>login</form></html>', { contentType: 'text/html; charset=utf-8' });
    expect(portal).toMatchObject({
      kind: 'transient',
      errorKey: 'NotW3bstream',
      reason: 'not a W3bstream answer (text/html)',
      advice: expect.stringMatching(/captive portal/),
    });
    expect(portal).toMatchObject({
      persisting: { afterFailures: 3, reason: 'not a W3bstream answer (text/html)', advice: expect.stringMatching(/proxy/) },
    });
    expect(classifyAnswer(200, '', { contentType: 'text/plain' })).toMatchObject({
      kind: 'transient',
      reason: 'not a W3bstream answer (empty)',
    });
    expect(classifyAnswer(201, '[1,2]').kind).toBe('transient'); // an array is no answer object either
    expect(classifyAnswer(202, 'not json')).toMatchObject({ kind: 'transient', reason: 'not a W3bstream answer (no content type)' });
    // Over the size cap, even if what was read looked like the node's success.
    expect(classifyAnswer(201, ok(), { oversized: true })).toMatchObject({
      kind: 'transient',
      reason: 'not a W3bstream answer (over the size limit)',
    });
  });

  it('keeps reasons short enough for the screen and never multi-line', () => {
    const long = classifyAnswer(201, ok([], { error: `weird\nfailure ${'x'.repeat(200)}` }));
    expect(long.kind).toBe('transient');
    expect(long.reason!.length).toBeLessThanOrEqual(40);
    expect(long.reason).not.toContain('\n');
    expect(classifyNetworkError('ECONNREFUSED')).toMatchObject({ kind: 'transient', reason: 'ECONNREFUSED', errorKey: 'ECONNREFUSED' });
  });
});

describe('retry delays', () => {
  const backoff = { baseMs: 1000, maxMs: 8000, configRetryMs: 60_000 };
  it('transient: doubles per failure with equal jitter, capped', () => {
    expect([1, 2, 3, 4, 5, 6].map((f) => retryDelayMs('transient', f, backoff, () => 0))).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
    expect([1, 2, 3, 4, 5, 6].map((f) => retryDelayMs('transient', f, backoff, () => 1))).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(retryDelayMs('transient', 1000, backoff, () => 0.5)).toBe(6000); // no overflow for long outages
  });
  it('configuration: a slow pace with +-10 % jitter', () => {
    expect(retryDelayMs('config', 1, backoff, () => 0)).toBe(54_000);
    expect(retryDelayMs('config', 9, backoff, () => 1)).toBe(66_000);
  });
});
