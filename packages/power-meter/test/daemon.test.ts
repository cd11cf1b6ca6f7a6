import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FILES, LEGACY_FILES, readState } from '@power-meter/meter-files';
import { loadOrCreateIdentity } from '@power-meter/w3bstream';
import { startDevReceiver, staticApprovals, type DevReceiver, type ReceivedEvent } from '@power-meter/dev-node';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKEND, outboxContents, start, until, type Proc } from '../../../test/support/processes.js';
import { freePort } from '../../../test/support/free-port.js';

const TOKEN = 'test-token-5f0c2a9e';
const procs: Proc[] = [];
const receivers: DevReceiver[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

async function receiver(): Promise<DevReceiver> {
  const r = await startDevReceiver({ project: 'test', token: TOKEN });
  receivers.push(r);
  return r;
}

/** The bodies still in the outbox (undelivered), oldest first. */
function storedBodies(dataDir: string): string[] {
  const db = new Database(join(dataDir, 'outbox', 'outbox.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT body FROM messages ORDER BY seq').all() as Array<{ body: string }>).map((r) => r.body);
  } finally {
    db.close();
  }
}

function backend(dataDir: string, args: string[], env: Record<string, string> = {}): Proc {
  const p = start(BACKEND, ['--sensor', 'sim', '--window', '1', '--data-dir', dataDir, ...args], {
    W3BSTREAM_PUBLISHER_TOKEN: TOKEN,
    POWER_METER_RETRY_MAX_MS: '500',
    ...env,
  });
  procs.push(p);
  return p;
}

/**
 * The delivery guarantees end to end, for each transport: the same daemon, outbox and publisher;
 * only the wire differs. A W3bstream 2 message has no sequence number on the wire, so readings are
 * told apart by their millisecond timestamps (one window each, strictly increasing).
 */
const TRANSPORTS = [
  {
    transport: 'w3bstream-v1' as const,
    args: [] as string[],
    key: (x: ReceivedEvent): number => x.seq!,
  },
  {
    transport: 'w3bstream-v2' as const,
    // The extended reading: v2 has no number on the wire, the signed data carries it.
    args: [
      '--transport',
      'w3bstream-v2',
      '--project-id',
      '7',
      '--project-version',
      '0.1',
      '--timestamp-unit',
      'ms',
      '--signed-fields',
      'extended',
    ],
    key: (x: ReceivedEvent): number => x.timestamp!,
  },
];

