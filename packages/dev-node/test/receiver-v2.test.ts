import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildMessageV2, loadOrCreateIdentity } from '@power-meter/w3bstream';
import { startDevReceiver, type DevReceiverOptions } from '../src/index.js';
import { onCleanup, tempDir } from '../../../test/support/cleanup.js';

const REF = { projectId: '42', projectVersion: '0.1' };

function k1() {
  return loadOrCreateIdentity(join(tempDir('v2a-'), 'id'), { curve: 'secp256k1' });
}

describe('dev receiver, W3bstream 2 mode', () => {
  async function start(opts: DevReceiverOptions = {}) {
    const r = await startDevReceiver({ transport: 'w3bstream-v2', dialect: 'message', ...opts });
    onCleanup(() => r.close());
    return r;
  }
  const post = async (url: string, body: string) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const text = await res.text();
    return { status: res.status, text, type: res.headers.get('content-type') };
  };

  it('serves POST /message: recovers the signer, answers {"taskID"} and records the reading', async () => {
    const id = k1();
    const r = await start();
    expect(r.url).toBe(`http://127.0.0.1:${r.port}/message`);
    const msg = buildMessageV2(id, { powerW: 8, timestampMs: 1_764_000_000_000 }, REF);
    const a = await post(r.url, msg.body);
    expect(a.status).toBe(200);
    const answer = JSON.parse(a.text) as { taskID: string };
    expect(Object.keys(answer)).toEqual(['taskID']);
    expect(answer.taskID).toMatch(/^0x[0-9a-f]{64}$/);
    expect(r.received[0]).toMatchObject({
      verified: true,
      deviceId: id.deviceId,
      publicKey: id.publicKeyHex,
      project: '42',
      projectVersion: '0.1',
      data: msg.dataText,
      sensorReading: 8,
      timestamp: 1764000000,
      taskId: answer.taskID,
      duplicate: false,
    });
    // The same message again is a resend (same signature), flagged.
    await post(r.url, msg.body);
    expect(r.received[1]).toMatchObject({ duplicate: true, verified: true });
  });

  it('refuses what the node refuses, with 400 and its error text, and answers other routes with 404', async () => {
    const id = k1();
    const r = await start();
    const msg = buildMessageV2(id, { powerW: 8, timestampMs: 1_764_000_000_000 }, REF);
    const unsigned = await post(r.url, msg.body.replace(/,"signature":"[^"]+"/, ''));
    expect(unsigned.status).toBe(400);
    expect(JSON.parse(unsigned.text)).toEqual({
      error:
        "invalid request payload: Key: 'HandleMessageReq.Signature' Error:Field validation for 'Signature' failed on the 'required' tag",
    });
    const noPrefix = await post(r.url, msg.body.replace('"signature":"0x', '"signature":"'));
    expect(JSON.parse(noPrefix.text)).toEqual({ error: 'invalid signature format: hex string without 0x prefix' });
    expect(r.received.at(-1)).toMatchObject({
      verified: false,
      reason: 'invalid signature format: hex string without 0x prefix',
      taskId: null,
    });
    const other = await fetch(`http://127.0.0.1:${r.port}/srv-applet-mgr/v0/event/p`, { method: 'POST', body: msg.body });
    expect(other.status).toBe(404);
    expect(await other.text()).toBe('404 page not found');
    expect(r.requests()).toBe(2);
  });

  it('misbehaves where it makes sense on this node: aggregation, injected status, refusal text, HTML, drop', async () => {
    const id = k1();
    const recordFile = join(tempDir('v2r-'), 'rec.jsonl');
    const r = await start({ recordFile });
    r.answerNext(1, 'no-applet');
    r.answerNext(1, { status: 503 });
    r.answerNext(1, { appletError: 'project not found' });
    r.answerNext(1, 'html');
    r.answerNext(1, 'drop');
    const body = buildMessageV2(id, { powerW: 1, timestampMs: 1_764_000_000_000 }, REF).body;
    const a1 = await post(r.url, body);
    expect([a1.status, a1.text]).toEqual([200, '{"taskID":""}']);
    const a2 = await post(r.url, body);
    expect([a2.status, JSON.parse(a2.text).error]).toEqual([503, 'dev receiver answering an injected failure']);
    const a3 = await post(r.url, body);
    expect([a3.status, a3.text]).toEqual([400, '{"error":"project not found"}']);
    const a4 = await post(r.url, body);
    expect([a4.status, a4.type]).toEqual([200, 'text/html; charset=utf-8']);
    await expect(post(r.url, body)).rejects.toThrow();
    const a6 = await post(r.url, body);
    expect(a6.status).toBe(200);
    // Recorded: the aggregated one and the accepted one (before answering), not the refused or failed ones.
    const lines = readFileSync(recordFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { taskId: string; duplicate: boolean });
    expect(lines.map((l) => [l.taskId === '' ? 'aggregated' : 'task', l.duplicate])).toEqual([
      ['aggregated', false],
      ['task', true],
    ]);
  });
});
