import { execFileSync } from 'node:child_process';
import { createPublicKey, createPrivateKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CURVES,
  ReadingError,
  buildMessage,
  buildMessageV2,
  buildReadingTask,
  checkMessageV2,
  createBodyVerifier,
  dataText,
  derToRaw,
  deviceAddress,
  formatSensorReading,
  loadOrCreateIdentity,
  objectMembers,
  publicKeyHex,
  rawToDer,
  readTaskBody,
  signMessage,
  signMessageV2,
  signReadingTask,
  verifyBody,
  type Curve,
  type DigestSigner,
} from '../src/index.js';
import { tempDir } from './helpers.js';

// The verified real example from the tutorial's applet fixtures (docs/w3bstream.md section 3).
const VECTOR = {
  data: '{"sensor_reading":1.6163222834016864,"timestamp":1681943510756}',
  publicKey:
    '040e2d0a3591eb27ad3b55038603c3813310fdaf0f15346016a576841790fb020756cd31af40e3c6d543fb332062d47dd717490f2cc28d053c63de3ae892ec091b',
  signature:
    '3045022025891d5d149de8ad612f71687f6e4a9a13335d5cb35c0e6f54237ea8715084c8022100cf2e3bf7304ddf417dc75d52f0403013901a146636203ad138adb8ea3750b85f',
};
const body = (data: string, signature = VECTOR.signature, publicKey = VECTOR.publicKey) =>
  `{"data":${data},"signature":"${signature}","public_key":"${publicKey}"}`;

/** Independent of the code under test: r||s hex -> DER hex, as openssl wants it. */
function testRawToDer(raw: string): string {
  const int = (h: string) => {
    let b = Buffer.from(h, 'hex');
    while (b.length > 1 && b[0] === 0 && !(b[1]! & 0x80)) b = b.subarray(1);
    if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
    return Buffer.concat([Buffer.from([2, b.length]), b]);
  };
  const seq = Buffer.concat([int(raw.slice(0, 64)), int(raw.slice(64))]);
  return Buffer.concat([Buffer.from([0x30, seq.length]), seq]).toString('hex');
}

function derS(der: string): string {
  const b = Buffer.from(der, 'hex');
  const rLen = b[3]!;
  return b.subarray(6 + rLen, 6 + rLen + b[5 + rLen]!).toString('hex');
}

describe('the docs/w3bstream.md test vector', () => {
  it('verifies as given (P-256, DER, high S, timestamp in ms)', () => {
    const v = verifyBody(body(VECTOR.data));
    expect(v).toMatchObject({
      ok: true,
      reason: null,
      curve: 'p256',
      encoding: 'der',
      lowS: false,
      sensorReading: 1.6163222834016864,
      timestamp: 1681943510756,
    });
    expect(v.data).toEqual({ sensor_reading: 1.6163222834016864, timestamp: 1681943510756 });
    expect(v.dataText).toBe(VECTOR.data);
    expect(v.deviceId).toBe(deviceAddress(VECTOR.publicKey));
  });

  it('does not verify with whitespace anywhere in the data text', () => {
    const variants = [
      VECTOR.data.replace(':1.6', ': 1.6'),
      VECTOR.data.replace('{', '{ '),
      VECTOR.data.replace(',', ', '),
      VECTOR.data.replace('}', '\n}'),
      VECTOR.data.replace('"timestamp"', '\t"timestamp"'),
    ];
    for (const d of variants) {
      expect(JSON.parse(d)).toEqual(JSON.parse(VECTOR.data)); // same values, different bytes
      expect(verifyBody(body(d))).toMatchObject({ ok: false, reason: 'signature does not verify' });
    }
  });

  it('high S: refused in raw form (this meter signs raw with a low S), accepted in foreign DER unless the meter is expected', () => {
    const raw = derToRaw(VECTOR.signature);
    expect(raw).toHaveLength(128);
    // The same signature with S in the upper half, raw: an altered copy, not something this meter sends.
    expect(verifyBody(body(VECTOR.data, raw))).toMatchObject({
      ok: false,
      encoding: 'raw',
      lowS: false,
      reason: expect.stringMatching(/high S/),
    });
    const n = BigInt(`0x${CURVES.p256.orderHex}`);
    const lowS = (n - BigInt(`0x${raw.slice(64)}`)).toString(16).padStart(64, '0');
    expect(verifyBody(body(VECTOR.data, raw.slice(0, 64) + lowS))).toMatchObject({ ok: true, lowS: true });
    expect(verifyBody(body(VECTOR.data, raw.slice(0, 64) + lowS), { requireLowS: 'all' })).toMatchObject({ ok: true, lowS: true });
    // The tutorial's DER vector (high S) is foreign: it verifies, flagged, unless every S must be low.
    expect(verifyBody(body(VECTOR.data))).toMatchObject({ ok: true, encoding: 'der', lowS: false });
    expect(verifyBody(body(VECTOR.data), { requireLowS: 'all' })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/high S \(der\)/),
    });
    expect(rawToDer(raw)).toBe(VECTOR.signature);
  });

  it('does not verify a changed reading, timestamp, key or signature', () => {
    expect(verifyBody(body(VECTOR.data.replace('1.616', '1.617'))).reason).toBe('signature does not verify');
    expect(verifyBody(body(VECTOR.data.replace('756}', '757}'))).reason).toBe('signature does not verify');
    const otherKey = loadOrCreateIdentity(join(tempDir(), 'id')).publicKeyHex;
    expect(verifyBody(body(VECTOR.data, VECTOR.signature, otherKey)).reason).toBe('signature does not verify');
    expect(verifyBody(body(VECTOR.data, VECTOR.signature.replace(/5f$/, '60'))).reason).toBe('signature does not verify');
  });
});

