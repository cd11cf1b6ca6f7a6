import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Outbox, OutboxLockedError, OutboxOptionError } from '../src/index.js';
import { PACKAGE_DIR, onCleanup, tempDir, until } from './helpers.js';

function open(file: string, opts: Parameters<typeof Outbox.open>[1] = {}): Outbox {
  const o = Outbox.open(file, opts);
  onCleanup(() => o.close());
  return o;
}

describe('durable outbox', () => {
  it('numbers messages 1, 2, 3 … in order and keeps body, creation time and attempts', () => {
    const o = open(join(tempDir(), 'outbox', 'o.sqlite'), { now: () => 5000 });
    expect(o.append('a').seq).toBe(1);
    expect(o.append('b', 1234).seq).toBe(2);
    o.noteAttempt(1);
    o.noteAttempt(1);
    expect(o.peek(10)).toEqual([
      { seq: 1, body: 'a', createdAtMs: 5000, createdMs: 5000, attempts: 2 },
      { seq: 2, body: 'b', createdAtMs: 1234, createdMs: 1234, attempts: 0 },
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
    expect(b.stats()).toEqual({ waiting: 1, dropped: 0, rejected: 1, delivered: 5, nextSeq: 8 });
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

  it('drops messages older than the age bound (by creation time), counted', () => {
    let now = 1_000_000;
    const o = open(join(tempDir(), 'o.sqlite'), { maxAgeMs: 60_000, now: () => now });
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

  it('walks the age bound from the head: a stale message queued behind a younger one waits its turn', () => {
    // Creation times are in queue order unless the wall clock steps back; then the bound stays
    // O(dropped) per append instead of scanning the whole backlog (no index on the hot path).
    let now = 1_000_000;
    const o = open(join(tempDir(), 'o.sqlite'), { maxAgeMs: 60_000, now: () => now });
    o.append('young');
    o.append('stale', now - 100_000);
    expect(o.peek(10).map((m) => m.body)).toEqual(['young', 'stale']);
    now += 61_000;
    expect(o.enforceBounds()).toBe(2);
  });

  it('refuses a second opener of the same file, with what to do', () => {
    const file = join(tempDir(), 'o.sqlite');
    open(file);
    expect(() => Outbox.open(file)).toThrow(OutboxLockedError);
    expect(() => Outbox.open(file)).toThrow(/another power-meter is already running/);
  });

  it('refuses nonsense bounds', () => {
    const file = join(tempDir(), 'o.sqlite');
    expect(() => Outbox.open(file, { maxCount: 0 })).toThrow(OutboxOptionError);
    expect(() => Outbox.open(file, { maxAgeMs: -1 })).toThrow(/maxAgeMs=-1/);
  });

  it("commits the caller's own tables in the same transaction, both ways", () => {
    const o = open(join(tempDir(), 'o.sqlite'));
    o.db.exec('CREATE TABLE totals (energy_wh REAL)');
    o.db.exec('INSERT INTO totals VALUES (0)');
    const energy = () => (o.db.prepare('SELECT energy_wh AS e FROM totals').get() as { e: number }).e;
    // 1. The callback form.
    expect(() => o.append('x', () => o.db.exec('INSERT INTO nope VALUES (1)'))).toThrow(/no such table/);
    expect(o.waiting()).toBe(0);
    expect(o.append('y', () => o.db.exec('UPDATE totals SET energy_wh = energy_wh + 1')).seq).toBe(1);
    // 2. Inside the caller's db.transaction(): all or nothing, removals included.
    const window = o.db.transaction((wh: number, fail: boolean) => {
      o.db.prepare('UPDATE totals SET energy_wh = energy_wh + ?').run(wh);
      const r = o.append(`w${wh}`, 42);
      o.markDelivered(1);
      if (fail) throw new Error('power cut in the middle');
      return r;
    });
    expect(() => window(5, true)).toThrow('power cut');
    expect([energy(), o.waiting(), o.peek(10).map((m) => m.seq)]).toEqual([1, 1, [1]]);
    expect(window(2, false).seq).toBe(2);
    expect([energy(), o.waiting(), o.peek(10).map((m) => [m.seq, m.createdAtMs])]).toEqual([3, 1, [[2, 42]]]);
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

  it('uses WAL with synchronous=FULL for appends, and restores FULL after a removal', () => {
    const o = open(join(tempDir(), 'o.sqlite'));
    expect(o.db.pragma('journal_mode', { simple: true })).toBe('wal');
    o.append('a');
    o.markDelivered(1);
    expect(o.db.pragma('synchronous', { simple: true })).toBe(2); // FULL
  });

  it('survives kill -9 at random moments: everything acknowledged is there, numbers never repeat', async () => {
    const file = join(tempDir(), 'o.sqlite');
    const worker = join(PACKAGE_DIR, 'test', 'fixtures', 'append-worker.mjs');
    const acknowledged = new Set<number>();
    const delivered = new Set<number>();
    let highest = 0;
    for (let round = 0; round < 4; round++) {
      const child = spawn(process.execPath, [worker, file], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const target = 30 + round * 40; // kill at different points of the append/remove cycle
      await until(() => out.split('\n').filter((l) => l.startsWith('appended')).length >= target, 'appends from the worker');
      child.kill('SIGKILL');
      await new Promise((res) => child.once('exit', res));
      const lines = out.split('\n');
      if (!out.endsWith('\n')) lines.pop(); // a line cut by the kill was never fully printed
      for (const line of lines) {
        const [what, n] = line.split(' ');
        if (what === 'appended') {
          expect(Number(n)).toBeGreaterThan(highest); // never a number handed out before
          highest = Number(n);
          acknowledged.add(highest);
        } else if (what === 'delivered') delivered.add(Number(n));
      }
      const check = new Database(file);
      expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
      const stored = new Set((check.prepare('SELECT seq FROM messages').all() as Array<{ seq: number }>).map((r) => r.seq));
      check.close();
      for (const seq of acknowledged) if (!delivered.has(seq)) expect(stored.has(seq), `seq ${seq} lost`).toBe(true);
      // At most the one step in flight at the kill can be ahead of what was printed.
      const o = Outbox.open(file);
      expect(o.stats().nextSeq).toBeGreaterThan(highest);
      expect(o.stats().nextSeq).toBeLessThanOrEqual(highest + 2);
      o.close();
    }
    expect(acknowledged.size).toBeGreaterThan(100);
  });
});
