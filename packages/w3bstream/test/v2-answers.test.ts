import { describe, expect, it } from 'vitest';
import { classifyAnswerV2 } from '../src/index.js';

describe('W3bstream 2 answers, classified (cmd/apinode/api/http.go)', () => {
  it('200 {"taskID"} is delivered with the taskID, an empty one too (the node is aggregating)', () => {
    const id = `0x${'ab'.repeat(32)}`;
    const v = classifyAnswerV2(200, `{"taskID":"${id}"}`);
    expect([v.kind, v.reason, v.kind === 'delivered' && v.taskId, v.kind === 'delivered' && v.unhandled]).toEqual([
      'delivered',
      null,
      id,
      false,
    ]);
    expect(classifyAnswerV2(200, '{"taskID":""}')).toMatchObject({ kind: 'delivered', taskId: '' });
  });

  it("400 is a configuration error shown with the node's error text", () => {
    const v = classifyAnswerV2(400, '{"error":"invalid signature; could not recover public key: invalid signature"}');
    expect(v).toMatchObject({ kind: 'config', errorKey: 'HTTP 400' });
    expect(v.reason).toBe('HTTP 400 invalid signature; could not recover pu…');
    expect(v.advice).toContain('"invalid signature; could not recover public key: invalid signature"');
    expect(v.advice).toMatch(/secp256k1/);
    expect(v).toMatchObject({ settings: ['signingKey'] });
    const p = classifyAnswerV2(
      400,
      `{"error":"invalid request payload: Key: 'HandleMessageReq.ProjectID' Error:Field validation for 'ProjectID' failed on the 'required' tag"}`,
    );
    expect(p).toMatchObject({ kind: 'config' });
    // The library names the setting; the program adds its flag (power-meter hints.ts).
    expect(p.advice).toMatch(/check the project ID/);
    expect(p).toMatchObject({ settings: ['projectId'] });
    expect(classifyAnswerV2(400, 'not json')).toMatchObject({ kind: 'config', reason: 'HTTP 400 no error text' });
  });

  it('5xx, 408, 429 are transient; 404, 401, redirects and other 4xx are configuration (not the /message route)', () => {
    expect(classifyAnswerV2(500, '{"error":"internal server error; could not save task"}')).toMatchObject({
      kind: 'transient',
      errorKey: 'HTTP 500',
    });
    for (const s of [502, 503, 408, 429]) expect(classifyAnswerV2(s, '')).toMatchObject({ kind: 'transient', reason: `HTTP ${s}` });
    for (const s of [404, 401, 403, 405, 301, 307]) expect(classifyAnswerV2(s, '404 page not found').kind).toBe('config');
    expect(classifyAnswerV2(404, '404 page not found').advice).toMatch(/\/message/);
  });

  it('a 2xx that is not the node (not JSON, no taskID, cut short, oversized) never delivers', () => {
    expect(classifyAnswerV2(200, '<html>login</html>', { contentType: 'text/html' })).toMatchObject({
      kind: 'transient',
      reason: 'not a W3bstream answer (text/html)',
      persisting: { afterFailures: 3 },
    });
    expect(classifyAnswerV2(200, '{"results":[]}')).toMatchObject({ kind: 'transient', reason: 'not a W3bstream answer (no taskID)' });
    expect(classifyAnswerV2(200, '{"taskID":7}')).toMatchObject({ kind: 'transient' });
    expect(classifyAnswerV2(200, '', { cutShort: true })).toMatchObject({
      kind: 'transient',
      reason: 'not a W3bstream answer (cut short)',
    });
    expect(classifyAnswerV2(200, '', { oversized: true })).toMatchObject({ kind: 'transient' });
  });
});
