import { readFileSync, rmSync, writeFileSync, mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { readState } from '@power-meter/meter-files';
import { EXIT } from '@power-meter/service';
import { buildMessage, loadOrCreateIdentity } from '@power-meter/w3bstream';
import { startDevReceiver, type DevReceiver } from '@power-meter/dev-node';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKEND, outboxContents, start, until, type Proc } from '../../../test/support/processes.js';

/**
 * Issue 11 as an outside tester would try it, with the real program: a lost or damaged outbox,
 * settings that cannot work, answers that are not the node's, and `verify` naming the device.
 */
const TOKEN = 'integrity-token-93b1';
/** Everything a test started, stopped after it (processes killed, receivers closed), newest first. */
const started: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const stop of started.splice(0).reverse()) await stop();
});

async function receiver(): Promise<DevReceiver> {
  const r = await startDevReceiver({ project: 'test', token: TOKEN });
  started.push(() => r.close());
  return r;
}

function run(args: string[], env: Record<string, string> = {}): Proc {
  const p = start(BACKEND, args, { W3BSTREAM_PUBLISHER_TOKEN: TOKEN, POWER_METER_RETRY_MAX_MS: '300', ...env });
  started.push(() => p.stop('SIGKILL'));
  return p;
}

const backend = (dir: string, args: string[], env: Record<string, string> = {}) =>
  run(['--sensor', 'sim', '--sim-load', '2', '--window', '1', '--data-dir', dir, ...args], env);
const dataDir = () => join(mkdtempSync(join(tmpdir(), 'pm-int-')), 'data');
const outboxFile = (dir: string) => join(dir, 'outbox', 'outbox.sqlite');

async function stateOf(dir: string) {
  const s = await readState(dir);
  if (!s.ok) throw new Error(`state.json unreadable: ${s.problem}`);
  return s.state;
}

/** No eventID names two bodies. */
function oneBodyPerEventId(events: Array<{ eventId: string; body: string }>): void {
  const byId = new Map<string, string>();
  for (const e of events) {
    if (byId.has(e.eventId)) expect(e.body, `eventID ${e.eventId} names two bodies`).toBe(byId.get(e.eventId));
    byId.set(e.eventId, e.body);
  }
}

describe('a lost outbox (issue 11, case 3)', () => {
  it('deleted, then emptied while the key stays: numbering goes on above every number used, totals never go back', async () => {
    const dir = dataDir();
    const r = await receiver();
    const first = backend(dir, ['--publish-url', r.url]);
    await until(() => r.received.length >= 3, 20_000, 'first readings');
    expect(await first.stop()).toBe(0);
    const before = await stateOf(dir);
    const usedBefore = Math.max(...r.received.map((e) => e.seq!));

    rmSync(outboxFile(dir));
    rmSync(`${outboxFile(dir)}-wal`, { force: true });
    const second = backend(dir, ['--publish-url', r.url]);
    await second.waitFor(/numbering continues at (\d+)/);
    await second.waitFor(/totals recovered: energyWh/);
    const n = r.received.length;
    await until(() => r.received.length >= n + 2, 20_000, 'readings after the deletion');
    expect(await second.stop()).toBe(0);
    const middle = await stateOf(dir);
    expect(middle.energyTotalWh).toBeGreaterThan(before.energyTotalWh);
    expect(middle.rewards.total).toBeGreaterThan(before.rewards.total);
    expect(Math.min(...r.received.slice(n).map((e) => e.seq!))).toBe(usedBefore + 1); // a clean stop leaves no gap

    writeFileSync(outboxFile(dir), ''); // emptied
    rmSync(`${outboxFile(dir)}-wal`, { force: true });
    const third = backend(dir, ['--publish-url', r.url]);
    const m = r.received.length;
    await until(() => r.received.length >= m + 2, 20_000, 'readings after emptying');
    expect(await third.stop()).toBe(0);
    const after = await stateOf(dir);
    expect(after.energyTotalWh).toBeGreaterThan(middle.energyTotalWh);
    const seqs = r.received.map((e) => e.seq!);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    oneBodyPerEventId(r.received);
    expect(third.output()).toMatch(/outbox .* is new/);
  });
});

