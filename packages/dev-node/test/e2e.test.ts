import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildMessage, loadOrCreateIdentity } from '@power-meter/w3bstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Address, type LocalDepin, startLocalDepin } from '../src/index.js';
import { type Answer, TOKEN, publish } from './helpers.js';

// The whole loop on this machine: anvil, this project's contracts and applet on the host, and
// readings built and signed by the meter's own codec with a secp256k1 device identity.
const WEI_PER_TOKEN = 10n ** 18n;
let depin: LocalDepin;
let dir: string;
let device: ReturnType<typeof loadOrCreateIdentity>;

/** The meter's body with public_key in the address form (what the original firmware sends). */
function addressBody(id: typeof device, powerW: number, timestampMs = Date.now()): string {
  return buildMessage({ sign: (t, e) => id.sign(t, e), publicKeyHex: id.deviceId }, { powerW, timestampMs }).body;
}
function keyBody(id: typeof device, powerW: number): string {
  return buildMessage(id, { powerW, timestampMs: Date.now() }).body;
}
function only(a: Answer) {
  expect(a.status).toBe(201);
  expect(a.body.results).toHaveLength(1);
  return a.body.results![0]!;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'applet-host-e2e-'));
  device = loadOrCreateIdentity(join(dir, 'device'), { curve: 'secp256k1' });
  depin = await startLocalDepin({ publisherToken: TOKEN, watchChain: false });
  await depin.registerAndBind(device.deviceId as Address);
}, 300_000);

afterAll(async () => {
  await depin?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the energy-meter applet on a local chain', () => {
  it('learns the registration and the binding from the contracts’ logs', async () => {
    const rows = await depin.host.db.query('SELECT r.device_id, b.owner FROM device_registry r JOIN device_binding b USING (device_id)');
    expect(rows).toEqual([{ device_id: device.deviceId.slice(2).toLowerCase(), owner: depin.owner.slice(2).toLowerCase() }]);
  });

  it('mints to the owner for a signed 2 W reading (address form), and stores the reading', async () => {
    const before = await depin.rewards.balanceOf(depin.owner);
    const r = only(await publish(depin.host, 'DEFAULT', addressBody(device, 2.0)));
    expect(r).toMatchObject({ appletName: 'energy-meter', handler: 'handle_data', code: 0 });
    expect(r.error).toBeUndefined();
    expect(await depin.rewards.balanceOf(depin.owner)).toBe(before + 10n * WEI_PER_TOKEN);
    const [stored] = await depin.host.db.query('SELECT sensor_reading FROM readings ORDER BY id DESC LIMIT 1');
    expect(stored).toEqual({ sensor_reading: 2 });
  });

  it('mints the second tier at 4 W and nothing at 12 W', async () => {
    const start = await depin.rewards.balanceOf(depin.owner);
    expect(only(await publish(depin.host, 'DEFAULT', addressBody(device, 4.0))).code).toBe(0);
    expect(await depin.rewards.balanceOf(depin.owner)).toBe(start + 4n * WEI_PER_TOKEN);
    const r = only(await publish(depin.host, 'DEFAULT', addressBody(device, 12.0)));
    expect(r.code).toBe(0);
    expect(await depin.rewards.balanceOf(depin.owner)).toBe(start + 4n * WEI_PER_TOKEN);
  });

  it('accepts the key form (04 + X + Y): the device address is derived with keccak on chain', async () => {
    const before = await depin.rewards.balanceOf(depin.owner);
    expect(only(await publish(depin.host, 'DEFAULT', keyBody(device, 1.5))).code).toBe(0);
    expect(await depin.rewards.balanceOf(depin.owner)).toBe(before + 10n * WEI_PER_TOKEN);
  });

  it('refuses an unregistered device with the applet’s reason, and mints nothing', async () => {
    const stranger = loadOrCreateIdentity(join(dir, 'stranger'), { curve: 'secp256k1' });
    const before = await depin.rewards.balanceOf(depin.owner);
    const r = only(await publish(depin.host, 'DEFAULT', addressBody(stranger, 2.0)));
    expect(r.code).toBe(-1);
    expect(r.error).toContain(`device ${stranger.deviceId.toLowerCase()} is not registered`);
    expect(await depin.rewards.balanceOf(depin.owner)).toBe(before);
  });

  it('refuses a registered address whose signature is someone else’s', async () => {
    const forger = loadOrCreateIdentity(join(dir, 'forger'), { curve: 'secp256k1' });
    const forged = buildMessage(
      { sign: (t, e) => forger.sign(t, e), publicKeyHex: device.deviceId },
      { powerW: 2.0, timestampMs: Date.now() },
    ).body;
    const before = await depin.rewards.balanceOf(depin.owner);
    const r = only(await publish(depin.host, 'DEFAULT', forged));
    expect(r.code).toBe(-1);
    expect(r.error).toContain(`signature is not by device ${device.deviceId.toLowerCase()}`);
    expect(await depin.rewards.balanceOf(depin.owner)).toBe(before);
  });

  it('refuses a body whose sensor_reading is not a JSON float, as the tutorial applet does', async () => {
    const body = addressBody(device, 2.0).replace('"sensor_reading":2.0', '"sensor_reading":2');
    const r = only(await publish(depin.host, 'DEFAULT', body));
    expect(r.code).toBe(-1);
    expect(r.error).toContain('data.sensor_reading must be a JSON float');
  });

  it('refuses a registered device that is not bound to an owner', async () => {
    const unbound = loadOrCreateIdentity(join(dir, 'unbound'), { curve: 'secp256k1' });
    await depin.rewards.registerDevice(unbound.deviceId as Address);
    await depin.host.syncChain();
    const r = only(await publish(depin.host, 'DEFAULT', addressBody(unbound, 2.0)));
    expect(r.code).toBe(-1);
    expect(r.error).toContain(`device ${unbound.deviceId.toLowerCase()} is not bound to an owner`);
  });

  it('delivers each contract log once, however often the chain is polled', async () => {
    await depin.host.syncChain();
    await depin.host.syncChain();
    const id = device.deviceId.slice(2).toLowerCase();
    const seen = depin.host.logs.filter((l) => l.src === 'wasm' && l.message === `registered device 0x${id}`);
    expect(seen).toHaveLength(1);
    const bound = depin.host.logs.filter((l) => l.src === 'wasm' && l.message.startsWith(`device 0x${id} bound to`));
    expect(bound).toHaveLength(1);
  });
});
