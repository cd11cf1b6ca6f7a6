import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { resolveSettings } from '@power-meter/service';
// mqtt.js's own packet codec (a dependency of mqtt): an independent writer and reader of the wire format.
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { MalformedPacketError, PacketSizeGuard, PacketTooLargeError } from '../src/mqtt/packet-guard.js';
import { describeMqttError } from '../src/mqtt/problems.js';
import { type MqttTlsFileError, readMqttTls } from '../src/mqtt/tls-files.js';
import { BACKEND_SETTINGS } from '../src/settings.js';

const publish = (topic: string, bytes: number, qos: 0 | 1 = 0): Buffer =>
  mqttPacket.generate(
    { cmd: 'publish', topic, payload: Buffer.alloc(bytes, 0x61), qos, retain: true, dup: false, messageId: qos ? 7 : undefined },
    { protocolVersion: 5 },
  );
const suback = (): Buffer => mqttPacket.generate({ cmd: 'suback', messageId: 1, granted: [0] }, { protocolVersion: 5 });
const pingresp = (): Buffer => mqttPacket.generate({ cmd: 'pingresp' }, { protocolVersion: 5 });

/** Feeds `stream` to a guard in chunks of `size` and parses what it lets through with mqtt-packet. */
function through(guard: PacketSizeGuard, stream: Buffer, size: number): Array<{ cmd: string; topic?: string }> {
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  const packets: Array<{ cmd: string; topic?: string }> = [];
  parser.on('packet', (p: mqttPacket.Packet) => packets.push({ cmd: p.cmd, topic: 'topic' in p ? p.topic : undefined }));
  parser.on('error', (e: Error) => {
    throw e;
  });
  for (let i = 0; i < stream.length; i += size) for (const part of guard.filter(stream.subarray(i, i + size))) parser.parse(part);
  return packets;
}