describe('formatting (docs/w3bstream.md section 2)', () => {
  it('writes sensor_reading in shortest round-trip form, always with a decimal point or exponent', () => {
    const cases: Array<[number, string]> = [
      [12, '12.0'],
      [0, '0.0'],
      [-0, '0.0'],
      [12.34, '12.34'],
      [0.1 + 0.2, '0.30000000000000004'],
      [-3, '-3.0'],
      [1e21, '1e+21'],
      [1e-7, '1e-7'],
      [123456789012, '123456789012.0'],
    ];
    for (const [powerW, text] of cases) {
      expect(formatSensorReading(powerW)).toBe(text);
      expect(JSON.parse(text)).toBe(powerW === 0 ? 0 : powerW); // round-trips exactly
    }
    for (const bad of [NaN, Infinity, -Infinity]) expect(() => formatSensorReading(bad)).toThrow(ReadingError);
  });

  it('writes timestamp as integer seconds by default, milliseconds when asked, and refuses an unset clock', () => {
    expect(dataText(8, 1_764_000_123_999)).toBe('{"sensor_reading":8.0,"timestamp":1764000123}');
    expect(dataText(8, 1_764_000_123_456.7, 'ms')).toBe('{"sensor_reading":8.0,"timestamp":1764000123456}');
    expect(() => dataText(8, 0)).toThrow(/clock is not set/);
    expect(() => dataText(8, 999)).toThrow(ReadingError); // floors to 0 s
  });

  it("appends a wire profile's members after the timestamp, JSON-encoded, and refuses names that could shadow the two the applets read", () => {
    expect(dataText(8, 1_764_000_123_999, 's', [['calibration_id', '20260514-3f9a1c2e']])).toBe(
      '{"sensor_reading":8.0,"timestamp":1764000123,"calibration_id":"20260514-3f9a1c2e"}',
    );
    expect(dataText(8, 1_764_000_123_999, 's', [['note', 'a"b']])).toBe('{"sensor_reading":8.0,"timestamp":1764000123,"note":"a\\"b"}');
    for (const bad of ['timestamp', 'sensor_reading', 'Bad', 'a-b', ''])
      expect(() => dataText(8, 1_764_000_123_999, 's', [[bad, 'x']])).toThrow(/data member name/);
    // The verifier takes such a body as the meter signed it, the extra member inside the signed text.
    const id = loadOrCreateIdentity(join(tempDir(), 'id'));
    const msg = buildMessage(id, { powerW: 4, timestampMs: 1_764_000_000_000 }, { extraData: [['calibration_id', 'none']] });
    const v = verifyBody(msg.body);
    expect(v).toMatchObject({
      ok: true,
      sensorReading: 4,
      dataText: '{"sensor_reading":4.0,"timestamp":1764000000,"calibration_id":"none"}',
    });
  });
});

