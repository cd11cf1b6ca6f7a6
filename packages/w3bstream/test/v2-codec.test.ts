import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SigningKey, computeAddress, keccak256, recoverAddress, toUtf8Bytes } from 'ethers';
import { describe, expect, it } from 'vitest';
import {
  IdentityCurveError,
  ProjectIdError,
  buildMessageV2,
  checkMessageV2,
  digestV2,
  goJsonString,
  loadOrCreateIdentity,
  parseProjectId,
  signedJsonV2,
} from '../src/index.js';
import { tempDir } from './helpers.js';

const REF = { projectId: '42', projectVersion: '0.1' };
const READING = { powerW: 12.5, timestampMs: 1_764_000_000_000 };

function k1Identity() {
  return loadOrCreateIdentity(join(tempDir('v2-'), 'identity'), { curve: 'secp256k1' });
}

describe('W3bstream 2 message: an independent implementation (ethers) agrees byte for byte', () => {
  it('same keccak256 digest, same 65-byte r||s||v signature, same recovered address', () => {
    const id = k1Identity();
    const msg = buildMessageV2(id, READING, REF);
    expect(msg.signedJson).toBe('{"projectID":42,"projectVersion":"0.1","data":"{\\"sensor_reading\\":12.5,\\"timestamp\\":1764000000}"}');
    const digestHex = keccak256(toUtf8Bytes(msg.signedJson));
    expect(`0x${Buffer.from(digestV2(msg.signedJson)).toString('hex')}`).toBe(digestHex);
    // ethers signs the digest itself (RFC 6979, low S, v = 27/28): the go-ethereum layout is v - 27.
    const d = `0x${Buffer.from(id.privateKey.export({ format: 'jwk' }).d!, 'base64url').toString('hex')}`;
    const theirs = new SigningKey(d).sign(digestHex);
    const theirsHex = `${theirs.r}${theirs.s.slice(2)}${(theirs.v - 27).toString(16).padStart(2, '0')}`;
    expect(msg.signature).toBe(theirsHex);
    expect(msg.signature).toMatch(/^0x[0-9a-f]{128}0[01]$/);
    expect(recoverAddress(digestHex, theirs).toLowerCase()).toBe(id.deviceId);
    expect(computeAddress(`0x${id.publicKeyHex}`).toLowerCase()).toBe(id.deviceId);
    const checked = checkMessageV2(msg.body);
    expect(checked).toMatchObject({ ok: true, deviceId: id.deviceId, publicKeyHex: id.publicKeyHex, projectId: '42', data: msg.dataText });
    // What ethers recovers from the meter's own signature bytes is the device too.
    expect(recoverAddress(digestHex, `0x${msg.signature.slice(2, 130)}${msg.signature.endsWith('00') ? '1b' : '1c'}`).toLowerCase()).toBe(
      id.deviceId,
    );
  });

  it("a wire profile's extra data member is inside the signed data text, and the node's check accepts it", () => {
    const id = k1Identity();
    const msg = buildMessageV2(id, READING, { ...REF, extraData: [['calibration_id', '20260514-3f9a1c2e']] });
    expect(msg.dataText).toBe('{"sensor_reading":12.5,"timestamp":1764000000,"calibration_id":"20260514-3f9a1c2e"}');
    expect(checkMessageV2(msg.body)).toMatchObject({ ok: true, deviceId: id.deviceId, data: msg.dataText });
  });

  it('the body is the signed JSON with the signature as the last field, and verifies after a JSON round trip', () => {
    const id = k1Identity();
    const msg = buildMessageV2(id, READING, REF);
    expect(msg.body).toBe(`${msg.signedJson.slice(0, -1)},"signature":"${msg.signature}"}`);
    expect(Object.keys(JSON.parse(msg.body))).toEqual(['projectID', 'projectVersion', 'data', 'signature']);
    // The node decodes and re-marshals: whitespace and key order of the request do not matter.
    const o = JSON.parse(msg.body) as Record<string, unknown>;
    const reordered = JSON.stringify(
      { signature: o.signature, data: o.data, projectVersion: o.projectVersion, projectID: o.projectID },
      null,
      2,
    );
    expect(checkMessageV2(reordered)).toMatchObject({ ok: true, deviceId: id.deviceId });
    // A resend is byte-identical (deterministic nonces): the outbox body is the request.
    expect(buildMessageV2(id, READING, REF).body).toBe(msg.body);
  });

  it('a changed field, another project or a flipped signature byte recovers another device or nothing', () => {
    const id = k1Identity();
    const msg = buildMessageV2(id, READING, REF);
    const other = checkMessageV2(msg.body.replace('"projectID":42', '"projectID":43'));
    expect(other.ok && other.deviceId).not.toBe(id.deviceId);
    const data = checkMessageV2(msg.body.replace('12.5', '12.6'));
    expect(data.ok && data.deviceId).not.toBe(id.deviceId);
    const flipped = `${msg.signature.slice(0, 10)}${msg.signature[10] === '0' ? '1' : '0'}${msg.signature.slice(11)}`;
    const f = checkMessageV2(msg.body.replace(msg.signature, flipped));
    expect(!f.ok || f.deviceId !== id.deviceId).toBe(true);
  });

  it('refuses to sign on a P-256 identity (the node recovers secp256k1 only)', () => {
    const id = loadOrCreateIdentity(join(tempDir('v2p-'), 'identity'), { curve: 'p256' });
    expect(() => buildMessageV2(id, READING, REF)).toThrow(IdentityCurveError);
    expect(() => buildMessageV2(id, READING, REF)).toThrow(/secp256k1/);
  });
});