describe.each(TRANSPORTS)('power-meter daemon over $transport (real process, simulated sensor)', (kit) => {
  /**
   * W3bstream 2: the node approves devices by name (an ioID registration); the device's identity
   * is made first (the meter keeps it) so the receiver can approve exactly that address.
   */
  const receiverFor = async (dir: string): Promise<DevReceiver> => {
    const approvals =
      kit.transport === 'w3bstream-v2'
        ? staticApprovals({
            approve: [{ address: loadOrCreateIdentity(join(dir, 'identity'), { curve: 'secp256k1' }).deviceId, projectId: '7' }],
          })
        : undefined;
    const r = await startDevReceiver({ project: 'test', token: TOKEN, transport: kit.transport, approvals });
    receivers.push(r);
    return r;
  };

  it('delivers verified readings matching a constant 8 W load, writes every data file, stops cleanly on SIGTERM', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-')), 'data');
    const r = await receiverFor(dir);
    // Sync every second: the published total is the synced one (it never goes back after a power cut).
    const p = backend(dir, ['--sim-load', '8', '--publish-url', r.url, '--sync-interval', '1', ...kit.args]);
    await until(() => r.received.length >= 3, 20_000, '3 readings');
    for (const x of r.received) {
      expect(x.verified).toBe(true);
      expect(Math.abs(x.sensorReading! - 8) / 8).toBeLessThan(0.01);
    }
    const id = JSON.parse(readFileSync(join(dir, FILES.state), 'utf8')).deviceId as string;
    const now = Date.now() / 1000;
    if (kit.transport === 'w3bstream-v1') {
      expect(r.received.every((x) => x.eventType === 'DEFAULT')).toBe(true);
      expect(r.received.map((x) => x.eventId)).toEqual(r.received.map((_, i) => `${id}-${i + 1}`));
      // Timestamps are Unix seconds of the window end.
      for (const x of r.received) expect(Math.abs(x.timestamp! - now)).toBeLessThan(60);
    } else {
      // The node knows the device only by the address it recovers from the signature.
      expect(r.received.every((x) => x.deviceId === id && x.project === '7' && x.projectVersion === '0.1')).toBe(true);
      for (const x of r.received) expect(Math.abs(x.timestamp! / 1000 - now)).toBeLessThan(60);
      await until(
        async () => {
          const s = await readState(dir);
          return s.ok && s.state.publishing.lastTaskId === r.received.at(-1)!.taskId;
        },
        20_000,
        'the last taskID in state.json',
      );
    }

    const state = await readState(dir);
    expect(state.ok).toBe(true);
    if (!state.ok) return;
    const st = state.state;
    for (const f of LEGACY_FILES) expect(() => readFileSync(join(dir, f), 'utf8')).not.toThrow();
    const file = (f: string) => readFileSync(join(dir, f), 'utf8');
    expect(file(FILES.deviceId)).toBe(st.deviceId);
    expect(Number(file(FILES.avgPower))).toBeCloseTo(st.lastWindow!.avgPowerW, 2);
    expect(Number(file(FILES.lastIntervalTime))).toBe(Math.floor(st.lastWindow!.endMs / 1000));
    expect(file(FILES.status)).toBe('Success');
    expect(st.publishing.state).toBe('ok');
    expect(st.sensor).toMatchObject({ state: 'ok' });
    expect(st.powerW!).toBeCloseTo(8, 1);
    expect(st.energyTotalWh).toBeGreaterThan(0);
    expect(st.rewards.tokensPerH).toBe(0); // 8 W is above every default tier
    if (kit.transport === 'w3bstream-v1') expect(st.publishing.lastTaskId).toBeUndefined();

    expect(await p.stop('SIGTERM')).toBe(0);
    expect(p.output()).not.toContain(TOKEN);
  });

  it('kill -9 and restart: no stored reading is lost, none is sent as two different messages, energy never goes back', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-')), 'data');
    const r = await receiverFor(dir);
    r.delayMs(300); // keep deliveries in flight so the kill lands mid-delivery
    const first = backend(dir, ['--sim-load', '4', '--publish-url', r.url, ...kit.args]);
    await until(() => r.received.length >= 2, 20_000, 'first readings');
    const before = await readState(dir);
    first.proc.kill('SIGKILL');
    await first.exited;
    r.delayMs(0);
    const second = backend(dir, ['--sim-load', '4', '--publish-url', r.url, ...kit.args]);
    await second.waitFor(/totals energy_wh=/);
    await until(
      async () => {
        const s = await readState(dir);
        return s.ok && s.state.publishing.waiting === 0 && r.received.length >= 6;
      },
      20_000,
      'backlog delivered',
    );
    const after = await readState(dir);
    expect(r.received.every((x) => x.verified)).toBe(true);
    const firstArrivals = r.received.filter((x) => !x.duplicate).map(kit.key);
    // In order, each reading once, and the numbers (v1: the eventIDs; v2: the signed seq) without
    // a hole: the RAM copy outlived the kill and knew the next number.
    expect(firstArrivals).toEqual([...firstArrivals].sort((a, b) => a - b));
    expect(new Set(firstArrivals).size).toBe(firstArrivals.length);
    const numbers = r.received.filter((x) => !x.duplicate).map((x) => (kit.transport === 'w3bstream-v1' ? x.seq! : x.signedSeq!));
    expect(numbers).toEqual(Array.from({ length: numbers.length }, (_, i) => i + 1));
    expect(after.ok && after.state.publishing.skipped).toBe(0);
    const bodies = new Map<number, string>();
    for (const x of r.received) {
      if (bodies.has(kit.key(x))) expect(x.body).toBe(bodies.get(kit.key(x))); // a duplicate is the same message, byte for byte
      bodies.set(kit.key(x), x.body);
    }
    expect(before.ok && after.ok && after.state.energyTotalWh >= before.state.energyTotalWh).toBe(true);
    expect(second.output()).not.toContain(TOKEN);
    expect(await second.stop()).toBe(0);
    // Every stored reading arrived: the outbox drained (at most the reading stored as SIGTERM came
    // is left, newer than all that arrived) and it removed exactly what the receiver got.
    const box = await outboxContents(dir);
    const arrived = [...bodies.keys()];
    expect(box.seqs.length).toBeLessThanOrEqual(1);
    expect(box.waiting).toBe(box.seqs.length);
    const left = storedBodies(dir)
      .map((b) => arrived.find((k) => bodies.get(k) === b))
      .filter((k) => k !== undefined);
    expect(left.filter((k) => k < Math.max(...arrived))).toEqual([]);
    expect(box.delivered).toBe(arrived.length - left.length);
  });
});