describe('a damaged outbox', () => {
  it('stops with status 3 naming the file and the salvage command; salvage recovers the readable readings, which then arrive', async () => {
    const dir = dataDir();
    // The node is unreachable: readings wait in the outbox.
    const first = backend(dir, ['--publish-url', 'http://127.0.0.1:9/srv-applet-mgr/v0/event/test']);
    await until(
      async () => existsSync(join(dir, 'state.json')) && (await stateOf(dir)).publishing.waiting >= 12,
      30_000,
      'readings waiting',
    );
    expect(await first.stop()).toBe(0);
    const stored = await outboxContents(dir);
    const db = new Database(outboxFile(dir));
    const leaves = (
      db.prepare("SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'leaf' ORDER BY pageno").all() as Array<{
        pageno: number;
      }>
    ).map((x) => x.pageno);
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.close();
    expect(leaves.length).toBeGreaterThanOrEqual(2);
    const bytes = readFileSync(outboxFile(dir));
    const page = leaves[0]!;
    bytes.fill(0x5a, (page - 1) * pageSize + 8, page * pageSize); // the first leaf's cells overwritten
    writeFileSync(outboxFile(dir), bytes);

    const refused = backend(dir, []);
    expect(await refused.exited).toBe(EXIT.corruptData);
    expect(refused.output()).toContain(`outbox ${outboxFile(dir)} is damaged`);
    expect(refused.output()).toContain(`power-meter outbox salvage --data-dir ${dir}`);

    const salvage = run(['outbox', 'salvage', '--data-dir', dir]);
    expect(await salvage.exited).toBe(0);
    const restored = Number(/salvaged (\d+) undelivered/.exec(salvage.output())?.[1]);
    expect(restored).toBeGreaterThan(0);
    expect(restored).toBeLessThan(stored.seqs.length); // the overwritten page is lost, the rest is not
    expect(salvage.output()).toContain(`of the ${stored.seqs.length} the damaged outbox counted`);
    expect(salvage.output()).toContain(`${stored.seqs.length - restored} reading(s) could not be read and are lost`);
    expect(salvage.output()).toMatch(/damaged file is kept at .*outbox\.sqlite\.damaged-/);

    const r = await receiver();
    const second = backend(dir, ['--publish-url', r.url]);
    await until(() => r.received.filter((e) => e.seq! < stored.nextSeq).length >= restored, 30_000, 'salvaged readings delivered');
    await second.stop();
    const salvagedSeqs = r.received.filter((e) => e.seq! < stored.nextSeq).map((e) => e.seq!);
    for (const seq of salvagedSeqs) expect(stored.seqs).toContain(seq); // each under its own number
    expect(Math.min(...r.received.filter((e) => e.seq! >= stored.nextSeq).map((e) => e.seq!))).toBeGreaterThanOrEqual(stored.nextSeq);
    expect(r.received.every((e) => e.verified)).toBe(true);
  });
});

describe('stored numbers stay finite (issue 11, case 5)', () => {
  it('refuses reward tiers that would overflow the totals, and repairs a database that already holds Infinity', async () => {
    const dir = dataDir();
    const cfg = join(dir, '..', 'config.json');
    writeFileSync(cfg, JSON.stringify({ rewardTiers: [{ belowW: 3, tokensPerH: 1e308 }] }));
    const bad = backend(dir, ['--config', cfg]);
    expect(await bad.exited).toBe(EXIT.badSettings);
    expect(bad.output()).toMatch(/invalid setting "rewardTiers" in the config file = .*tokensPerH in \[0, 1000000\]/);

    // The published totals are the synced ones: sync every second so they move within the test.
    const first = backend(dir, ['--sync-interval', '1']);
    await until(async () => existsSync(join(dir, 'state.json')) && (await stateOf(dir)).rewards.total > 0, 20_000, 'rewards');
    expect(await first.stop()).toBe(0);
    const before = await stateOf(dir);
    const db = new Database(outboxFile(dir));
    db.prepare('UPDATE meter_totals SET rewards_total = ?').run(Number.POSITIVE_INFINITY); // what 1e308 tokens/h left behind
    db.close();
    const second = backend(dir, ['--sync-interval', '1']);
    await second.waitFor(/outbox repaired: rewardsTotal set to 0: rewards_total was Infinity/);
    await second.waitFor(/totals recovered: rewardsTotal 0 ->/);
    await until(async () => (await stateOf(dir)).rewards.total > before.rewards.total, 20_000, 'rewards growing again');
    const after = await stateOf(dir);
    expect(Number.isFinite(after.rewards.total)).toBe(true);
    await second.stop();
  });
});