describe('buildMessage', () => {
  it('splices the signed data text unchanged into the body, with the identity public key', () => {
    const id = loadOrCreateIdentity(join(tempDir(), 'id'));
    const msg = buildMessage(id, { powerW: 4, timestampMs: 1_764_000_000_000 });
    expect(msg.dataText).toBe('{"sensor_reading":4.0,"timestamp":1764000000}');
    expect(msg.body).toBe(`{"data":${msg.dataText},"signature":"${msg.signature}","public_key":"${id.publicKeyHex}"}`);
    expect(msg.signature).toMatch(/^[0-9a-f]{128}$/); // raw r||s by default
    expect(verifyBody(msg.body)).toMatchObject({ ok: true, deviceId: id.deviceId, encoding: 'raw', lowS: true });
    const der = buildMessage(id, { powerW: 4, timestampMs: 1_764_000_000_000 }, { signatureEncoding: 'der', timestampUnit: 'ms' });
    expect(der.signature).toMatch(/^30[0-9a-f]+$/);
    expect(der.dataText).toContain('"timestamp":1764000000000}');
    expect(verifyBody(der.body)).toMatchObject({ ok: true, encoding: 'der' });
  });

  it('always produces low S (200 signatures per curve)', () => {
    for (const curve of ['p256', 'secp256k1'] as Curve[]) {
      const id = loadOrCreateIdentity(join(tempDir(), 'id'), { curve });
      const half = BigInt(`0x${CURVES[curve].orderHex}`) / 2n;
      for (let i = 0; i < 200; i++) {
        const sig = id.sign(`reading ${i}`, 'raw');
        expect(BigInt(`0x${sig.slice(64)}`) <= half).toBe(true);
      }
    }
  });
});

