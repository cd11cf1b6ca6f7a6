import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, start, until, type Proc } from '../../../test/support/processes.js';
import { ENTITIES } from '../src/mqtt/discovery.js';
import { MqttOutput } from '../src/mqtt/output.js';
import { meterTopics } from '../src/mqtt/topics.js';
import { makeTestCerts, pem, type TestCerts } from './support/certs.js';
import { startBroker, subscriber as subscribe, type Broker, type BrokerTls } from './support/mosquitto.js';
import { stripMaxPacketSizeProxy } from './support/mqtt-proxy.js';

/**
 * The MQTT hardening of issue 24, against the real daemon (built dist/, simulated sensor) and a
 * real Mosquitto: a huge retained message on Home Assistant's status topic, Home Assistant coming
 * back online, and TLS with a CA, a client certificate and an untrusted broker.
 */
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});
const subscriber = (b: Broker, filters?: string[], extra = {}) => subscribe(b, (fn) => cleanups.push(fn), filters, extra);

async function broker(tls?: BrokerTls): Promise<Broker> {
  const b = await startBroker({ tls });
  cleanups.push(() => b.stop('SIGKILL'));
  return b;
}

function backend(args: string[], env: Record<string, string> = {}): Proc {
  const dir = join(mkdtempSync(join(tmpdir(), 'pm-mqtt-limits-')), 'data');
  const p = start(BACKEND, ['--sensor', 'sim', '--sim-load', '6', '--window', '1', '--data-dir', dir, ...args], {
    POWER_METER_MQTT_RETRY_MAX_MS: '300',
    ...env,
  });
  cleanups.push(() => p.stop('SIGKILL'));
  return p;
}

const login = (b: Broker) => ({ POWER_METER_MQTT_USER: b.user, POWER_METER_MQTT_PASSWORD: b.password });

/** Peak and current resident memory of a process, MB (Linux /proc). */
function memoryMb(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
  return { peak: kb('VmHWM') / 1024, now: kb('VmRSS') / 1024 };
}

/** A retained message of `mb` MB on Home Assistant's status topic, as a broken or hostile client could leave it. */
async function retainHuge(b: Broker, mb: number): Promise<void> {
  const c = await connectAsync(b.url, { username: b.user, password: b.password, clientId: `huge-${Math.random()}` });
  await c.publishAsync('homeassistant/status', Buffer.alloc(mb * 1024 * 1024, 0x6f), { qos: 1, retain: true });
  await c.endAsync();
}

/** Home Assistant starting: `online` on its status topic; the meter must send every discovery config again. */
async function homeAssistantOnline(b: Broker, id: string): Promise<void> {
  // Not homeassistant/# : that would fetch the huge retained message into this process.
  const ha = await subscriber(b, ['homeassistant/sensor/#', 'power-meter/#']);
  await until(() => ha.seen.some((m) => m.topic === meterTopics('power-meter', id).window), 20_000, 'retained window');
  ha.seen.length = 0;
  await ha.client.publishAsync('homeassistant/status', 'online');
  await until(
    () => new Set(ha.seen.filter((m) => m.topic.endsWith('/config') && !m.retain).map((m) => m.topic)).size === ENTITIES.length,
    20_000,
    'every discovery config sent again (live, not the retained copies)',
  );
  expect(ha.seen.some((m) => m.topic === meterTopics('power-meter', id).window && !m.retain)).toBe(true);
}