describe('settings that cannot work are refused at start (issue 11, case 6)', () => {
  it('a token with a line break, a space or a control character, and a URL with a password: exit 2, nothing echoed', async () => {
    const dir = dataDir();
    for (const token of ['w3b_abc\r\n', 'w3b_abc def', 'w3b_\u0007abc']) {
      const p = backend(dir, ['--publish-url', 'http://127.0.0.1:9/srv-applet-mgr/v0/event/test'], { W3BSTREAM_PUBLISHER_TOKEN: token });
      expect(await p.exited).toBe(EXIT.badSettings);
      expect(p.output()).toMatch(
        /invalid setting W3BSTREAM_PUBLISHER_TOKEN = "<hidden>" .*no spaces, line breaks or other control characters/,
      );
      expect(p.output()).not.toContain('w3b_');
    }
    const url = backend(dir, ['--publish-url', 'https://meter:Pa55-SECRET@node.example/srv-applet-mgr/v0/event/test']);
    expect(await url.exited).toBe(EXIT.badSettings);
    expect(url.output()).toMatch(/invalid setting --publish-url = "<hidden>" .*without a user or password/);
    expect(url.output()).not.toContain('Pa55-SECRET');
    expect(existsSync(dir)).toBe(false); // refused before anything was created
  });

  it('a node that keeps answering 500 UnknownError is shown as failing, pointing at the token; readings are kept', async () => {
    const dir = dataDir();
    const r = await receiver();
    r.setMode('malformed-token');
    const p = backend(dir, ['--publish-url', r.url]);
    await until(async () => existsSync(join(dir, 'state.json')) && (await stateOf(dir)).publishing.state === 'failing', 20_000, 'failing');
    const st = await stateOf(dir);
    expect(st.publishing).toMatchObject({ state: 'failing', reason: 'HTTP 500 UnknownError (token?)' });
    expect(st.publishing.waiting).toBeGreaterThan(0);
    await p.waitFor(/advice=".*malformed publisher token/);
    r.setMode('normal');
    await until(async () => (await stateOf(dir)).publishing.state === 'ok', 20_000, 'ok again');
  });
});

describe('answers that are not the node accepting a reading (issue 11, cases 1 and 2)', () => {
  it('a stopped applet, a busy VM and a captive portal keep every reading; the portal is shown as failing with advice', async () => {
    const dir = dataDir();
    const r = await receiver();
    r.setMode('instance-stopped');
    const p = backend(dir, ['--publish-url', r.url]);
    await p.waitFor(/publish state=retrying reason="instance not running"/, 20_000);
    r.setMode('wait-timeout');
    await p.waitFor(/publish state=retrying reason="wait timeout"/, 20_000);
    r.setMode('html');
    await until(async () => (await stateOf(dir)).publishing.state === 'failing', 20_000, 'failing');
    expect((await stateOf(dir)).publishing).toMatchObject({ reason: 'not a W3bstream answer (text/html)' });
    await p.waitFor(/advice=".*captive portal/);
    expect(readFileSync(join(dir, 'status'), 'utf8')).toBe('Failed to publish');
    expect(r.received).toHaveLength(0);
    r.setMode('normal');
    await until(
      async () => (await stateOf(dir)).publishing.state === 'ok' && (await stateOf(dir)).publishing.waiting === 0,
      20_000,
      'drained',
    );
    expect(await p.stop()).toBe(0);
    const box = await outboxContents(dir);
    const seqs = r.received.map((e) => e.seq!);
    // Every window the meter stored either arrived or is the one stored as it stopped.
    expect(new Set([...seqs, ...box.seqs]).size).toBe(box.windows);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
  });
});

describe('verify names the device (issue 11, case 7)', () => {
  it('prints the device of each body, checks --expect-address/--expect-key, refuses high S where this meter would not send it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pm-verify-'));
    const me = loadOrCreateIdentity(join(dir, 'me'));
    const other = loadOrCreateIdentity(join(dir, 'other'));
    const mine = buildMessage(me, { powerW: 2.5, timestampMs: 1_764_000_000_000 }).body;
    const theirs = buildMessage(other, { powerW: 2.5, timestampMs: 1_764_000_000_000 }).body;
    const file = join(dir, 'bodies.txt');
    const verify = async (lines: string[], args: string[] = []) => {
      writeFileSync(file, `${lines.join('\n')}\n`);
      const p = run(['verify', file, ...args]);
      return { code: await p.exited, out: p.output() };
    };
    const both = await verify([mine, theirs]);
    expect(both.code).toBe(0);
    expect(both.out).toContain(`ok   line 1 device=${me.deviceId}`);
    expect(both.out).toContain(`ok   line 2 device=${other.deviceId}`);
    const expected = await verify([mine, theirs], ['--expect-address', me.deviceId]);
    expect(expected.code).toBe(1);
    expect(expected.out).toContain(`FAIL line 2 device=${other.deviceId}: signed by ${other.deviceId}, not the expected ${me.deviceId}`);
    expect((await verify([mine], ['--expect-key', me.publicKeyHex])).code).toBe(0);
    expect((await verify([theirs], ['--expect-key', me.publicKeyHex])).code).toBe(1);
    // The same signature with S flipped to the upper half: valid ECDSA, but never this meter's.
    const sig = /"signature":"([0-9a-f]{128})"/.exec(mine)![1]!;
    const n = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
    const highS = sig.slice(0, 64) + (n - BigInt(`0x${sig.slice(64)}`)).toString(16).padStart(64, '0');
    const malleated = await verify([mine.replace(sig, highS)]);
    expect(malleated.code).toBe(1);
    expect(malleated.out).toMatch(/FAIL line 1 device=0x[0-9a-f]{40}: signature has a high S \(raw\)/);
    // The address form (the meter's default on the wire): the key is recovered, the signer named.
    const k1 = loadOrCreateIdentity(join(dir, 'k1'), { curve: 'secp256k1' });
    const byAddress = [me, k1].map(
      (id) => buildMessage(id, { powerW: 2.5, timestampMs: 1_764_000_000_000 }, { publicKeyField: 'address' }).body,
    );
    const recovered = await verify(byAddress, ['--expect-key', k1.publicKeyHex]);
    expect(recovered.out).toContain(
      `FAIL line 1 device=${me.deviceId}: carries public key ${me.publicKeyHex.slice(0, 18)}…, not the expected one`,
    );
    expect(recovered.out).toContain(
      `ok   line 2 device=${k1.deviceId} curve=secp256k1 encoding=raw public_key=address (key recovered from the signature)`,
    );
    const forged = byAddress[1]!.replace(k1.deviceId, me.deviceId);
    const refused = await verify([forged]);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain(`FAIL line 1 device=-: signature is not by the device ${me.deviceId}`);
    // A record whose eventID names another device than the signer.
    const record = JSON.stringify({ eventId: `${other.deviceId}-7`, body: mine });
    const mismatch = await verify([record]);
    expect(mismatch.code).toBe(1);
    expect(mismatch.out).toContain(`eventID ${other.deviceId}-7 names ${other.deviceId}, but the body is signed by ${me.deviceId}`);
  });
});