describe('the extended reading (seq and energy_wh inside the signed data)', () => {
  it("appends the two members after the tutorial's two, signed, and verifyBody returns them", () => {
    expect(dataText(4, 1_764_000_000_000, 's', [], { seq: 1, energyWh: 0 })).toBe(
      '{"sensor_reading":4.0,"timestamp":1764000000,"seq":1,"energy_wh":0.0}',
    );
    expect(dataText(0.5, 1_764_000_000_123, 'ms', [['calibration_id', 'c1']], { seq: 1734, energyWh: 12.4567 })).toBe(
      '{"sensor_reading":0.5,"timestamp":1764000000123,"seq":1734,"energy_wh":12.4567,"calibration_id":"c1"}',
    );
    const id = loadOrCreateIdentity(join(tempDir(), 'id'));
    const msg = buildMessage(
      id,
      { powerW: 4, timestampMs: 1_764_000_000_000, extras: { seq: 42, energyWh: 3.25 } },
      { publicKeyField: 'address' },
    );
    expect(msg.body).toBe(`{"data":${msg.dataText},"signature":"${msg.signature}","public_key":"${id.deviceId}"}`);
    expect(verifyBody(msg.body)).toMatchObject({ ok: true, seq: 42, energyWh: 3.25, sensorReading: 4, timestamp: 1_764_000_000 });
    expect(verifyBody(buildMessage(id, { powerW: 4, timestampMs: 1_764_000_000_000 }).body)).toMatchObject({
      ok: true,
      seq: null,
      energyWh: null,
    });
    // Inside the signature: a changed number or total does not verify.
    expect(verifyBody(msg.body.replace('"seq":42', '"seq":43')).ok).toBe(false);
    expect(verifyBody(msg.body.replace('"energy_wh":3.25', '"energy_wh":3.5')).ok).toBe(false);
  });

  it('refuses numbers that are not what the names promise, and impossible extras when signing', () => {
    const reason = (data: string) => verifyBody(body(data)).reason;
    const base = '"sensor_reading":1.6163222834016864,"timestamp":1681943510756';
    expect(reason(`{${base},"seq":1.5,"energy_wh":1.0}`)).toBe('seq 1.5 is not a whole number from 1');
    expect(reason(`{${base},"seq":0,"energy_wh":1.0}`)).toBe('seq 0 is not a whole number from 1');
    expect(reason(`{${base},"seq":"7","energy_wh":1.0}`)).toBe('seq "7" is not a whole number from 1');
    expect(reason(`{${base},"seq":7,"energy_wh":-1.0}`)).toBe('energy_wh -1 is not an amount of energy (a number >= 0)');
    expect(reason(`{${base},"seq":7,"seq":8}`)).toBe('data has more than one "seq" member');
    expect(() => dataText(1, 1_764_000_000_000, 's', [], { seq: 0, energyWh: 1 })).toThrow(ReadingError);
    expect(() => dataText(1, 1_764_000_000_000, 's', [], { seq: 1, energyWh: Number.NaN })).toThrow(/energy total NaN Wh/);
    // A wire profile's own members cannot take the extended reading's names.
    expect(() => dataText(1, 1_764_000_000_000, 's', [['seq', '7']])).toThrow(/data member name "seq" is not allowed/);
  });
  it('goes through the asynchronous seam (a key in a token) too: v1, W3bstream 2 /message and /v1/task sign the same data', async () => {
    const id = loadOrCreateIdentity(join(tempDir(), 'id'), { curve: 'secp256k1' });
    // A key with no synchronous signer, as a PKCS#11 token is: the seam hashes and awaits signDigest.
    const token: DigestSigner = { curve: id.curve, publicKeyHex: id.publicKeyHex, signDigest: (d) => id.signDigest(d) };
    const reading = { powerW: 4, timestampMs: 1_764_000_000_000, extras: { seq: 42, energyWh: 3.25 } };
    const want = '{"sensor_reading":4.0,"timestamp":1764000000,"seq":42,"energy_wh":3.25}';
    const v1 = await signMessage(token, reading, { publicKeyField: 'address' });
    expect(v1.dataText).toBe(want);
    expect(verifyBody(v1.body, { requireLowS: 'all' })).toMatchObject({ ok: true, deviceId: id.deviceId, seq: 42, energyWh: 3.25 });
    const project = { projectId: '7', projectVersion: '0.1' };
    const v2 = await signMessageV2(token, reading, project);
    expect(v2.dataText).toBe(want);
    expect(v2.dataText).toBe(buildMessageV2(id, reading, project).dataText);
    expect(checkMessageV2(v2.body)).toMatchObject({ ok: true, deviceId: id.deviceId });
    // The task: deterministic low-S signatures, so the seam's body is byte-equal to the key file's.
    const task = await signReadingTask(token, 42, reading, project);
    expect(readTaskBody(task.body)).toMatchObject({ nonce: '42', payload: want });
    expect(task.body).toBe(buildReadingTask(id, 42, reading, project).body);
  });
});