describe('power-meter daemon (real process, simulated sensor)', () => {
  it('a power cut (frozen, the card copied as the syncs left it, RAM gone) loses at most the sync interval, never reuses a number, never lowers a total', async () => {
    const base = mkdtempSync(join(tmpdir(), 'pm-'));
    const dir = join(base, 'data');
    const ram = join(base, 'ram');
    const syncS = 3;
    // Publishing fails: readings pile up in the outbox, which reaches the card only at the syncs.
    const dead = `http://127.0.0.1:${await freePort()}/srv-applet-mgr/v0/event/test`;
    const extended = ['--signed-fields', 'extended'];
    const first = backend(dir, [
      '--sim-load',
      '4',
      '--publish-url',
      dead,
      '--runtime-dir',
      ram,
      '--sync-interval',
      String(syncS),
      ...extended,
    ]);
    await first.waitFor(/outbox and totals reach .* every 3 s/);
    let shown = 0;
    await until(
      async () => {
        const st = await readState(dir);
        if (st.ok) shown = st.state.energyTotalWh;
        return st.ok && st.state.publishing.waiting >= 3 * syncS && shown > 0;
      },
      30_000,
      'readings waiting and a synced total',
    );
    first.proc.kill('SIGSTOP');
    // At the cut: the RAM copy holds every reading acknowledged so far; the card what the syncs left.
    const atCut = join(base, 'ram-at-cut');
    cpSync(ram, atCut, { recursive: true });
    const card = join(base, 'card');
    cpSync(dir, card, { recursive: true, verbatimSymlinks: true });
    first.proc.kill('SIGKILL');
    await first.exited;
    rmSync(ram, { recursive: true, force: true });
    const acknowledged = new Map<number, string>();
    {
      const db = new Database(join(atCut, 'outbox.sqlite'));
      for (const row of db.prepare('SELECT seq, body FROM messages').all() as Array<{ seq: number; body: string }>)
        acknowledged.set(row.seq, row.body);
      db.close();
    }
    const highest = Math.max(...acknowledged.keys());

    // The next boot: the card's copy, an empty RAM directory, and a node that answers.
    const r = await receiver();
    const second = backend(card, [
      '--sim-load',
      '4',
      '--publish-url',
      r.url,
      '--runtime-dir',
      join(base, 'ram2'),
      '--sync-interval',
      String(syncS),
      ...extended,
    ]);
    // The numbers the lost RAM copy may have used are skipped, said once with the range, and counted.
    const [, from, to] = (await second.waitFor(/sequence numbers (\d+) to (\d+) skipped .*the RAM copy of the outbox was lost/)).map(
      Number,
    );
    expect(from).toBeLessThanOrEqual(highest + 1);
    expect(to).toBeGreaterThanOrEqual(highest);
    await until(() => r.received.some((x) => x.seq! > highest), 30_000, 'readings measured after the cut');
    const st = await readState(card);
    // The published total never goes back: it was the synced one.
    expect(st.ok && st.state.energyTotalWh).toBeGreaterThanOrEqual(shown);
    await until(
      async () => {
        const s2 = await readState(card);
        return s2.ok && s2.state.publishing.waiting <= 1;
      },
      30_000,
      'the backlog delivered',
    );
    expect(await second.stop()).toBe(0);
    const received = new Map(r.received.map((x) => [x.seq!, x.body]));
    // An eventID names one body for ever: a number from before the cut arrives only with its own body,
    // and every number after the cut is above all those handed out before it.
    for (const [seq, body] of received) {
      if (acknowledged.has(seq)) expect(body).toBe(acknowledged.get(seq));
      else expect(seq).toBeGreaterThan(highest);
    }
    // Lost: only what came after the last sync (1 s windows, so at most syncS readings, plus the one in flight).
    const lost = [...acknowledged.keys()].filter((seq) => !received.has(seq));
    expect(lost.length, `lost ${JSON.stringify(lost)}`).toBeLessThanOrEqual(syncS + 1);
    for (const seq of lost) expect(seq).toBeGreaterThan(highest - syncS - 2);
    // After the cut the numbering goes on right after the skipped range, which state.json counts.
    expect(Math.min(...[...received.keys()].filter((seq) => seq > highest))).toBe(to! + 1);
    const stopped = await readState(card);
    expect(stopped.ok && stopped.state.publishing.skipped).toBe(to! - from! + 1);
    // The signed energy total never decreases, not even across the cut: every reading signed
    // before it (delivered or lost) carries at most what the card held, where the next boot starts.
    const energyOf = (body: string) => (JSON.parse(body) as { data: { energy_wh: number } }).data.energy_wh;
    const before = Math.max(...[...acknowledged.values()].map(energyOf));
    const afterCut = [...received.entries()].filter(([seq]) => seq > highest).map(([, body]) => energyOf(body));
    expect(Math.min(...afterCut)).toBeGreaterThanOrEqual(before);
  });

  it('refuses a RAM directory that others can write (its name under /dev/shm can be guessed), with what to do', async () => {
    const base = mkdtempSync(join(tmpdir(), 'pm-'));
    const ram = join(base, 'ram');
    mkdirSync(ram);
    chmodSync(ram, 0o777);
    const p = backend(join(base, 'data'), ['--runtime-dir', ram]);
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain(`RAM directory ${ram} is owned by uid`);
    expect(p.output()).toContain('choose another with --runtime-dir');
  });

  it('holds readings while the clock is not synchronised and releases them with their true timestamps', async () => {
    const base = mkdtempSync(join(tmpdir(), 'pm-'));
    const dir = join(base, 'data');
    const root = join(base, 'root');
    mkdirSync(join(root, 'run/systemd/timesync'), { recursive: true }); // timesyncd present, not synced yet
    const r = await receiver();
    const p = backend(dir, ['--sim-load', '2', '--publish-url', r.url, '--timestamp-unit', 'ms'], { POWER_METER_TIMESYNC_ROOT: root });
    await p.waitFor(/clock unsynced: systemd-timesyncd has not synchronised yet/);
    await until(
      async () => {
        const st = await readState(dir);
        return st.ok && st.state.publishing.held >= 3;
      },
      20_000,
      'held readings',
    );
    expect(r.received).toHaveLength(0);
    const syncedAt = Date.now();
    writeFileSync(join(root, 'run/systemd/timesync/synchronized'), '');
    await until(() => r.received.length >= 3, 20_000, 'released readings');
    const ts = r.received.slice(0, 3).map((x) => x.timestamp!);
    // Re-anchored from the monotonic clock: the windows' own end times, ~1 s apart, before the sync.
    expect(ts[0]!).toBeLessThan(syncedAt);
    expect(ts[1]! - ts[0]!).toBeGreaterThan(900);
    expect(ts[1]! - ts[0]!).toBeLessThan(1100);
    expect(r.received.every((x) => x.verified)).toBe(true);
    await p.waitFor(/released \d+ held reading/);
    const st = await readState(dir);
    expect(st.ok && st.state.rewards.tokensPerH).toBe(10); // 2 W: the best default tier
  });

  it('cleans up leftovers of an earlier run and ignores a corrupt state.json', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-')), 'data');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '.state.json.tmp-999999-deadbeef'), '{"half":');
    writeFileSync(join(dir, 'state.json'), '{"garbage');
    const p = backend(dir, ['--sim-load', '4']);
    await p.waitFor(/removed 1 leftover temporary file/);
    await until(async () => (await readState(dir)).ok, 10_000, 'a valid state.json');
    expect(existsSync(join(dir, '.state.json.tmp-999999-deadbeef'))).toBe(false);
  });

  it('keeps running with a missing I2C bus and shows the fault, with the fix, in state.json', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-')), 'data');
    const p = start(BACKEND, ['--sensor', 'ina219', '--i2c-bus', '99', '--data-dir', dir]);
    procs.push(p);
    await until(
      async () => {
        const s = await readState(dir);
        return s.ok && s.state.sensor.state === 'fault';
      },
      10_000,
      'sensor fault in state.json',
    );
    const s = await readState(dir);
    expect(s.ok && s.state.sensor.reason).toMatch(/enable I2C/);
    // The library names no flag; the program's log adds which setting picks the bus.
    expect(s.ok && s.state.sensor.reason).not.toMatch(/--/);
    await p.waitFor(/sensor fault: .*enable I2C.*\(the bus is set with --i2c-bus \/ i2cBus\)/);
    expect(s.ok && s.state.powerW).toBeNull();
    expect(p.proc.exitCode).toBeNull();
  });

  it('a full outbox drops the oldest readings, counted in state.json and logged', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-')), 'data');
    const p = backend(dir, [
      '--sim-load',
      '4',
      '--outbox-max-count',
      '10',
      '--publish-url',
      'http://127.0.0.1:9/srv-applet-mgr/v0/event/x',
    ]);
    await p.waitFor(/dropped 1 oldest undelivered reading/, 25_000);
    await until(
      async () => {
        const s = await readState(dir);
        return s.ok && s.state.publishing.dropped >= 1 && s.state.publishing.waiting === 10;
      },
      10_000,
      'dropped count in state.json',
    );
  });

  it('refuses a second instance on the same data directory', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-')), 'data');
    const first = backend(dir, ['--sim-load', '4']);
    await first.waitFor(/sensor sim/);
    const second = backend(dir, ['--sim-load', '4']);
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(/another power-meter is already running on this data directory/);
  });

  it('exits 2 with one message naming a bad setting, from a flag, the environment or the config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pm-'));
    const a = backend(join(dir, 'd'), ['--window', 'fast']);
    expect(await a.exited).toBe(2);
    expect(a.output().trim()).toBe('power-meter: invalid setting --window = "fast" (from flag): allowed seconds, 1-3600');
    const b = backend(join(dir, 'd'), [], { POWER_METER_I2C_ADDRESS: '0x77' });
    expect(await b.exited).toBe(2);
    expect(b.output()).toMatch(/POWER_METER_I2C_ADDRESS = "0x77".*0x40-0x4f/);
    const d = backend(join(dir, 'd'), ['--max-current', '50']);
    expect(await d.exited).toBe(2);
    expect(d.output()).toMatch(/--max-current = 50.*at most 3\.20 A with a 0\.1 ohm shunt/);
    const e = backend(join(dir, 'd'), ['--publish-url', 'http://127.0.0.1:9/x?authorization=SECRET-Q-77']);
    expect(await e.exited).toBe(2);
    expect(e.output()).not.toContain('SECRET-Q-77');
    expect(e.output()).toMatch(/put it in W3BSTREAM_PUBLISHER_TOKEN/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ publishUrl: 'not a url', publisherToken: 'secret-in-config' }));
    const c = backend(join(dir, 'd'), ['--config', join(dir, 'config.json')]);
    expect(await c.exited).toBe(2);
    expect(c.output()).toMatch(/"publishUrl" in the config file/);
    expect(c.output()).not.toContain('secret-in-config');
  });

  it('shows every option with its default and environment variable in --help, and no token flag', async () => {
    const h = start(BACKEND, ['run', '--help']);
    await h.exited;
    for (const flag of [
      '--data-dir',
      '--publish-url',
      '--sensor',
      '--window',
      '--i2c-bus',
      '--i2c-address',
      '--shunt-ohms',
      '--max-current',
      '--sim-load',
    ])
      expect(h.output()).toContain(flag);
    expect(h.output()).toMatch(/POWER_METER_WINDOW/);
    expect(h.output()).toMatch(/default: 5;/);
    expect(h.output()).not.toMatch(/--token|--publisher-token/);
  });

  it('doctor passes with a reachable endpoint and says how to fix what is wrong', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-')), 'data');
    const r = await receiver();
    const good = start(BACKEND, ['doctor', '--sensor', 'sim', '--data-dir', dir, '--publish-url', r.url], {
      W3BSTREAM_PUBLISHER_TOKEN: TOKEN,
    });
    expect(await good.exited).toBe(0);
    expect(good.output()).toMatch(/ok\s+endpoint\s+127\.0\.0\.1:\d+ reachable/);
    expect(good.output()).toContain('all checks passed');
    expect(good.output()).not.toContain(TOKEN);
    expect(existsSync(dir)).toBe(false); // doctor looks, it does not create
    await r.close();
    receivers.splice(0);
    const bad = start(BACKEND, ['doctor', '--sensor', 'ina219', '--i2c-bus', '99', '--data-dir', dir, '--publish-url', r.url]);
    expect(await bad.exited).toBe(1);
    expect(bad.output()).toMatch(/FAIL i2c\s+\/dev\/i2c-99 does not exist\n\s+fix: enable I2C/);
    expect(bad.output()).toMatch(/FAIL token/);
    expect(bad.output()).toMatch(/FAIL endpoint .*ECONNREFUSED/);
  });

  it('identity --json, read --json and verify work on the same data directory', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-')), 'data');
    const id = start(BACKEND, ['identity', '--json', '--data-dir', dir]);
    expect(await id.exited).toBe(0);
    const ident = JSON.parse(id.output()) as { deviceId: string; publicKey: string; curve: string };
    expect(ident).toMatchObject({ curve: 'p256' });
    expect(ident.deviceId).toMatch(/^0x[0-9a-f]{40}$/);
    expect(ident.publicKey).toMatch(/^04[0-9a-f]{128}$/);
    const rd = start(BACKEND, ['read', '--json', '--sensor', 'sim', '--sim-load', '12', '--data-dir', dir]);
    expect(await rd.exited).toBe(0);
    expect(JSON.parse(rd.output()).powerW).toBeCloseTo(12, 0);

    const r = await receiver();
    const record = join(dir, '..', 'received.jsonl');
    const { appendFileSync } = await import('node:fs');
    const p = backend(dir, ['--sim-load', '3', '--publish-url', r.url]);
    await until(() => r.received.length >= 2, 20_000, 'readings');
    await p.stop();
    for (const x of r.received) appendFileSync(record, `${JSON.stringify(x)}\n`);
    const ok = start(BACKEND, ['verify', record]);
    expect(await ok.exited).toBe(0);
    expect(ok.output()).toMatch(/verified/);
    writeFileSync(record, r.received[0]!.body.replace(/"timestamp":(\d+)/, '"timestamp": $1'));
    const bad = start(BACKEND, ['verify', record]);
    expect(await bad.exited).toBe(1);
    // The body carries the device address (the default wire form): no key recovered from the signature over altered text has it.
    expect(bad.output()).toContain(`signature is not by the device ${ident.deviceId}`);
  });
});