describe('dev-receiver --answer', () => {
  it('answers every request in the chosen mode, and refuses an unknown mode with exit 2', async () => {
    const bad = run(['dev-receiver', '--port', '0', '--answer', 'sometimes']);
    expect(await bad.exited).toBe(EXIT.badSettings);
    expect(bad.output()).toMatch(/--answer = "sometimes": allowed normal, instance-not-loaded, instance-stopped, wait-timeout/);
    const rx = run(['dev-receiver', '--port', '0', '--project', 'test', '--token', TOKEN, '--answer', 'instance-stopped']);
    const url = (await rx.waitFor(/publish_url=(\S+)/))[1]!;
    const res = await fetch(`${url}?eventID=0xabc-1`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{}' });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ results: [{ code: -1, error: 'instance not running' }] });
  });

  it('with --transport w3bstream-v2 serves /v1/task (or /message with --dialect message), accepts the modes that exist on that node and refuses the others', async () => {
    const bad = run(['dev-receiver', '--port', '0', '--transport', 'w3bstream-v2', '--answer', 'instance-stopped']);
    expect(await bad.exited).toBe(EXIT.badSettings);
    expect(bad.output()).toMatch(
      /--answer = "instance-stopped": allowed normal, wait-timeout, .*not-from-node \(with --transport w3bstream-v2 --dialect task\)/,
    );
    const badTransport = run(['dev-receiver', '--port', '0', '--transport', 'mqtt']);
    expect(await badTransport.exited).toBe(EXIT.badSettings);
    const badApprove = run(['dev-receiver', '--port', '0', '--transport', 'w3bstream-v2', '--approve', '0x12:42']);
    expect(await badApprove.exited).toBe(EXIT.badSettings);
    expect(badApprove.output()).toMatch(/--approve/);
    const delayAlone = run(['dev-receiver', '--port', '0', '--transport', 'w3bstream-v2', '--approve-after', '5']);
    expect(await delayAlone.exited).toBe(EXIT.badSettings);
    const rx = run(['dev-receiver', '--port', '0', '--transport', 'w3bstream-v2', '--dialect', 'message', '--answer', 'wait-timeout']);
    const url = (await rx.waitFor(/publish_url=(\S+)/))[1]!;
    expect(url).toMatch(/\/message$/);
    const res = await fetch(url, { method: 'POST', body: '{}' });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: 'internal server error; could not save task: dev receiver answering an injected failure' });
    const task = run(['dev-receiver', '--port', '0', '--transport', 'w3bstream-v2', '--answer', 'wait-timeout']);
    const taskUrl = (await task.waitFor(/publish_url=(\S+)/))[1]!;
    expect(taskUrl).toMatch(/\/v1\/task$/);
    expect((await fetch(taskUrl.replace('/v1/task', '/message'), { method: 'POST', body: '{}' })).status).toBe(404);
  });
});