describe('a 50 MB retained message on homeassistant/status (real daemon, real Mosquitto)', () => {
  it('a broker that honours MQTT 5 Maximum Packet Size never sends it: the meter stays small and answers Home Assistant', async () => {
    const b = await broker();
    await retainHuge(b, 50);
    const p = backend(['--mqtt-url', b.url], login(b));
    await p.waitFor(/mqtt connected/, 30_000);
    const id = (await p.waitFor(/identity device_id=(0x[0-9a-f]{40})/))[1]!;
    await homeAssistantOnline(b, id);
    const mem = memoryMb(p.proc.pid!);
    expect(mem.peak).toBeLessThan(150);
    expect(p.proc.exitCode).toBeNull();
    expect(await p.stop('SIGTERM')).toBe(0);
  }, 120_000);

  it('a broker that ignores the limit sends it: the meter skips it unread, stays under 150 MB and goes on', async () => {
    const b = await broker();
    await retainHuge(b, 50);
    const proxy = await stripMaxPacketSizeProxy(b.port);
    cleanups.push(() => proxy.close());
    const p = backend(['--mqtt-url', proxy.url], login(b));
    await p.waitFor(/mqtt connected/, 30_000);
    const id = (await p.waitFor(/identity device_id=(0x[0-9a-f]{40})/))[1]!;
    // The meter asked for 64 KiB; the proxy hid that from the broker, which sent all 50 MB.
    expect(proxy.connects[0]!.maximumPacketSize).toBe(65_536);
    // 1 type byte + 4 length bytes + 2 + 20 (topic) + 1 (no properties) + 52428800 (payload): the whole packet.
    await p.waitFor(/mqtt: ignored a 52428828-byte message from the broker \(over the 65536-byte limit/, 60_000);
    await homeAssistantOnline(b, id);
    const mem = memoryMb(p.proc.pid!);
    expect(mem.peak).toBeLessThan(150);
    expect(p.output()).not.toMatch(/mqtt retrying/); // skipped, not a reason to drop the connection
    expect(await p.stop('SIGTERM')).toBe(0);
  }, 120_000);
});

describe('an MQTT 3.1.1 broker (real Mosquitto behind a front that refuses MQTT 5)', () => {
  it('the meter falls back to 3.1.1, still skips the 50 MB message unread, stays under 150 MB, and doctor connects too', async () => {
    const b = await broker();
    await retainHuge(b, 50);
    const v311 = await stripMaxPacketSizeProxy(b.port, 'mqtt311');
    cleanups.push(() => v311.close());
    const p = backend(['--mqtt-url', v311.url], login(b));
    await p.waitFor(
      /mqtt: mqtt:\/\/127\.0\.0\.1:\d+ speaks only MQTT 3\.1\.1 \(Connection refused: Unacceptable protocol version\): connecting with MQTT 3\.1\.1/,
      30_000,
    );
    await p.waitFor(/mqtt connected/, 30_000);
    expect(v311.connects.map((c) => c.protocolVersion)).toEqual([5, 4]);
    const id = (await p.waitFor(/identity device_id=(0x[0-9a-f]{40})/))[1]!;
    // MQTT 3.1.1 has no properties: one byte less than the MQTT 5 packet above.
    await p.waitFor(/mqtt: ignored a 52428827-byte message from the broker/, 20_000);
    await homeAssistantOnline(b, id);
    expect(memoryMb(p.proc.pid!).peak).toBeLessThan(150);
    expect(await p.stop('SIGTERM')).toBe(0);

    const dir = mkdtempSync(join(tmpdir(), 'pm-mqtt-doctor-'));
    const d = start(BACKEND, ['doctor', '--sensor', 'sim', '--data-dir', dir, '--mqtt-url', v311.url], {
      ...login(b),
      POWER_METER_TIMESYNC_ROOT: dir,
    });
    await d.exited;
    expect(d.output()).toMatch(/^ok\s+mqtt\s+mqtt:\/\/127\.0\.0\.1:\d+ accepted a connection .*\(MQTT 3\.1\.1: it refuses MQTT 5\)/m);
  }, 120_000);
});

describe('MQTT over TLS (real Mosquitto, certificates made with openssl)', () => {
  let certs: TestCerts;
  beforeAll(() => {
    certs = makeTestCerts();
  }, 120_000);

  it('--mqtt-ca, --mqtt-cert and --mqtt-key: the daemon connects to a broker that requires a client certificate', async () => {
    const b = await broker({ certFile: certs.serverCert, keyFile: certs.serverKey, caFile: certs.caCert, requireCertificate: true });
    expect(b.url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const p = backend(
      ['--mqtt-url', b.url, '--mqtt-ca', certs.caCert, '--mqtt-cert', certs.clientCert, '--mqtt-key', certs.clientKey],
      login(b),
    );
    await p.waitFor(/mqtt connected to mqtts:\/\/127\.0\.0\.1:\d+/, 30_000);
    const id = (await p.waitFor(/identity device_id=(0x[0-9a-f]{40})/))[1]!;
    const ha = await subscriber(b, ['power-meter/#'], { ca: pem(certs.caCert), cert: pem(certs.clientCert), key: pem(certs.clientKey) });
    await until(() => ha.seen.some((m) => m.topic === meterTopics('power-meter', id).window), 20_000, 'a window over TLS');
    expect(await p.stop('SIGTERM')).toBe(0);

    // Without the client certificate the broker ends the handshake: a certificate problem, with
    // the client-certificate settings as the fix (in-process, to read the connection state).
    const lines: string[] = [];
    const out = new MqttOutput({
      url: b.url,
      username: b.user,
      password: b.password,
      topicPrefix: 'power-meter',
      discoveryPrefix: 'homeassistant',
      powerIntervalMs: 5000,
      readings: false,
      deviceAddress: id,
      version: 'test',
      model: 'INA219',
      tls: { ca: pem(certs.caCert) },
      log: (l) => lines.push(l),
      retryMinMs: 100,
      retryMaxMs: 300,
    });
    cleanups.push(() => out.stop());
    await until(() => out.connection().state !== 'connecting' && out.connection().failures > 0, 20_000, 'a failed attempt');
    expect(out.connection()).toMatchObject({ state: 'certificate', reason: expect.stringMatching(/client certificate/) });
    expect(lines.join('\n')).toMatch(/^mqtt certificate problem: mqtts:\/\/127\.0\.0\.1:\d+: .*--mqtt-cert and --mqtt-key/m);
  }, 120_000);

  it('a self-signed broker is a certificate problem in the log, the connection state and doctor; --mqtt-ca fixes it', async () => {
    const b = await broker({ certFile: certs.selfSignedCert, keyFile: certs.selfSignedKey });
    const lines: string[] = [];
    const out = new MqttOutput({
      url: b.url,
      username: b.user,
      password: b.password,
      topicPrefix: 'power-meter',
      discoveryPrefix: 'homeassistant',
      powerIntervalMs: 5000,
      readings: false,
      deviceAddress: `0x${'12'.repeat(20)}`,
      version: 'test',
      model: 'INA219',
      log: (l) => lines.push(l),
      retryMinMs: 100,
      retryMaxMs: 300,
    });
    cleanups.push(() => out.stop());
    await until(() => out.connection().failures > 0, 20_000, 'a failed attempt');
    expect(out.connection()).toMatchObject({
      state: 'certificate',
      reason: expect.stringMatching(/not signed by a CA this meter trusts \(self-signed: DEPTH_ZERO_SELF_SIGNED_CERT\)/),
    });

    const p = backend(['--mqtt-url', b.url], login(b));
    const line = (await p.waitFor(/^.*mqtt certificate problem: .*$/m, 30_000))[0];
    expect(line).toMatch(/self-signed.*--mqtt-ca <file\.pem>.*retrying every/);
    expect(line).not.toMatch(/broker runs/);
    expect(await p.stop('SIGTERM')).toBe(0);

    const dir = mkdtempSync(join(tmpdir(), 'pm-mqtt-doctor-'));
    const doctor = async (extra: string[]) => {
      const d = start(BACKEND, ['doctor', '--sensor', 'sim', '--data-dir', dir, '--mqtt-url', b.url, ...extra], {
        ...login(b),
        POWER_METER_TIMESYNC_ROOT: dir,
      });
      await d.exited;
      return d.output();
    };
    const bad = await doctor([]);
    expect(bad).toMatch(/^FAIL mqtt\s+mqtts:\/\/127\.0\.0\.1:\d+: certificate problem: the broker's certificate is not signed by a CA/m);
    expect(bad).toMatch(/fix: give the CA certificate .*--mqtt-ca/);
    expect(await doctor(['--mqtt-ca', certs.selfSignedCert])).toMatch(/^ok\s+mqtt\s+mqtts:\/\/127\.0\.0\.1:\d+ accepted a connection/m);
  }, 120_000);

  it('unusable TLS settings stop the program before it starts (exit 2), naming the setting', async () => {
    const garbage = join(certs.dir, 'garbage.pem');
    writeFileSync(garbage, 'hello\n');
    const runs: Array<[string[], RegExp]> = [
      [['--mqtt-url', 'mqtt://127.0.0.1:1', '--mqtt-ca', certs.caCert], /--mqtt-ca .*only with an mqtts:\/\/ --mqtt-url/],
      [['--mqtt-url', 'mqtts://127.0.0.1:1', '--mqtt-cert', certs.clientCert], /--mqtt-key .*private key \(PEM\) of --mqtt-cert/],
      [['--mqtt-url', 'mqtts://127.0.0.1:1', '--mqtt-ca', garbage], /--mqtt-ca = ".*garbage\.pem": not a PEM certificate/],
    ];
    for (const [args, message] of runs) {
      const p = backend(args);
      expect(await p.exited, args.join(' ')).toBe(2);
      expect(p.output()).toMatch(message);
      expect(p.output()).not.toMatch(/identity device_id/); // nothing started
    }
  }, 120_000);
});
