import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import {
  Outbox,
  OutboxCorruptError,
  OutboxLockedError,
  OutboxOptionError,
  OutboxTooNewError,
  SequenceFloorError,
  readSequenceFloor,
} from '../src/index.js';
import { until } from '../../../test/support/until.js';
import { PACKAGE_DIR, fillUp, mountTmpfs, onCleanup, tempDir } from './helpers.js';

function open(file: string, opts: Parameters<typeof Outbox.open>[1] = {}): Outbox {
  const o = Outbox.open(file, opts);
  onCleanup(() => o.close());
  return o;
}

describe('durable outbox', () => {
  it('numbers messages 1, 2, 3 … in order and keeps body, creation time and attempts', () => {
    const o = open(join(tempDir(), 'outbox', 'o.sqlite'), { now: () => 5000 });
    expect(o.append('a').seq).toBe(1);
    expect(o.append('b', { createdAtMs: 1234 }).seq).toBe(2);
    o.noteAttempt(1);
    o.noteAttempt(1);
    expect(o.peek(10)).toEqual([
      { seq: 1, body: 'a', createdAtMs: 5000, attempts: 2 },
      { seq: 2, body: 'b', createdAtMs: 1234, attempts: 0 },
    ]);
    expect(o.peek(10, 1).map((m) => m.seq)).toEqual([2]);
    expect(o.waiting()).toBe(2);
  });

  it('never reuses a sequence number: not after deletes, not after reopening an emptied outbox', () => {
    const file = join(tempDir(), 'o.sqlite');
    const a = Outbox.open(file);
    for (let i = 0; i < 5; i++) a.append(`m${i}`);
    expect(a.markDelivered(5, 'delivered')).toBe(true); // the newest goes first: MAX(seq) would now be 4
    for (const seq of [1, 2, 3]) a.markDelivered(seq);
    expect(a.markDelivered(4, 'rejected')).toBe(true);
    expect(a.markDelivered(4)).toBe(false); // already gone
    expect(a.waiting()).toBe(0);
    expect(a.append('after').seq).toBe(6);
    a.markDelivered(6);
    a.close();
    const b = open(file);
    expect(b.append('reopened').seq).toBe(7);
    expect(b.stats()).toEqual({ waiting: 1, dropped: 0, rejected: 1, unhandled: 0, delivered: 5, nextSeq: 8, appended: 7, skipped: 0 });
  });

  it('drops the oldest when full, returns and counts every drop, keeps the newest', () => {
    const o = open(join(tempDir(), 'o.sqlite'), { maxCount: 10 });
    const dropped: number[] = [];
    for (let i = 0; i < 15; i++) dropped.push(o.append(`m${i}`).dropped);
    expect(dropped).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    expect(o.waiting()).toBe(10);
    expect(o.droppedTotal()).toBe(5);
    expect(o.peek(100).map((m) => m.seq)).toEqual([6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it('drops messages older than the age bound (in measured time), counted', () => {
    let now = 1_000_000;
    const o = open(join(tempDir(), 'o.sqlite'), { maxAgeMs: 60_000, monotonicNow: () => now });
    o.append('a');
    o.append('b');
    now += 30_000;
    o.append('c');
    now += 31_000; // a and b are 61 s old, c 31 s
    expect(o.append('d').dropped).toBe(2);
    expect(o.peek(10).map((m) => m.body)).toEqual(['c', 'd']);
    now += 30_000; // c is 61 s old
    expect(o.enforceBounds()).toBe(1);
    expect(o.peek(10).map((m) => m.body)).toEqual(['d']);
    expect(o.droppedTotal()).toBe(3);
  });

  it('a step of the wall clock drops nothing: age is measured time (date -s "+40 days" while offline)', () => {
    let wall = Date.UTC(2026, 10, 28);
    let mono = 5_000;
    const o = open(join(tempDir(), 'o.sqlite'), { maxAgeMs: 30 * 86_400_000, now: () => wall, monotonicNow: () => mono });
    o.append('a');
    mono += 2_000;
    o.append('b');
    wall += 40 * 86_400_000; // the clock jumps; two seconds of real time pass
    mono += 2_000;
    expect(o.append('c').dropped).toBe(0);
    expect(o.enforceBounds()).toBe(0);
    expect(o.peek(10).map((m) => [m.body, m.createdAtMs - Date.UTC(2026, 10, 28)])).toEqual([
      ['a', 0],
      ['b', 0],
      ['c', 40 * 86_400_000],
    ]);
    wall -= 80 * 86_400_000; // and back: still nothing dropped, nothing misordered
    expect(o.enforceBounds()).toBe(0);
    mono += 30 * 86_400_000 - 4_000 + 1; // thirty days of measured time after 'a'
    expect(o.enforceBounds()).toBe(1);
    expect(o.peek(10).map((m) => m.body)).toEqual(['b', 'c']);
  });

  it('measured time survives a restart: the age of a stored message keeps counting from where it was', () => {
    const file = join(tempDir(), 'o.sqlite');
    let mono = 1_000;
    const a = Outbox.open(file, { maxAgeMs: 60_000, monotonicNow: () => mono });
    a.append('old');
    mono += 50_000;
    a.close();
    mono = 7; // a reboot: the monotonic clock starts again near zero
    const b = open(file, { maxAgeMs: 60_000, monotonicNow: () => mono });
    expect(b.enforceBounds()).toBe(0);
    mono += 10_001; // 50 s + 10 s measured
    expect(b.enforceBounds()).toBe(1);
  });

  it('refuses a second opener of the same file, with what to do', () => {
    const file = join(tempDir(), 'o.sqlite');
    open(file);
    expect(() => Outbox.open(file)).toThrow(OutboxLockedError);
    expect(() => Outbox.open(file)).toThrow(/outbox .* is in use by another process/);
  });

  it('refuses nonsense bounds', () => {
    const file = join(tempDir(), 'o.sqlite');
    expect(() => Outbox.open(file, { maxCount: 0 })).toThrow(OutboxOptionError);
    expect(() => Outbox.open(file, { maxAgeMs: -1 })).toThrow(/maxAgeMs=-1/);
    expect(() => Outbox.open(file, { maxAgeMs: Number.POSITIVE_INFINITY })).toThrow(OutboxOptionError);
  });

  it("commits the caller's own tables in the same transaction, both ways", () => {
    const o = open(join(tempDir(), 'o.sqlite'), {
      schemas: [{ name: 'test', migrations: ['CREATE TABLE totals (energy_wh REAL); INSERT INTO totals VALUES (0);'] }],
    });
    const energy = () => o.transaction((sql) => sql.get<{ e: number }>('SELECT energy_wh AS e FROM totals')!.e);
    // 1. The append hook.
    expect(() => o.append('x', { inTransaction: (_seq, sql) => sql.exec('INSERT INTO nope VALUES (1)') })).toThrow(/no such table/);
    expect(o.waiting()).toBe(0);
    expect(o.append('y', { inTransaction: (seq, sql) => void sql.run('UPDATE totals SET energy_wh = energy_wh + ?', seq) }).seq).toBe(1);
    // 2. Inside the caller's transaction(): all or nothing, removals included.
    const window = (wh: number, fail: boolean) =>
      o.transaction((sql) => {
        sql.run('UPDATE totals SET energy_wh = energy_wh + ?', wh);
        const r = o.append(`w${wh}`, { createdAtMs: 42 });
        o.markDelivered(1);
        if (fail) throw new Error('power cut in the middle');
        return r;
      });
    expect(() => window(5, true)).toThrow('power cut');
    expect([energy(), o.waiting(), o.peek(10).map((m) => m.seq)]).toEqual([1, 1, [1]]);
    expect(window(2, false).seq).toBe(2);
    expect([energy(), o.waiting(), o.peek(10).map((m) => [m.seq, m.createdAtMs])]).toEqual([3, 1, [[2, 42]]]);
    expect('db' in o).toBe(false); // no database handle is shared
  });

  it("upgrades today's schema with data in it: messages, counters and the backend's tables are kept", () => {
    const file = join(tempDir(), 'o.sqlite');
    // The schema of the first release, exactly as it created it (no user_version, no schema_versions).
    const old = new Database(file);
    old.exec(`
      CREATE TABLE messages (seq INTEGER PRIMARY KEY, body TEXT NOT NULL, created_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT INTO counters VALUES ('next_seq', 8), ('dropped', 2), ('rejected', 1), ('delivered', 3), ('waiting', 2);
      CREATE TABLE meter_totals (id INTEGER PRIMARY KEY CHECK (id = 1), energy_wh REAL NOT NULL, rewards_total REAL NOT NULL, windows INTEGER NOT NULL, recent TEXT NOT NULL, held_dropped INTEGER NOT NULL DEFAULT 0);
      INSERT INTO meter_totals VALUES (1, 12.5, 3.25, 7, '[1,2]', 0);
    `);
    const wall = Date.now();
    old.prepare('INSERT INTO messages (seq, body, created_ms, attempts) VALUES (?, ?, ?, ?)').run(6, 'six', wall - 10 * 86_400_000, 4);
    old.prepare('INSERT INTO messages (seq, body, created_ms, attempts) VALUES (?, ?, ?, ?)').run(7, 'seven', wall - 1000, 0);
    expect(old.pragma('user_version', { simple: true })).toBe(0);
    old.close();
    const meter = {
      name: 'meter',
      migrations: [
        'CREATE TABLE IF NOT EXISTS meter_totals (id INTEGER PRIMARY KEY, energy_wh REAL NOT NULL, rewards_total REAL NOT NULL, windows INTEGER NOT NULL, recent TEXT NOT NULL, held_dropped INTEGER NOT NULL DEFAULT 0)',
        'ALTER TABLE meter_totals ADD COLUMN note TEXT',
      ],
    };
    let mono = 0;
    const o = Outbox.open(file, { maxAgeMs: 11 * 86_400_000, monotonicNow: () => mono, schemas: [meter] });
    expect(o.openReport).toMatchObject({ created: false, fromVersion: 0, seqRaised: null });
    // Every number used before the counters existed counts as appended.
    expect(o.stats()).toEqual({ waiting: 2, dropped: 2, rejected: 1, unhandled: 0, delivered: 3, nextSeq: 8, appended: 7, skipped: 0 });
    expect(o.peek(10)).toEqual([
      { seq: 6, body: 'six', createdAtMs: wall - 10 * 86_400_000, attempts: 4 },
      { seq: 7, body: 'seven', createdAtMs: wall - 1000, attempts: 0 },
    ]);
    expect(o.transaction((sql) => sql.get('SELECT energy_wh, rewards_total, windows, note FROM meter_totals'))).toEqual({
      energy_wh: 12.5,
      rewards_total: 3.25,
      windows: 7,
      note: null,
    });
    // The old rows' age carried over from their wall-clock age: 'six' is 10 days old, so one more day drops it.
    mono += 86_400_000 + 60_000;
    expect(o.enforceBounds()).toBe(1);
    expect(o.append('eight').seq).toBe(8);
    o.close();
    const again = open(file, { schemas: [meter] });
    expect(again.openReport.fromVersion).toBeGreaterThan(0);
    expect(again.peek(10).map((m) => m.body)).toEqual(['seven', 'eight']);
  });

  it('a sequence floor beside the key: a deleted, emptied or older outbox never reuses a number', async () => {
    const dir = tempDir();
    const file = join(dir, 'outbox', 'o.sqlite');
    const floor = join(dir, 'identity', 'sequence-floor.json');
    const a = Outbox.open(file, { sequenceFloorFile: floor, sequenceBlock: 10 });
    for (let i = 0; i < 4; i++) a.append(`m${i}`);
    expect(readSequenceFloor(floor)).toMatchObject({ nextSeq: 11, clean: false }); // the block 1-10 is reserved
    a.close();
    expect(readSequenceFloor(floor)).toMatchObject({ nextSeq: 5, clean: true }); // a clean stop records the exact next number
    const copy = `${file}.copy`;
    writeFileSync(copy, readFileSync(file)); // an older copy, to be put back later
    const b = Outbox.open(file, { sequenceFloorFile: floor, sequenceBlock: 10 });
    expect(b.openReport.seqRaised).toBeNull();
    for (let i = 0; i < 12; i++) b.append(`n${i}`); // 5..16: a second block is reserved at 15
    expect(readSequenceFloor(floor)).toMatchObject({ nextSeq: 25, clean: false });
    b.close();
    // 1. deleted
    rmSync(file);
    rmSync(`${file}-wal`, { force: true });
    const c = Outbox.open(file, { sequenceFloorFile: floor, sequenceBlock: 10 });
    expect(c.openReport).toMatchObject({ created: true, seqRaised: { from: 1, to: 17, reason: 'outbox-new' } });
    expect(c.append('after delete').seq).toBe(17);
    expect(c.stats()).toMatchObject({ appended: 1, skipped: 16, nextSeq: 18 });
    c.close();
    // 2. emptied (a zero-byte file, as a full disk or a careless `> outbox.sqlite` leaves it)
    writeFileSync(file, '');
    rmSync(`${file}-wal`, { force: true });
    const d = Outbox.open(file, { sequenceFloorFile: floor, sequenceBlock: 10 });
    expect(d.append('after emptying').seq).toBe(18);
    d.close();
    // 3. kill -9 of a real process working on the card's file: the floor holds a reservation, but
    // the file it committed every number to is there, so the numbering goes on without a gap.
    const child = spawn(process.execPath, [join(PACKAGE_DIR, 'test', 'fixtures', 'append-worker.mjs'), file, floor], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    await until(() => (out.match(/appended/g) ?? []).length >= 5, 10_000, 'appends from the worker');
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));
    const reservation = readSequenceFloor(floor)!;
    expect(reservation.clean).toBe(false);
    const printed = [...out.matchAll(/appended (\d+)/g)].map((m) => Number(m[1]));
    expect(Math.max(...printed)).toBeLessThan(reservation.nextSeq);
    const e = Outbox.open(file, { sequenceFloorFile: floor, sequenceBlock: 10 });
    expect(e.openReport.seqRaised).toBeNull();
    const afterCrash = e.append('after a crash').seq;
    expect(afterCrash).toBeGreaterThan(Math.max(...printed));
    expect(afterCrash).toBeLessThanOrEqual(Math.max(...printed) + 2); // the append in flight at the kill may have committed
    expect(afterCrash).toBeLessThan(reservation.nextSeq);
    e.close();
    // 4. replaced by the older copy: it knows only 1-4
    rmSync(`${file}-wal`, { force: true });
    writeFileSync(file, readFileSync(copy));
    const f = open(file, { sequenceFloorFile: floor, sequenceBlock: 10 });
    expect(f.openReport.seqRaised).toEqual({ from: 5, to: afterCrash + 1, reason: 'outbox-older' });
    expect(f.peek(10).map((m) => m.seq)).toEqual([1, 2, 3, 4]); // its own messages are still sent
    expect(f.append('after restore').seq).toBe(afterCrash + 1);
    // 5. a floor written by another run than the one the database worked in (a start killed while
    // opening, an older copy of the same place): no proof the database holds the last number.
    const g = Outbox.open(join(dir, 'other.sqlite'), { sequenceFloorFile: join(dir, 'other-floor.json'), sequenceBlock: 10 });
    g.append('g1');
    g.close();
    const otherFloor = join(dir, 'other-floor.json');
    writeFileSync(otherFloor, JSON.stringify({ nextSeq: 12, clean: false, session: 'a-start-killed-while-opening' }));
    const h = open(join(dir, 'other.sqlite'), { sequenceFloorFile: otherFloor, sequenceBlock: 10 });
    expect(h.openReport.seqRaised).toEqual({ from: 2, to: 12, reason: 'unclean-stop' });
  });

  it('salvaged messages put back under their own numbers are no longer counted as skipped', () => {
    const dir = tempDir();
    const file = join(dir, 'o.sqlite');
    const floor = join(dir, 'floor.json');
    const a = Outbox.open(file, { sequenceFloorFile: floor });
    for (let i = 1; i <= 5; i++) a.append(`m${i}`);
    const salvaged = a.peek(10).filter((m) => m.seq >= 2 && m.seq <= 4);
    a.close();
    rmSync(file); // damaged and moved aside, as `power-meter outbox salvage` does
    rmSync(`${file}-wal`, { force: true });
    const b = open(file, { sequenceFloorFile: floor });
    expect(b.stats()).toMatchObject({ nextSeq: 6, appended: 0, skipped: 5 });
    expect(b.restore(salvaged)).toBe(3);
    expect(b.stats()).toMatchObject({ nextSeq: 6, appended: 3, skipped: 2, waiting: 3 });
  });

  it('refuses a database written by a newer release, and leaves it as it is', () => {
    const file = join(tempDir(), 'o.sqlite');
    Outbox.open(file).close();
    const db = new Database(file);
    db.pragma('user_version = 99');
    db.close();
    const before = readFileSync(file);
    expect(() => Outbox.open(file)).toThrow(OutboxTooNewError);
    expect(() => Outbox.open(file)).toThrow(/written by a newer release \(schema version 99/);
    // The detail is data too, for the program's own words.
    expect(() => Outbox.open(file)).toThrow(expect.objectContaining({ detail: expect.stringMatching(/^schema version 99/) }));
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it('an unreadable sequence floor is an error naming the file, never a silent restart at 1', () => {
    const dir = tempDir();
    const floor = join(dir, 'sequence-floor.json');
    writeFileSync(floor, '{"nextSeq": "12"');
    expect(() => Outbox.open(join(dir, 'o.sqlite'), { sequenceFloorFile: floor })).toThrow(SequenceFloorError);
    expect(() => Outbox.open(join(dir, 'o.sqlite'), { sequenceFloorFile: floor })).toThrow(floor);
  });

  it('a damaged database is OutboxCorruptError naming the file, not a new empty outbox', () => {
    const dir = tempDir();
    const file = join(dir, 'o.sqlite');
    const a = Outbox.open(file);
    for (let i = 0; i < 300; i++) a.append(`{"reading":${i},"pad":"${'x'.repeat(200)}"}`);
    a.close();
    const db = new Database(file);
    const leaf = (
      db.prepare("SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'leaf' ORDER BY pageno").all() as Array<{
        pageno: number;
      }>
    ).map((r) => r.pageno);
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.close();
    const bytes = readFileSync(file);
    const page = leaf[Math.floor(leaf.length / 2)]!;
    bytes.fill(0xa5, (page - 1) * pageSize, page * pageSize); // one leaf page of messages overwritten
    writeFileSync(file, bytes);
    expect(() => Outbox.open(file)).toThrow(OutboxCorruptError);
    expect(() => Outbox.open(file)).toThrow(`outbox ${file} is damaged`);
    // Truncated in the middle of a page: also refused.
    const cut = join(dir, 'cut.sqlite');
    const b = Outbox.open(cut);
    for (let i = 0; i < 300; i++) b.append(`{"reading":${i},"pad":"${'x'.repeat(200)}"}`);
    b.close();
    writeFileSync(cut, readFileSync(cut).subarray(0, 20_000 + 300));
    expect(() => Outbox.open(cut)).toThrow(OutboxCorruptError);
    // Not a database at all.
    writeFileSync(join(dir, 'text.sqlite'), 'this is not a database, but a text file of some length '.repeat(40));
    expect(() => Outbox.open(join(dir, 'text.sqlite'))).toThrow(OutboxCorruptError);
  });

  it('recounts waiting messages at open, if rows were removed behind its back', () => {
    const file = join(tempDir(), 'o.sqlite');
    const a = Outbox.open(file);
    for (let i = 0; i < 4; i++) a.append(`m${i}`);
    a.close();
    const db = new Database(file);
    db.exec('DELETE FROM messages WHERE seq <= 2');
    db.close();
    const b = open(file);
    expect(b.waiting()).toBe(2);
    expect(b.append('next').seq).toBe(5);
  });

  it('makes the body with its own number inside the transaction; a failure there takes nothing', () => {
    const o = open(join(tempDir(), 'o.sqlite'));
    const made: number[] = [];
    const sign = (seq: number) => {
      made.push(seq);
      return `{"data":{"seq":${seq}}}`;
    };
    expect(o.append(sign)).toMatchObject({ seq: 1, body: '{"data":{"seq":1}}', dropped: 0, syncError: null });
    expect(() =>
      o.append(() => {
        throw new Error('the signing token is away');
      }),
    ).toThrow('token is away');
    expect(() => o.append(sign, { inTransaction: () => void o.transaction((sql) => sql.exec('INSERT INTO nope VALUES (1)')) })).toThrow(
      /no such table/,
    );
    expect(o.append(sign).seq).toBe(2); // neither failure used a number
    expect(made).toEqual([1, 2, 2]);
    expect(o.peek(10).map((m) => m.body)).toEqual(['{"data":{"seq":1}}', '{"data":{"seq":2}}']);
    expect(o.stats()).toMatchObject({ appended: 2, skipped: 0, nextSeq: 3, waiting: 2 });
  });

  it('uses WAL with synchronous=FULL for appends, and restores FULL after a removal', () => {
    const o = open(join(tempDir(), 'o.sqlite'));
    const pragma = (name: string) => o.transaction((sql) => sql.get<Record<string, unknown>>(`PRAGMA ${name}`)![name]);
    expect(pragma('journal_mode')).toBe('wal');
    o.append('a');
    o.markDelivered(1);
    expect(pragma('synchronous')).toBe(2); // FULL
  });

  it('survives kill -9 at random moments: everything acknowledged is there, numbers never repeat', async () => {
    const file = join(tempDir(), 'o.sqlite');
    const worker = join(PACKAGE_DIR, 'test', 'fixtures', 'append-worker.mjs');
    const ledger = new KillLedger();
    for (let round = 0; round < 4; round++) {
      await ledger.runUntilKilled([worker, file], 30 + round * 40); // kill at different points of the append/remove cycle
      const check = new Database(file);
      expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
      const stored = new Set((check.prepare('SELECT seq FROM messages').all() as Array<{ seq: number }>).map((r) => r.seq));
      check.close();
      ledger.expectKept(stored);
      // At most the one step in flight at the kill can be ahead of what was printed.
      const o = Outbox.open(file);
      expect(o.stats().nextSeq).toBeGreaterThan(ledger.highest);
      expect(o.stats().nextSeq).toBeLessThanOrEqual(ledger.highest + 2);
      o.close();
    }
    expect(ledger.acknowledged.size).toBeGreaterThan(100);
  });
});

describe('outbox staged in RAM (stagingFile)', () => {
  const cardSeqs = (file: string): number[] => {
    const db = new Database(file, { readonly: true });
    try {
      return (db.prepare('SELECT seq FROM messages ORDER BY seq').all() as Array<{ seq: number }>).map((r) => r.seq);
    } finally {
      db.close();
    }
  };

  it('commits to the RAM copy and reaches the card only at sync(); a clean close syncs and removes the copy', () => {
    const dir = tempDir();
    const file = join(dir, 'card', 'o.sqlite');
    const staging = join(dir, 'ram', 'o.sqlite');
    const o = Outbox.open(file, { stagingFile: staging, sequenceFloorFile: join(dir, 'card', 'floor.json') });
    expect(o.staged).toBe(true);
    for (let i = 0; i < 5; i++) o.append(`m${i}`);
    o.markDelivered(1);
    // What a power cut would leave: the card's file.
    const onCard = (): number[] =>
      o.durable((sql) => sql.all<{ seq: number }>('SELECT seq FROM main.messages ORDER BY seq')).map((r) => r.seq);
    expect(onCard()).toEqual([]);
    expect(o.peek(10).map((m) => m.seq)).toEqual([2, 3, 4, 5]);
    o.sync();
    expect(onCard()).toEqual([2, 3, 4, 5]);
    o.markDelivered(2);
    o.markDelivered(3);
    o.append('m5');
    expect(onCard()).toEqual([2, 3, 4, 5]);
    o.sync();
    expect(onCard()).toEqual([4, 5, 6]);
    expect(o.durable((sql) => sql.get<{ value: number }>("SELECT value FROM counters WHERE name = 'delivered'"))!.value).toBe(3);
    o.append('m6');
    o.close();
    expect(existsSync(staging)).toBe(false);
    expect(cardSeqs(file)).toEqual([4, 5, 6, 7]);
  });

  it('ignores a RAM copy older than the card (a stale copy is never taken over newer data)', () => {
    const dir = tempDir();
    const file = join(dir, 'card', 'o.sqlite');
    const staging = join(dir, 'ram', 'o.sqlite');
    const a = Outbox.open(file, { stagingFile: staging });
    a.append('x1');
    a.sync();
    a.append('x2');
    const stale = ['', '-wal'].map((suffix) => [suffix, existsSync(staging + suffix) ? readFileSync(staging + suffix) : null] as const);
    a.append('x3');
    a.close(); // the card now holds x1..x3, one sync generation further than the copy
    mkdirSync(join(dir, 'ram'), { recursive: true });
    for (const [suffix, buf] of stale) if (buf) writeFileSync(staging + suffix, buf);
    const b = open(file, { stagingFile: staging });
    expect(b.peek(10).map((m) => m.body)).toEqual(['x1', 'x2', 'x3']);
    expect(b.append('x4').seq).toBe(4);
  });

  it('kill -9 at random moments loses nothing acknowledged; numbers never repeat', async () => {
    const dir = tempDir();
    const file = join(dir, 'o.sqlite');
    const floor = join(dir, 'floor.json');
    const staging = join(dir, 'ram', 'o.sqlite');
    const worker = join(PACKAGE_DIR, 'test', 'fixtures', 'append-worker.mjs');
    const ledger = new KillLedger();
    for (let round = 0; round < 4; round++) {
      await ledger.runUntilKilled([worker, file, floor, staging], 30 + round * 37);
      const o = Outbox.open(file, { sequenceFloorFile: floor, stagingFile: staging });
      const stored = new Set(o.peek(100_000).map((m) => m.seq));
      ledger.expectKept(stored);
      // The RAM copy outlived the process and knows the exact next number: no gap.
      expect(o.openReport.seqRaised).toBeNull();
      expect(o.stats().nextSeq).toBeGreaterThan(ledger.highest);
      expect(o.stats().nextSeq).toBeLessThanOrEqual(ledger.highest + 2);
      expect(o.stats().skipped).toBe(0);
      o.close(); // the card now holds it all; the next round starts from it
      expect(cardSeqs(file)).toEqual([...stored].sort((x, y) => x - y));
    }
    expect(ledger.acknowledged.size).toBeGreaterThan(100);
  });

  it('a power cut (process frozen, only the card copied) loses at most what came after the last sync and never reuses a number', async () => {
    const dir = tempDir();
    const card = join(dir, 'card');
    const worker = join(PACKAGE_DIR, 'test', 'fixtures', 'append-worker.mjs');
    const file = join(card, 'o.sqlite');
    const floor = join(card, 'floor.json');
    const child = spawn(process.execPath, [worker, file, floor, join(dir, 'ram', 'o.sqlite')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    await until(() => out.split('\n').filter((l) => l.startsWith('synced')).length >= 20, 10_000, 'syncs from the worker');
    child.kill('SIGSTOP');
    // What the card holds is exactly what the sync points left: nothing else is written to it.
    const after = join(dir, 'after-cut');
    mkdirSync(after);
    for (const name of readdirSync(card)) copyFileSync(join(card, name), join(after, name));
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));
    const lines = out.split('\n').slice(0, -1);
    const appended = lines.filter((l) => l.startsWith('appended ')).map((l) => Number(l.split(' ')[1]));
    const lastSynced = Number(
      lines
        .filter((l) => l.startsWith('synced '))
        .at(-1)!
        .split(' ')[1],
    );
    const deliveredSeqs = new Set(lines.filter((l) => l.startsWith('delivered ')).map((l) => Number(l.split(' ')[1])));
    const o = Outbox.open(join(after, 'o.sqlite'), {
      sequenceFloorFile: join(after, 'floor.json'),
      stagingFile: join(dir, 'ram-after-reboot', 'o.sqlite'),
      sequenceBlock: 10,
    });
    onCleanup(() => o.close());
    const kept = new Set(o.peek(100_000).map((m) => m.seq));
    // Everything acknowledged up to the last completed sync and not delivered is still there.
    for (const seq of appended) if (seq <= lastSynced - 3 && !deliveredSeqs.has(seq)) expect(kept.has(seq), `seq ${seq} lost`).toBe(true);
    // Lost: at most the 7 steps between two syncs (and the one in flight).
    const lost = appended.filter((seq) => !kept.has(seq) && !deliveredSeqs.has(seq) && seq > lastSynced);
    expect(lost.length).toBeLessThanOrEqual(8);
    // A number handed out before the cut is never handed out again, whatever the card lost; the
    // numbers skipped are reported, with why.
    expect(o.append('after the cut').seq).toBeGreaterThan(Math.max(...appended));
    const gap = o.openReport.seqRaised!;
    expect(gap).toMatchObject({ reason: 'ram-copy-lost' });
    expect(gap.from).toBeGreaterThan(lastSynced);
    expect(gap.from).toBeLessThanOrEqual(Math.max(...appended) + 2);
    expect(o.stats().skipped).toBe(gap.to - gap.from);
  });
});

describe('strict mode (syncEveryAppend) on a card that fills up', () => {
  it('stores each message once, hands the publisher only what is on the card, and the rest once there is room', () => {
    const dir = tempDir();
    const card = join(dir, 'card');
    mountTmpfs(card, '1m');
    const o = open(join(card, 'o.sqlite'), {
      stagingFile: join(dir, 'ram', 'o.sqlite'),
      sequenceFloorFile: join(card, 'floor.json'),
      syncEveryAppend: true,
    });
    let wakeUps = 0;
    o.onAppend(() => wakeUps++);
    const pad = 'x'.repeat(3000);
    expect(o.append(`m1 ${pad}`)).toMatchObject({ seq: 1, syncError: null });
    expect(o.peek(10).map((m) => m.seq)).toEqual([1]);
    const free = fillUp(card);
    const failed = [2, 3, 4, 5, 6].map((n) => o.append(`m${n} ${pad}`));
    // Stored (numbered, in the RAM copy), each exactly once; the sync after it failed, and says so.
    expect(failed.map((r) => r.seq)).toEqual([2, 3, 4, 5, 6]);
    expect(
      failed.every(
        (r) => r.syncError !== null && /full|SQLITE_FULL/.test(`${r.syncError.message} ${(r.syncError as { code?: string }).code}`),
      ),
    ).toBe(true);
    expect(o.waiting()).toBe(6);
    expect(o.peek(10).map((m) => m.seq)).toEqual([1]); // only what is on the card goes out
    expect(o.durable((sql) => sql.all<{ seq: number }>('SELECT seq FROM main.messages')).map((r) => r.seq)).toEqual([1]);
    o.markDelivered(1);
    const before = wakeUps;
    free();
    o.sync();
    expect(wakeUps).toBe(before + 1); // the publisher is woken: five more are on the card
    expect(o.peek(10).map((m) => m.seq)).toEqual([2, 3, 4, 5, 6]);
    expect(o.append(`m7 ${pad}`)).toMatchObject({ seq: 7, syncError: null });
    expect(o.stats()).toMatchObject({ appended: 7, skipped: 0, waiting: 6, nextSeq: 8 });
  });
});

describe('strict mode across a long backlog', () => {
  it('what was appended on the card while the backlog was long goes out at once when the outbox is back in RAM', () => {
    const dir = tempDir();
    const o = open(join(dir, 'card', 'o.sqlite'), {
      stagingFile: join(dir, 'ram', 'o.sqlite'),
      syncEveryAppend: true,
      stagingMaxWaiting: 10,
    });
    for (let i = 1; i <= 11; i++) expect(o.append(`m${i}`).syncError).toBeNull();
    expect(o.staged).toBe(false); // 11 waiting > 10: on the card, every append durable at once
    expect(o.append('m12').seq).toBe(12);
    for (const m of o.peek(11)) o.markDelivered(m.seq);
    o.sync(); // 1 waiting: back in RAM
    expect(o.staged).toBe(true);
    expect(o.peek(10).map((m) => m.seq)).toEqual([12]);
    expect(o.append('m13').syncError).toBeNull();
    expect(o.peek(10).map((m) => m.seq)).toEqual([12, 13]);
  });
});

describe('outbox staged in RAM: a long backlog', () => {
  it('kill -9 while it works on the card (the backlog outgrew RAM): the card knows the next number, no gap', async () => {
    const dir = tempDir();
    const file = join(dir, 'card', 'o.sqlite');
    const floor = join(dir, 'card', 'floor.json');
    const staging = join(dir, 'ram', 'o.sqlite');
    const ledger = new KillLedger();
    const worker = join(PACKAGE_DIR, 'test', 'fixtures', 'append-worker.mjs');
    await ledger.runUntilKilled([worker, file, floor, staging, '20'], 60);
    const o = open(file, { sequenceFloorFile: floor, stagingFile: staging, stagingMaxWaiting: 20 });
    expect(o.staged).toBe(false); // the backlog is still over the bound: on the card
    ledger.expectKept(new Set(o.peek(100_000).map((m) => m.seq)));
    expect(o.openReport.seqRaised).toBeNull();
    expect(o.stats().nextSeq).toBeGreaterThan(ledger.highest);
    expect(o.stats().nextSeq).toBeLessThanOrEqual(ledger.highest + 2);
  });

  it('moves to the card when the backlog outgrows the RAM copy, and back to RAM once it drained', () => {
    const dir = tempDir();
    const file = join(dir, 'card', 'o.sqlite');
    const staging = join(dir, 'ram', 'o.sqlite');
    const o = open(file, { stagingFile: staging, stagingMaxWaiting: 20 });
    const onCard = (): number => o.durable((sql) => sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM main.messages'))!.n;
    for (let i = 0; i < 21; i++) o.append(`m${i}`);
    expect(onCard()).toBe(0);
    o.sync(); // 21 waiting > 20: everything goes to the card, and the outbox works there
    expect(o.staged).toBe(false);
    expect(existsSync(staging)).toBe(false);
    expect(onCard()).toBe(21);
    o.append('m21'); // durable at once
    expect(onCard()).toBe(22);
    for (const m of o.peek(20)) o.markDelivered(m.seq);
    expect(onCard()).toBe(2);
    o.sync(); // 2 waiting <= a tenth of the bound: back to RAM
    expect(o.staged).toBe(true);
    expect(existsSync(staging)).toBe(true);
    expect(o.append('m22').seq).toBe(23);
    expect(onCard()).toBe(2);
    expect(o.peek(10).map((m) => m.body)).toEqual(['m20', 'm21', 'm22']);
    o.sync();
    expect(onCard()).toBe(3);
  });

  it('starts on the card when the card holds a backlog over the bound and no RAM copy is left', () => {
    const dir = tempDir();
    const file = join(dir, 'card', 'o.sqlite');
    const a = Outbox.open(file);
    for (let i = 0; i < 30; i++) a.append(`m${i}`);
    a.close();
    const b = open(file, { stagingFile: join(dir, 'ram', 'o.sqlite'), stagingMaxWaiting: 20 });
    expect(b.staged).toBe(false);
    expect(b.waiting()).toBe(30);
    expect(existsSync(join(dir, 'ram', 'o.sqlite'))).toBe(false);
  });
});

/**
 * What a killed append-worker (test/fixtures/append-worker.mjs) acknowledged before each kill -9:
 * appended numbers, removals it confirmed, and removals announced but not confirmed (the row may be
 * there or not). Shared by the kill -9 tests of the plain and the RAM-staged outbox.
 */
class KillLedger {
  readonly acknowledged = new Set<number>();
  readonly delivered = new Set<number>();
  readonly inFlight = new Set<number>();
  highest = 0;

  /** Runs the worker until it printed `appends` appended lines, kills it with SIGKILL, reads what it printed. */
  async runUntilKilled(args: string[], appends: number): Promise<void> {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    await until(() => out.split('\n').filter((l) => l.startsWith('appended')).length >= appends, 10_000, 'appends from the worker');
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));
    const lines = out.split('\n');
    if (!out.endsWith('\n')) lines.pop(); // a line cut by the kill was never fully printed
    for (const line of lines) {
      const [what, n] = line.split(' ');
      if (what === 'appended') {
        expect(Number(n)).toBeGreaterThan(this.highest); // never a number handed out before
        this.highest = Number(n);
        this.acknowledged.add(this.highest);
      } else if (what === 'delivering') this.inFlight.add(Number(n));
      else if (what === 'delivered') this.delivered.add(Number(n));
    }
  }

  /** Every acknowledged number not delivered is stored; at most one announced removal is unresolved. */
  expectKept(stored: Set<number>): void {
    for (const seq of this.acknowledged) {
      if (this.delivered.has(seq)) continue;
      if (this.inFlight.has(seq)) {
        if (!stored.has(seq)) this.delivered.add(seq); // the removal committed; the kill came before its line
        continue;
      }
      expect(stored.has(seq), `seq ${seq} lost`).toBe(true);
    }
    expect([...this.inFlight].filter((seq) => !this.delivered.has(seq)).length).toBeLessThanOrEqual(1);
  }
}