describe("the backend's tables on an outbox of the first release", () => {
  it('upgrades in place: totals, sparkline, held readings and waiting messages are kept, and stay finite', async () => {
    const { Outbox } = await import('@power-meter/w3bstream');
    const { METER_SCHEMA, MeterStore } = await import('../src/store.js');
    const file = join(mkdtempSync(join(tmpdir(), 'pm-upgrade-')), 'outbox.sqlite');
    // Exactly what the first release created (no user_version, no schema_versions), with data.
    const old = new Database(file);
    old.exec(`
      CREATE TABLE messages (seq INTEGER PRIMARY KEY, body TEXT NOT NULL, created_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT INTO counters VALUES ('next_seq', 43), ('dropped', 0), ('rejected', 0), ('delivered', 40), ('waiting', 2);
      INSERT INTO messages VALUES (41, 'body-41', ${Date.now() - 60_000}, 3), (42, 'body-42', ${Date.now() - 5_000}, 0);
      CREATE TABLE meter_totals (id INTEGER PRIMARY KEY CHECK (id = 1), energy_wh REAL NOT NULL, rewards_total REAL NOT NULL, windows INTEGER NOT NULL, recent TEXT NOT NULL, held_dropped INTEGER NOT NULL DEFAULT 0);
      INSERT INTO meter_totals VALUES (1, 7.25, 1.5, 44, '[2.5,3]', 1);
      CREATE TABLE held (id INTEGER PRIMARY KEY AUTOINCREMENT, boot_id TEXT NOT NULL, end_mono_ms REAL NOT NULL, avg_power_w REAL NOT NULL);
      INSERT INTO held (boot_id, end_mono_ms, avg_power_w) VALUES ('boot-a', 1234.5, 2.75);
    `);
    old.close();
    const outbox = Outbox.open(file, { schemas: [METER_SCHEMA] });
    try {
      const store = new MeterStore(outbox);
      expect(store.repairs).toEqual([]);
      expect(store.totals()).toEqual({ energyWh: 7.25, rewardsTotal: 1.5, windows: 44, recentAvgPowerW: [2.5, 3], heldDropped: 1 });
      expect(store.held()).toEqual([{ id: 1, bootId: 'boot-a', endMonoMs: 1234.5, avgPowerW: 2.75, endWallMs: null }]);
      expect(outbox.peek(5).map((m) => [m.seq, m.body, m.attempts])).toEqual([
        [41, 'body-41', 3],
        [42, 'body-42', 0],
      ]);
      const r = store.storeReading(() => 'body-43', { energyWh: 0.01, rewards: Number.POSITIVE_INFINITY, avgPowerW: 2 });
      expect(r).toMatchObject({ seq: 43, counted: false }); // stored, but an infinite increment counts as 0
      expect(store.totals()).toMatchObject({ energyWh: 7.26, rewardsTotal: 1.5, windows: 45 });
    } finally {
      outbox.close();
    }
  });
});