describe('incoming packet size guard', () => {
  it('lets small packets through unchanged, whatever the chunking (headers split across chunks too)', () => {
    const stream = Buffer.concat([suback(), publish('homeassistant/status', 6), pingresp(), publish('a/b', 200), publish('c', 0)]);
    for (const size of [1, 2, 3, 7, 64, stream.length]) {
      const g = new PacketSizeGuard(1024);
      expect(through(g, stream, size).map((p) => p.cmd)).toEqual(['suback', 'publish', 'pingresp', 'publish', 'publish']);
      expect(g.dropped).toBe(0);
    }
  });

  it('skips an oversized QoS 0 PUBLISH without holding it, and goes on with the next packet', () => {
    const big = publish('homeassistant/status', 5_000_000); // a 4-byte remaining length
    const stream = Buffer.concat([publish('x', 10), big, publish('homeassistant/status', 6)]);
    const drops: number[] = [];
    const g = new PacketSizeGuard(64 * 1024, (d) => drops.push(d.bytes));
    const passed: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 65_536) passed.push(...g.filter(stream.subarray(i, i + 65_536)));
    // What got through is just the two small packets: the big one's bytes never left the guard.
    expect(passed.reduce((n, b) => n + b.length, 0)).toBe(publish('x', 10).length + publish('homeassistant/status', 6).length);
    expect(drops).toEqual([big.length]);
    expect([g.dropped, g.droppedBytes]).toEqual([1, big.length]);
    const g2 = new PacketSizeGuard(64 * 1024);
    expect(through(g2, stream, 999).map((p) => `${p.cmd} ${p.topic}`)).toEqual(['publish x', 'publish homeassistant/status']);
  });

  it('counts the whole packet (fixed header included) against the limit, as MQTT 5 Maximum Packet Size does', () => {
    const p = publish('t', 100);
    expect(through(new PacketSizeGuard(p.length), p, 5)).toHaveLength(1);
    expect(through(new PacketSizeGuard(p.length - 1), p, 5)).toHaveLength(0);
  });

  it('refuses an oversized packet it cannot skip (QoS 1 PUBLISH, anything else) and a malformed length', () => {
    expect(() => new PacketSizeGuard(100).filter(publish('t', 200, 1))).toThrow(PacketTooLargeError);
    const sub = mqttPacket.generate({ cmd: 'suback', messageId: 1, granted: new Array(200).fill(0) }, { protocolVersion: 5 });
    expect(() => new PacketSizeGuard(100).filter(sub)).toThrow(/SUBACK packet of \d+ bytes, over the 100-byte limit/);
    expect(() => new PacketSizeGuard(100).filter(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toThrow(MalformedPacketError);
  });
});

describe('broker connection problems, in words', () => {
  const err = (code: string | number, message = 'x'): Error => Object.assign(new Error(message), { code });

  it('a self-signed or unknown-CA broker is a certificate problem with the CA setting as the fix', () => {
    for (const code of ['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']) {
      const p = describeMqttError(err(code, 'self-signed certificate'));
      expect(p).toMatchObject({ kind: 'certificate', lasting: true });
      expect(p.text).toContain(code);
      expect(p.fix).toMatch(/--mqtt-ca/);
      expect(p.fix).not.toMatch(/broker runs/);
    }
    expect(
      describeMqttError(err('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames: IP: 127.0.0.2")),
    ).toMatchObject({
      kind: 'certificate',
      fix: expect.stringMatching(/--mqtt-url/),
    });
    expect(describeMqttError(err('CERT_HAS_EXPIRED')).fix).toMatch(/clock/);
    expect(describeMqttError(err('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'))).toMatchObject({
      kind: 'client-certificate',
      fix: expect.stringMatching(/--mqtt-cert and --mqtt-key/),
    });
    expect(describeMqttError(err('ERR_SSL_WRONG_VERSION_NUMBER')).kind).toBe('not-tls');
  });

  it('a refused login, a dead broker and an oversized packet keep their own advice', () => {
    expect(describeMqttError(err(135, 'Connection refused: Not authorized'))).toMatchObject({ kind: 'login', lasting: true });
    expect(describeMqttError(err('ECONNREFUSED'))).toMatchObject({
      kind: 'network',
      text: 'ECONNREFUSED',
      fix: expect.stringMatching(/broker runs/),
      lasting: false,
    });
    expect(describeMqttError(new PacketTooLargeError(9, 200_000, 65_536)).kind).toBe('oversized');
  });
});

describe('MQTT TLS settings', () => {
  const resolve = (flags: Record<string, unknown>) => resolveSettings(BACKEND_SETTINGS, { flags, env: {}, config: {} }).values;

  it('take absolute paths only', () => {
    expect(resolve({ mqttCa: '/etc/power-meter/ca.pem' }).mqttCa).toBe('/etc/power-meter/ca.pem');
    expect(() => resolve({ mqttCa: 'ca.pem' })).toThrow(/--mqtt-ca/);
    expect(() => resolve({ mqttKey: 'key.pem' })).toThrow(/--mqtt-key/);
    expect(resolve({ mqttArea: ' Garage ' }).mqttArea).toBe('Garage');
    expect(() => resolve({ mqttArea: 'a\nb' })).toThrow(/--mqtt-area/);
  });

  it('read and check the PEM files: garbage, a missing file, an encrypted key and a key of another certificate are refused by name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pm-mqtt-pem-'));
    const openssl = (...args: string[]) => {
      const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
    };
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'a.key',
      '-out',
      'a.pem',
      '-subj',
      '/CN=a',
      '-days',
      '2',
    );
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'b.key',
      '-out',
      'b.pem',
      '-subj',
      '/CN=b',
      '-days',
      '2',
    );
    openssl('pkey', '-in', 'a.key', '-out', 'a-enc.key', '-aes256', '-passout', 'pass:secret');
    writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n');
    const f = (n: string) => join(dir, n);
    const tls = readMqttTls({ mqttCa: f('b.pem'), mqttCert: f('a.pem'), mqttKey: f('a.key') });
    expect(tls.ca?.toString()).toContain('BEGIN CERTIFICATE');
    expect(tls.key?.toString()).toContain('PRIVATE KEY');
    const fails = (s: { mqttCa?: string; mqttCert?: string; mqttKey?: string }): MqttTlsFileError => {
      try {
        readMqttTls({ mqttCa: '', mqttCert: '', mqttKey: '', ...s });
      } catch (e) {
        return e as MqttTlsFileError;
      }
      throw new Error('accepted');
    };
    expect(fails({ mqttCa: f('garbage.pem') }).message).toMatch(/--mqtt-ca .*not a PEM certificate/);
    expect(fails({ mqttCa: f('missing.pem') }).message).toMatch(/--mqtt-ca .*no such file/);
    expect(fails({ mqttCert: f('a.pem'), mqttKey: f('b.key') }).message).toMatch(/--mqtt-key .*does not belong to the certificate/);
    expect(fails({ mqttCert: f('a.pem'), mqttKey: f('a-enc.key') }).message).toMatch(/--mqtt-key .*encrypted/);
    expect(fails({ mqttCert: f('a.pem'), mqttKey: f('a-enc.key') }).message).not.toContain('secret');
  });
});
