import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { keccak256, recoverAddress, Signature } from 'ethers';
import { describe, expect, it } from 'vitest';
import {
  buildReadingTask,
  buildTask,
  classifyTaskAnswer,
  digestTask,
  gjsonUint,
  goCompactJson,
  loadOrCreateIdentity,
  parseTaskProjectId,
  readTaskBody,
  taskIdOf,
} from '../src/index.js';
import { tempDir } from './helpers.js';

const PROJECT = { projectId: '42', projectVersion: '0.1' };
const READING = { powerW: 12.5, timestampMs: 1_764_000_000_000 };
const k1 = () => loadOrCreateIdentity(join(tempDir('task-'), 'identity'), { curve: 'secp256k1' });
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest();

describe('the /v1/task request (service/apinode/api/http.go HashTask), checked with node:crypto and ethers', () => {
  it('signs sha256 of the re-marshalled request (no signature) with a 64-byte low-S r||s; ethers recovers the device', () => {
    const id = k1();
    const t = buildReadingTask(id, 7, READING, PROJECT);
    expect(t.signedJson).toBe(
      '{"nonce":7,"projectID":"42","projectVersion":"0.1","payload":{"sensor_reading":12.5,"timestamp":1764000000}}',
    );
    expect(t.body).toBe(`${t.signedJson.slice(0, -1)},"signature":"${t.signature}"}`);
    expect(t.signature).toMatch(/^0x[0-9a-f]{128}$/);
    const digest = `0x${sha(t.signedJson).toString('hex')}`;
    expect(Buffer.from(digestTask(t.signedJson, t.payload)).toString('hex')).toBe(digest.slice(2));
    const s = BigInt(`0x${t.signature.slice(66)}`);
    expect(s <= 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n).toBe(true); // low S: at most n/2
    const sig = Signature.from({ r: `0x${t.signature.slice(2, 66)}`, s: `0x${t.signature.slice(66)}`, v: 27 + t.recoveryId });
    expect(recoverAddress(digest, sig).toLowerCase()).toBe(id.deviceId);
    expect(t.taskId).toBe(keccak256(`0x${t.signature.slice(2)}0${t.recoveryId}`));
    // A resend is the same bytes: deterministic signatures, one fixed layout.
    expect(buildReadingTask(id, 7, READING, PROJECT).body).toBe(t.body);
    expect(buildReadingTask(id, 8, READING, PROJECT).body).not.toBe(t.body);
    expect(readTaskBody(t.body)).toMatchObject({ nonce: '7', projectId: '42', projectVersion: '0.1', payload: t.payload });
  });

  it('omits an empty projectVersion; HTML characters in the payload are escaped as Go writes them; white space compacted', () => {
    const id = k1();
    const t = buildTask(id, 1, '{ "a" : "<b>&\u2028" , "n": [1, 2.50] }', { projectId: '007', projectVersion: '' });
    expect(t.signedJson).toBe('{"nonce":1,"projectID":"7","payload":{"a":"\\u003cb\\u003e\\u0026\\u2028","n":[1,2.50]}}');
    expect(goCompactJson('{"s":"a b\\" c"}')).toBe('{"s":"a b\\" c"}');
  });

  it("signed keys (Pebble's timestamp): sha256(payload hash || value as uint64 little-endian)", () => {
    const id = k1();
    const t = buildReadingTask(id, 3, READING, { ...PROJECT, signedKeys: ['timestamp'] });
    const le = Buffer.alloc(8);
    le.writeBigUInt64LE(1_764_000_000n);
    const expected = sha(Buffer.concat([sha(t.signedJson), le]));
    expect(Buffer.from(digestTask(t.signedJson, t.payload, ['timestamp']))).toEqual(expected);
    const sig = Signature.from({ r: `0x${t.signature.slice(2, 66)}`, s: `0x${t.signature.slice(66)}`, v: 27 + t.recoveryId });
    expect(recoverAddress(`0x${expected.toString('hex')}`, sig).toLowerCase()).toBe(id.deviceId);
    // gjson's Uint(): floats truncated, missing 0, true 1, digit strings their value.
    expect([gjsonUint('{"x":12.9}', 'x'), gjsonUint('{}', 'x'), gjsonUint('{"x":true}', 'x'), gjsonUint('{"x":"15"}', 'x')]).toEqual([
      12n,
      0n,
      1n,
      15n,
    ]);
  });

  it('project IDs from 1 to 2^256-1', () => {
    expect(parseTaskProjectId(String(2n ** 256n - 1n))).toBe(String(2n ** 256n - 1n));
    expect(parseTaskProjectId(' 0042 ')).toBe('42');
    for (const bad of ['0', String(2n ** 256n), '-1', '1.5', 'x', 1.5]) expect(() => parseTaskProjectId(bad), String(bad)).toThrow(/1 to/);
  });
});

describe('the /v1/task answers, classified', () => {
  const id = k1();
  const t = buildReadingTask(id, 5, READING, PROJECT);
  const ctx = { requestBody: t.body };
  it('200 with the taskID of this signature is delivered; another taskID is "answer not from the node", kept', () => {
    expect(classifyTaskAnswer(200, `{"taskID":"${t.taskId}"}`, ctx)).toMatchObject({ kind: 'delivered', taskId: t.taskId });
    const sig = Buffer.from(t.signature.slice(2), 'hex');
    expect(classifyTaskAnswer(200, `{"taskID":"${taskIdOf(sig, (1 - t.recoveryId) as 0 | 1)}"}`, ctx).kind).toBe('delivered');
    const other = classifyTaskAnswer(200, `{"taskID":"0x${'12'.repeat(32)}"}`, ctx);
    expect(other).toMatchObject({ kind: 'transient', reason: 'answer not from the node', errorKey: 'NotFromNode' });
    expect(classifyTaskAnswer(200, '{"taskID":""}', ctx).kind).toBe('transient');
    expect(classifyTaskAnswer(200, '<html>', { ...ctx, contentType: 'text/html' }).kind).toBe('transient');
  });
  it('403 not approved, 400 unknown project/version and any other 400 are kept (config); 5xx transient', () => {
    expect(classifyTaskAnswer(403, '{"error":"device does not have permission"}', ctx)).toMatchObject({
      kind: 'config',
      errorKey: 'NotApproved',
      reason: 'device not approved for project 42',
    });
    expect(classifyTaskAnswer(400, '{"error":"failed to get project: project not exist, project_id 42"}', ctx)).toMatchObject({
      kind: 'config',
      errorKey: 'UnknownProject',
      reason: 'unknown project 42 / version 0.1',
    });
    expect(classifyTaskAnswer(400, '{"error":"failed to get project config: project config not exist"}', ctx)).toMatchObject({
      kind: 'config',
      errorKey: 'UnknownVersion',
    });
    const bug = classifyTaskAnswer(400, '{"error":"invalid signature; could not recover public key: x"}', ctx);
    expect(bug).toMatchObject({ kind: 'config', errorKey: 'HTTP 400' });
    expect(bug.advice).toContain('invalid signature; could not recover public key');
    expect(classifyTaskAnswer(500, '{"error":"could not save task: x"}', ctx).kind).toBe('transient');
    expect(classifyTaskAnswer(404, '404 page not found', ctx)).toMatchObject({ kind: 'config' });
    expect(classifyTaskAnswer(404, '404 page not found', ctx).advice).toMatch(/\/message/);
  });
});