describe('verifyBody refuses what the applet would refuse', () => {
  it('with a reason for each rule', () => {
    const cases: Array<[string, RegExp]> = [
      ['nope', /not JSON/],
      ['[1,2]', /not a JSON object/],
      [body('{"sensor_reading":12,"timestamp":1681943510756}'), /sensor_reading 12 is not a float/],
      [body('{"sensor_reading":"1.5","timestamp":1681943510756}'), /sensor_reading missing or not a number/],
      [body('{"timestamp":1681943510756}'), /sensor_reading missing/],
      [body('{"sensor_reading":1.5,"timestamp":0}'), /timestamp is not a positive integer/],
      [body('{"sensor_reading":1.5,"timestamp":1.5}'), /timestamp is not a positive integer/],
      [body('{"sensor_reading":1.5,"timestamp":1e12}'), /timestamp 1e12 is not written as an integer/],
      [body('[1]'), /data is not an object/],
      [body(VECTOR.data, ''), /signature missing/],
      [body(VECTOR.data, VECTOR.signature, ''), /public_key missing/],
      [
        body(VECTOR.data, VECTOR.signature, '04abc'),
        /public_key is neither a device address .* nor a public key \(04 followed by 128 hex digits\)/,
      ],
      [body(VECTOR.data, VECTOR.signature, `0x${'ab'.repeat(19)}`), /public_key is neither a device address \(0x \+ 40 hex digits\)/],
      // The right length but not the signer's address: recovery finds no key with it.
      [body(VECTOR.data, VECTOR.signature, `0x${'ab'.repeat(20)}`), /signature is not by the device 0xabab/],
      [body(VECTOR.data, 'zz'), /signature is not hex/],
      [body(VECTOR.data, '3100'), /nor valid DER/],
      // DER with a needless leading zero byte in r: malleable, refused.
      [body(VECTOR.data, `3046022100${VECTOR.signature.slice(8)}`), /INTEGER not minimally encoded/],
    ];
    for (const [b, reason] of cases) {
      const v = verifyBody(b);
      expect(v.ok, b).toBe(false);
      expect(v.reason).toMatch(reason);
    }
  });

  it('refuses a body with two data members (JSON.parse would keep the unsigned one)', () => {
    const forged = `{"data":${VECTOR.data},"data":{"sensor_reading":999.0,"timestamp":1681943510756},"signature":"${VECTOR.signature}","public_key":"${VECTOR.publicKey}"}`;
    expect(JSON.parse(forged).data.sensor_reading).toBe(999);
    expect(verifyBody(forged)).toMatchObject({ ok: false, reason: 'body has more than one "data" member' });
    const inner = body('{"sensor_reading":1.0,"sensor_reading":2.0,"timestamp":5}');
    expect(verifyBody(inner).reason).toBe('data has more than one "sensor_reading" member');
  });

  it('finds the data text by structure, not by pattern (keys and strings that look like data)', () => {
    const tricky = `{"note":"\\"data\\":{\\"sensor_reading\\":9.0}","x":{"data":{"a":[1,{"b":"}"}]}},"data":${VECTOR.data},"signature":"${VECTOR.signature}","public_key":"${VECTOR.publicKey}"}`;
    expect(objectMembers(tricky).map((m) => m.key)).toEqual(['note', 'x', 'data', 'signature', 'public_key']);
    expect(verifyBody(tricky)).toMatchObject({ ok: true, dataText: VECTOR.data });
    // Whitespace around (not inside) the data text does not change the signed bytes.
    expect(verifyBody(`{ "data" :  ${VECTOR.data} , "signature":"${VECTOR.signature}","public_key":"${VECTOR.publicKey}" }`).ok).toBe(true);
  });
});

describe('createBodyVerifier', () => {
  it('answers exactly like verifyBody, across keys, curves and failures, with a bounded cache', () => {
    const verify = createBodyVerifier({ cacheSize: 2 });
    const ids = (['p256', 'secp256k1', 'p256'] as Curve[]).map((curve) => loadOrCreateIdentity(join(tempDir(), 'id'), { curve }));
    const bodies = [
      body(VECTOR.data),
      body(VECTOR.data.replace(':1.6', ': 1.6')),
      body(VECTOR.data, VECTOR.signature, `04${'11'.repeat(64)}`), // not a point on either curve
      ...ids.flatMap((id) => [1.5, 2.5].map((w) => buildMessage(id, { powerW: w, timestampMs: 1_764_000_000_000 }).body)),
    ];
    for (let round = 0; round < 2; round++) for (const b of bodies) expect(verify(b)).toEqual(verifyBody(b));
    expect(bodies.map((b) => verify(b).ok)).toEqual([true, false, false, true, true, true, true, true, true]);
  });
});

