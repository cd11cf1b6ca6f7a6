import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readState } from '@power-meter/meter-files';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from './support/free-port.js';
import { outboxContents, until, type Proc } from './support/processes.js';
import { GREEN, MAIN_FIGURE, RED, TOKEN, backendProcess, displayProcess, pngCount, receiverProcess, records } from './support/system.js';

const procs: Proc[] = [];
const track = (p: Proc): Proc => {
  procs.push(p);
  return p;
};
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
});

function workdir() {
  const dir = mkdtempSync(join(tmpdir(), 'e2e-'));
  return { dir, data: join(dir, 'data'), record: join(dir, 'received.jsonl'), png: join(dir, 'screen.png') };
}

describe('the whole system, as real processes', () => {
  it('readings arrive, verify and match the simulated load; the screen follows the load', async () => {
    const w = workdir();
    const port = await freePort();
    const receiver = track(receiverProcess(port, w.record));
    await receiver.waitFor(/listening/);
    const display = track(displayProcess(w.data, w.png));
    const meter = track(backendProcess(w.data, port, '2'));
    await until(() => records(w.record).length >= 3, 20_000, 'readings at 2 W');
    for (const r of records(w.record)) {
      expect(r.verified).toBe(true);
      expect(Math.abs(r.sensorReading - 2) / 2).toBeLessThan(0.01);
    }
    await until(async () => (await pngCount(w.png, MAIN_FIGURE, GREEN)) > 150, 10_000, 'green figure for 2 W');
    const lowScreen = readFileSync(w.png);

    expect(await meter.stop('SIGTERM')).toBe(0);
    const heavy = track(backendProcess(w.data, port, '12'));
    await until(() => records(w.record).some((r) => Math.abs(r.sensorReading - 12) < 0.12), 20_000, 'a 12 W reading');
    await until(async () => (await pngCount(w.png, MAIN_FIGURE, RED)) > 150, 10_000, 'red figure for 12 W');
    expect(readFileSync(w.png).equals(lowScreen)).toBe(false);
    expect(await pngCount(w.png, MAIN_FIGURE, GREEN)).toBe(0);
    const seqs = records(w.record).map((r) => r.seq);
    expect(new Set(seqs).size).toBe(seqs.length); // the restart reused no sequence number
    for (const p of [heavy, display, receiver]) expect(p.output()).not.toContain(TOKEN);
  });

  it('kill -9 of the backend: every stored sequence number arrives, none is missing or reused', async () => {
    const w = workdir();
    const port = await freePort();
    track(receiverProcess(port, w.record));
    const first = track(backendProcess(w.data, port, 'pwm:12:0.25:1000'));
    await until(() => records(w.record).length >= 3, 20_000, 'first readings');
    first.proc.kill('SIGKILL');
    await first.exited;
    const stored = await readState(w.data);
    const second = track(backendProcess(w.data, port, 'pwm:12:0.25:1000'));
    await until(() => records(w.record).length >= 8, 20_000, 'readings after the restart');
    await until(
      async () => {
        const s = await readState(w.data);
        return s.ok && s.state.publishing.waiting === 0;
      },
      20_000,
      'the outbox drained',
    );
    await second.stop('SIGTERM');
    const recs = records(w.record);
    const unique = [...new Set(recs.map((r) => r.seq))];
    // In order, never reused; the restart after kill -9 skips the rest of the block of numbers the
    // sequence floor had reserved, so the numbers after it need not follow on.
    expect(unique).toEqual([...unique].sort((a, b) => a - b));
    // Every stored number arrived: the outbox drained (at most the reading stored as SIGTERM came
    // is left, newer than all that arrived) and every window it counted is accounted for.
    const box = await outboxContents(w.data);
    expect(box.seqs.length).toBeLessThanOrEqual(1);
    expect(box.seqs.filter((seq) => seq < Math.max(...unique))).toEqual([]);
    expect(unique.length + box.seqs.length).toBe(box.windows);
    expect(box.dropped).toBe(0);
    const byEvent = new Map<string, string>();
    for (const r of recs) {
      if (byEvent.has(r.eventId)) expect(r.body).toBe(byEvent.get(r.eventId)); // a duplicate is the same event
      byEvent.set(r.eventId, r.body);
    }
    for (const r of recs) expect(Math.abs(r.sensorReading - 3) / 3).toBeLessThan(0.01); // 12 W at 25 % duty
    expect(stored.ok).toBe(true);
  });

  it('the receiver down while 15 readings pile up: the backlog arrives afterwards, in order', async () => {
    const w = workdir();
    const port = await freePort();
    const meter = track(backendProcess(w.data, port, '4'));
    await meter.waitFor(/publish state=retrying reason="ECONNREFUSED"/, 15_000);
    // 1 s windows: about 15 s of outage, however long the machine takes to get there.
    await until(
      async () => {
        const s = await readState(w.data);
        return s.ok && s.state.publishing.waiting >= 15;
      },
      45_000,
      '15 readings waiting while the receiver is down',
    );
    track(receiverProcess(port, w.record));
    await until(
      async () => {
        const s = await readState(w.data);
        return s.ok && s.state.publishing.waiting === 0 && records(w.record).length >= 20;
      },
      20_000,
      'backlog delivered',
    );
    const seqs = records(w.record).map((r) => r.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(records(w.record).every((r) => r.verified)).toBe(true);
  }, 90_000);

  it('the display started before the backend shows "no data", then real data', async () => {
    const w = workdir();
    const display = track(displayProcess(w.data, w.png));
    await display.waitFor(/screen mode=no-data/);
    await until(
      async () => {
        try {
          return readFileSync(w.png).length > 0;
        } catch {
          return false;
        }
      },
      10_000,
      'first screen',
    );
    expect(await pngCount(w.png, MAIN_FIGURE, GREEN)).toBe(0);
    const port = await freePort();
    track(backendProcess(w.data, port, '1.5'));
    await display.waitFor(/screen mode=live/, 15_000);
    await until(async () => (await pngCount(w.png, MAIN_FIGURE, GREEN)) > 150, 10_000, 'live figure');
  });
});