describe('Go json.Marshal string escaping', () => {
  it('escapes <, >, &, U+2028, U+2029 like Go and keeps the rest as JSON.stringify does', () => {
    expect(goJsonString('a<b>&c')).toBe('"a\\u003cb\\u003e\\u0026c"');
    expect(goJsonString('x\u2028y\u2029z')).toBe('"x\\u2028y\\u2029z"');
    expect(goJsonString('"\\\b\f\n\r\t\u0001\u001f\u007f')).toBe('"\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\u007f"');
    expect(goJsonString('é€😀')).toBe('"é€😀"');
  });

  it('a lone surrogate becomes U+FFFD, as Go decodes and re-marshals it', () => {
    expect(goJsonString('a\ud800b')).toBe('"a\ufffdb"');
    expect(goJsonString('\udc00')).toBe('"\ufffd"');
    expect(goJsonString('\ud83d\ude00')).toBe('"😀"');
  });

  it('the signed JSON uses the Go field order and escaping for every field', () => {
    expect(signedJsonV2({ projectId: '18446744073709551615', projectVersion: 'v<1>' }, '{"a":"&"}')).toBe(
      '{"projectID":18446744073709551615,"projectVersion":"v\\u003c1\\u003e","data":"{\\"a\\":\\"\\u0026\\"}"}',
    );
  });
});

describe('project ID', () => {
  it('accepts 1 .. 2^64-1 as the canonical decimal and refuses the rest', () => {
    expect(parseProjectId('42')).toBe('42');
    expect(parseProjectId(' 007 ')).toBe('7');
    expect(parseProjectId(42)).toBe('42');
    expect(parseProjectId('18446744073709551615')).toBe('18446744073709551615');
    for (const bad of ['0', '-1', '1.5', '1e3', '18446744073709551616', '', 'abc', 1.5, null])
      expect(() => parseProjectId(bad)).toThrow(ProjectIdError);
  });
});

describe('checkMessageV2 answers as the node does', () => {
  const body = (o: Record<string, unknown>) => JSON.stringify(o);
  it('required fields: 0 and empty strings are missing, with gin validator texts', () => {
    const c = checkMessageV2(body({ projectID: 0, projectVersion: '', data: 'x', signature: '0x00' }));
    expect(c).toMatchObject({ ok: false, status: 400 });
    expect(!c.ok && c.error).toBe(
      "invalid request payload: Key: 'HandleMessageReq.ProjectID' Error:Field validation for 'ProjectID' failed on the 'required' tag\nKey: 'HandleMessageReq.ProjectVersion' Error:Field validation for 'ProjectVersion' failed on the 'required' tag",
    );
  });

  it('type errors, a signature without 0x, of odd length or not 65 bytes, and a bad recovery id', () => {
    const err = (o: Record<string, unknown> | string) => {
      const c = checkMessageV2(typeof o === 'string' ? o : body(o));
      return c.ok ? 'ok' : c.error;
    };
    const base = { projectID: 1, projectVersion: '1', data: 'd' };
    expect(err({ ...base, projectID: '1', signature: '0x00' })).toMatch(
      /^invalid request payload: json: cannot unmarshal string into .*projectID of type uint64$/,
    );
    expect(err({ ...base, projectID: -1, signature: '0x00' })).toMatch(/cannot unmarshal number -1/);
    expect(err({ ...base, projectID: 1.5, signature: '0x00' })).toMatch(/cannot unmarshal number 1.5/);
    expect(err('[1]')).toMatch(/^invalid request payload: json: cannot unmarshal array/);
    expect(err('{')).toMatch(/^invalid request payload: /);
    expect(err({ ...base, signature: 'abcd' })).toBe('invalid signature format: hex string without 0x prefix');
    expect(err({ ...base, signature: '0xabc' })).toBe('invalid signature format: hex string of odd length');
    expect(err({ ...base, signature: '0xzz' })).toBe('invalid signature format: invalid hex string');
    expect(err({ ...base, signature: '0xabcd' })).toBe('invalid signature; could not recover public key: invalid signature');
    const id = k1Identity();
    const msg = buildMessageV2(id, READING, REF);
    const v27 = msg.body.replace(msg.signature, `${msg.signature.slice(0, -2)}${msg.signature.endsWith('00') ? '1b' : '1c'}`);
    expect(err(v27)).toMatch(/^invalid signature; could not recover public key: invalid signature recovery code/);
  });

  it('keys match case-insensitively and the last duplicate wins, like Go', () => {
    const id = k1Identity();
    const msg = buildMessageV2(id, READING, REF);
    const o = JSON.parse(msg.body) as Record<string, unknown>;
    const text = `{"ProjectId":${o.projectID},"PROJECTVERSION":"0.1","data":"decoy","data":${JSON.stringify(o.data)},"signature":"${o.signature}"}`;
    expect(checkMessageV2(text)).toMatchObject({ ok: true, deviceId: id.deviceId });
  });
});

describe("the node's re-marshalling, against Go's own encoding/json (fixtures/go-remarshal)", () => {
  // Made by fixtures/go-remarshal/main.go: the node's struct and steps, run by Go.
  const cases = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'go-remarshal.json'), 'utf8')) as Array<{
    body: string;
    signedJson: string;
  }>;
  it.each(cases.map((c, i) => [i, c] as const))('case %i: the same bytes are hashed', (_i, c) => {
    const checked = checkMessageV2(c.body);
    // The signature "0x00" recovers nothing: the bytes the node would have hashed are still known.
    expect(checked.ok).toBe(false);
    expect(checked.signedJson).toBe(c.signedJson);
  });
});