describe('openssl agrees (independent implementation)', () => {
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' }).toString();

  for (const curve of ['p256', 'secp256k1'] as Curve[]) {
    for (const encoding of ['raw', 'der'] as const) {
      it(`openssl verifies what we sign on ${curve} (${encoding}), and refuses altered data`, () => {
        const dir = tempDir();
        const id = loadOrCreateIdentity(join(dir, 'identity'), { curve });
        const msg = buildMessage(id, { powerW: 8.25, timestampMs: 1_764_000_000_000 }, { signatureEncoding: encoding });
        const sHex = encoding === 'raw' ? msg.signature.slice(64) : derS(msg.signature);
        expect(BigInt(`0x${sHex}`) <= BigInt(`0x${CURVES[curve].orderHex}`) / 2n).toBe(true);
        // The public key as SPKI DER built from the 04… hex alone, as a verifier would receive it.
        writeFileSync(join(dir, 'pub.der'), Buffer.from(CURVES[curve].spkiPrefixHex + id.publicKeyHex, 'hex'));
        writeFileSync(join(dir, 'data.txt'), msg.dataText);
        writeFileSync(join(dir, 'sig.der'), Buffer.from(encoding === 'der' ? msg.signature : testRawToDer(msg.signature), 'hex'));
        const verifyArgs = [
          'dgst',
          '-sha256',
          '-verify',
          join(dir, 'pub.der'),
          '-keyform',
          'DER',
          '-signature',
          join(dir, 'sig.der'),
          join(dir, 'data.txt'),
        ];
        expect(openssl(verifyArgs).trim()).toBe('Verified OK');
        writeFileSync(join(dir, 'data.txt'), msg.dataText.replace('8.25', '8.26'));
        let failed: { status?: number; stdout?: Buffer } = {};
        try {
          openssl(verifyArgs);
        } catch (err) {
          failed = err as typeof failed;
        }
        expect(failed.status).toBe(1);
        expect(String(failed.stdout)).toMatch(/Verification failure/);
      });
    }

    it(`we verify what openssl signs on ${curve} (its key, its DER signature, and the raw form)`, () => {
      const dir = tempDir();
      const name = CURVES[curve].nodeName;
      openssl(['ecparam', '-name', name, '-genkey', '-noout', '-out', join(dir, 'key.pem')]);
      const text = '{"sensor_reading":3.5,"timestamp":1764000000}';
      writeFileSync(join(dir, 'data.txt'), text);
      openssl(['dgst', '-sha256', '-sign', join(dir, 'key.pem'), '-out', join(dir, 'sig.der'), join(dir, 'data.txt')]);
      const pub = publicKeyHex(createPublicKey(createPrivateKey(readFileSync(join(dir, 'key.pem')))));
      const sig = readFileSync(join(dir, 'sig.der')).toString('hex');
      expect(verifyBody(body(text, sig, pub))).toMatchObject({ ok: true, curve, encoding: 'der' });
      const raw = derToRaw(sig);
      const n = BigInt(`0x${CURVES[curve].orderHex}`);
      const s = BigInt(`0x${raw.slice(64)}`);
      const [low, high] = s > n / 2n ? [n - s, s] : [s, n - s];
      expect(verifyBody(body(text, raw.slice(0, 64) + low.toString(16).padStart(64, '0'), pub))).toMatchObject({
        ok: true,
        curve,
        encoding: 'raw',
        lowS: true,
      });
      expect(verifyBody(body(text, raw.slice(0, 64) + high.toString(16).padStart(64, '0'), pub))).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/high S/),
      });
      expect(verifyBody(body(text.replace('3.5', '3.6'), sig, pub)).ok).toBe(false);
    });
  }
});