describe('W3bstream 2 settings and identity (issue 14)', () => {
  const V2 = ['--transport', 'w3bstream-v2', '--project-id', '7', '--project-version', '0.1'];

  it('refuses a missing or impossible project, and an unknown transport, with exit 2 naming the setting', async () => {
    const dir = dataDir();
    const cases: Array<[string[], RegExp]> = [
      [['--transport', 'w3bstream-v2', '--project-version', '0.1'], /invalid setting --project-id = "" .*with --transport w3bstream-v2/],
      [
        ['--transport', 'w3bstream-v2', '--project-id', '7', '--publish-url', 'http://127.0.0.1:9/message'],
        /invalid setting --project-version = "" .*a \/message node requires it/,
      ],
      [
        ['--transport', 'w3bstream-v2', '--project-id', '0', '--project-version', '1'],
        /invalid setting --project-id = "0" .*from 1 to 2\^256-1/,
      ],
      [['--transport', 'w3bstream-v2', '--project-id', String(2n ** 256n), '--project-version', '1'], /invalid setting --project-id/],
      [
        [
          '--transport',
          'w3bstream-v2',
          '--project-id',
          '18446744073709551616',
          '--publish-url',
          'http://127.0.0.1:9/message',
          '--project-version',
          '1',
        ],
        /invalid setting --project-id = "18446744073709551616" .*at most 18446744073709551615 for a \/message node/,
      ],
      [
        ['--transport', 'w3bstream-v2', '--project-id', '7', '--publish-url', 'http://127.0.0.1:9/srv-applet-mgr/v0/event/x'],
        /invalid setting --publish-url .*ending in \/v1\/task .* or \/message/,
      ],
      [['--transport', 'w3bstream-v2', '--project-id', '7', '--signed-keys', 'latitude'], /invalid setting --signed-keys/],
      [['--transport', 'w3bstream-v3'], /invalid setting --transport = "w3bstream-v3" .*w3bstream-v1 or w3bstream-v2/],
    ];
    for (const [args, message] of cases) {
      const p = backend(dir, args);
      expect(await p.exited).toBe(EXIT.badSettings);
      expect(p.output()).toMatch(message);
    }
    const env = backend(dir, ['--transport', 'w3bstream-v2', '--project-version', '1'], { POWER_METER_PROJECT_ID: 'abc' });
    expect(await env.exited).toBe(EXIT.badSettings);
    expect(env.output()).toMatch(/invalid setting POWER_METER_PROJECT_ID = "abc"/);
    expect(existsSync(dir)).toBe(false); // refused before anything was created
  });

  it('identity prints the ioID DID and the public key as a JWK; for W3bstream 2 a new identity is secp256k1', async () => {
    for (const [args, curve, crv] of [
      [[], 'p256', 'P-256'],
      [V2, 'secp256k1', 'secp256k1'],
    ] as const) {
      const dir = dataDir();
      const p = run(['identity', '--json', '--data-dir', dir, ...args]);
      expect(await p.exited).toBe(0);
      const id = JSON.parse(p.output()) as {
        deviceId: string;
        publicKey: string;
        curve: string;
        did: string;
        publicKeyJwk: Record<string, string>;
      };
      expect(id.curve).toBe(curve);
      expect(id.did).toBe(`did:io:${id.deviceId}`);
      expect(id.did).toMatch(/^did:io:0x[0-9a-f]{40}$/);
      expect(Object.keys(id.publicKeyJwk).sort()).toEqual(['crv', 'kty', 'x', 'y']);
      expect(id.publicKeyJwk).toMatchObject({ kty: 'EC', crv });
      const xy = Buffer.concat([Buffer.from(id.publicKeyJwk.x!, 'base64url'), Buffer.from(id.publicKeyJwk.y!, 'base64url')]).toString(
        'hex',
      );
      expect(`04${xy}`).toBe(id.publicKey);
      const text = run(['identity', '--data-dir', dir, ...args]);
      expect(await text.exited).toBe(0);
      expect(text.output()).toContain(`did         ${id.did}`);
    }
  });

  it('a P-256 identity under W3bstream 2 is refused with exit 2 and how to make a secp256k1 one; the key is untouched', async () => {
    const dir = dataDir();
    expect(await run(['identity', '--data-dir', dir]).exited).toBe(0);
    const keyFile = join(dir, 'identity', 'device-key.pem');
    const key = readFileSync(keyFile);
    const p = backend(dir, ['--publish-url', 'http://127.0.0.1:9/message', ...V2]);
    expect(await p.exited).toBe(EXIT.badSettings);
    expect(p.output()).toMatch(
      /is a P-256 key.*secp256k1.*not replaced.*move .*identity away.*power-meter identity --transport w3bstream-v2/,
    );
    expect(readFileSync(keyFile).equals(key)).toBe(true);
    // identity refuses it the same way (exit 2, as the README says), and prints no identity to use.
    const shown = run(['identity', '--data-dir', dir, ...V2]);
    expect(await shown.exited).toBe(EXIT.badSettings);
    expect(shown.output()).not.toMatch(/curve {7}p256/);
    expect(shown.output()).toMatch(/is a P-256 key.*not replaced/);
    expect(readFileSync(keyFile).equals(key)).toBe(true);
  });

  it('a backlog signed for W3bstream v1 stops a W3bstream 2 start with exit 2, and is kept', async () => {
    const dir = dataDir();
    const p = backend(dir, ['--curve', 'secp256k1', '--publish-url', 'http://127.0.0.1:9/srv-applet-mgr/v0/event/test']);
    await until(async () => existsSync(join(dir, 'state.json')) && (await stateOf(dir)).publishing.waiting >= 2, 20_000, 'a backlog');
    expect(await p.stop()).toBe(0);
    const waiting = (await outboxContents(dir)).waiting;
    const v2 = backend(dir, ['--publish-url', 'http://127.0.0.1:9/message', ...V2]);
    expect(await v2.exited).toBe(EXIT.badSettings);
    expect(v2.output()).toMatch(
      new RegExp(
        `holds ${waiting} undelivered reading\\(s\\) signed for w3bstream-v1, but the settings sign for w3bstream-v2 message.*outbox resign.*outbox export.*outbox discard.*Nothing was discarded`,
      ),
    );
    expect((await outboxContents(dir)).waiting).toBe(waiting);
  });
});