describe('the address form of public_key (what the original firmware sends)', () => {
  for (const curve of ['p256', 'secp256k1'] as Curve[]) {
    for (const encoding of ['raw', 'der'] as const) {
      it(`${curve} ${encoding}: the body carries the lowercase address, the data text is the same, and the signer is recovered`, () => {
        const id = loadOrCreateIdentity(join(tempDir(), 'identity'), { curve });
        const reading = { powerW: 2.25, timestampMs: 1_764_000_000_000 };
        const asAddress = buildMessage(id, reading, { signatureEncoding: encoding, publicKeyField: 'address' });
        const asKey = buildMessage(id, reading, { signatureEncoding: encoding, publicKeyField: 'key' });
        expect(asAddress.dataText).toBe(asKey.dataText);
        const sent = (JSON.parse(asAddress.body) as { public_key: string }).public_key;
        expect(sent).toBe(id.deviceId);
        expect(sent).toMatch(/^0x[0-9a-f]{40}$/);
        expect(asAddress.body).toBe(`{"data":${asAddress.dataText},"signature":"${asAddress.signature}","public_key":"${id.deviceId}"}`);
        for (const verify of [verifyBody, createBodyVerifier()]) {
          expect(verify(asAddress.body)).toMatchObject({
            ok: true,
            curve,
            encoding,
            lowS: true,
            publicKeyForm: 'address',
            publicKeyHex: id.publicKeyHex,
            deviceId: id.deviceId,
            data: { sensor_reading: 2.25, timestamp: 1_764_000_000 },
          });
          expect(verify(asKey.body)).toMatchObject({ ok: true, publicKeyForm: 'key', deviceId: id.deviceId });
        }
      });
    }

    it(`${curve}: altered data, another device's address or a high-S raw copy are refused`, () => {
      const id = loadOrCreateIdentity(join(tempDir(), 'identity'), { curve });
      const other = loadOrCreateIdentity(join(tempDir(), 'identity'), { curve });
      const m = buildMessage(id, { powerW: 12, timestampMs: 1_764_000_005_000 }, { publicKeyField: 'address' });
      expect(verifyBody(m.body.replace('12.0', '1.0'))).toMatchObject({ ok: false, reason: expect.stringMatching(/not by the device/) });
      expect(verifyBody(m.body.replace(id.deviceId, other.deviceId))).toMatchObject({
        ok: false,
        publicKeyHex: null,
        reason: `signature is not by the device ${other.deviceId} (no key recovered from it has that address)`,
      });
      const n = BigInt(`0x${CURVES[curve].orderHex}`);
      const highS = (n - BigInt(`0x${m.signature.slice(64)}`)).toString(16).padStart(64, '0');
      expect(verifyBody(m.body.replace(m.signature, m.signature.slice(0, 64) + highS))).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/high S/),
      });
      // A checksummed (mixed-case) address names the same device.
      const mixed = `0x${[...id.deviceId.slice(2)].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('')}`;
      expect(verifyBody(m.body.replace(id.deviceId, mixed))).toMatchObject({ ok: true, deviceId: id.deviceId });
    });
  }

  it("the receiver's verifier remembers an address's key: later bodies verify against it, a forgery is still refused", () => {
    const dir = tempDir();
    const id = loadOrCreateIdentity(join(dir, 'a'), { curve: 'secp256k1' });
    const other = loadOrCreateIdentity(join(dir, 'b'), { curve: 'p256' });
    const verify = createBodyVerifier();
    const at = (signer: typeof id, powerW: number) =>
      buildMessage(signer, { powerW, timestampMs: 1_764_000_000_000 }, { publicKeyField: 'address' });
    expect(verify(at(id, 1).body)).toMatchObject({ ok: true, curve: 'secp256k1', publicKeyHex: id.publicKeyHex });
    // Signed by another key but claiming id's address: the remembered key does not verify it, and recovery finds no key with that address.
    const forged = at(other, 2).body.replace(other.deviceId, id.deviceId);
    expect(verify(forged)).toMatchObject({
      ok: false,
      reason: `signature is not by the device ${id.deviceId} (no key recovered from it has that address)`,
    });
    expect(verify(at(id, 3).body)).toMatchObject({ ok: true, curve: 'secp256k1', publicKeyHex: id.publicKeyHex, deviceId: id.deviceId });
    expect(verify(at(id, 3).body.replace('3.0', '3.5'))).toMatchObject({ ok: false });
    expect(verify(at(other, 4).body)).toMatchObject({ ok: true, curve: 'p256', deviceId: other.deviceId });
  });

  it('the tutorial vector with its key replaced by its address still verifies (P-256, high-S DER)', () => {
    const address = deviceAddress(VECTOR.publicKey);
    expect(verifyBody(body(VECTOR.data, VECTOR.signature, address))).toMatchObject({
      ok: true,
      curve: 'p256',
      lowS: false,
      publicKeyHex: VECTOR.publicKey,
      deviceId: address,
    });
  });
});
