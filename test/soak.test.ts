import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readState } from '@power-meter/meter-files';
import { startDevReceiver, type DevAnswerMode, type DevReceiver, type ReceivedEvent } from '@power-meter/dev-node';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKEND, outboxContents, start, until, type Proc } from './support/processes.js';
import { freePort } from './support/free-port.js';

/**
 * Soak (issue 11, "done when"): about a minute of a receiver that alternates between healthy, a
 * captive portal's HTML 200, a stopped applet, a busy VM, 500 and down, with kill -9 restarts of
 * the real backend in between. Every stored reading must arrive, in order, no eventID may name two
 * bodies, and the totals must never decrease. Each phase lasts until the backend has met it (a
 * condition with a generous deadline, not a fixed sleep), so a loaded machine only makes it slower.
 */
const TOKEN = 'soak-token-1c9e';
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Phase = DevAnswerMode | 'down' | 'kill -9';
const ROUND: Phase[] = [
  'normal',
  { status: 500 },
  'kill -9',
  'html',
  'normal',
  'instance-stopped',
  'down',
  'kill -9',
  'wait-timeout',
  'normal',
  'html',
  'kill -9',
  'down',
  'instance-stopped',
  'normal',
  { status: 500 },
  'wait-timeout',
  'kill -9',
  'normal',
];
/** Two rounds: about a minute on an idle two-core machine. */
const PHASES: Phase[] = [...ROUND, ...ROUND];

describe('soak: a hostile node and kill -9, for about a minute', () => {
  it('every reading arrives, in order, one body per eventID, totals never decrease', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'soak-')), 'data');
    const port = await freePort();
    const arrived: ReceivedEvent[] = [];
    let rx: DevReceiver | null = null;
    const up = async (): Promise<DevReceiver> => {
      const r = await startDevReceiver({ port, project: 'soak', token: TOKEN });
      const push = r.received.push.bind(r.received);
      r.received.push = (...e: ReceivedEvent[]) => {
        arrived.push(...e);
        return push(...e);
      };
      return r;
    };
    cleanups.push(async () => rx?.close());
    let meter: Proc | null = null;
    const startMeter = (): Proc => {
      const p = start(
        BACKEND,
        [
          '--sensor',
          'sim',
          '--sim-load',
          'demo',
          '--window',
          '1',
          '--hold-unsynced-clock',
          'false',
          '--data-dir',
          dir,
          '--publish-url',
          `http://127.0.0.1:${port}/srv-applet-mgr/v0/event/soak`,
        ],
        {
          W3BSTREAM_PUBLISHER_TOKEN: TOKEN,
          POWER_METER_RETRY_MAX_MS: '400',
        },
      );
      cleanups.push(() => p.stop('SIGKILL'));
      return p;
    };
    // Totals sampled all along: never lower than the sample before.
    const totals: Array<{ energyWh: number; rewards: number }> = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        if (existsSync(join(dir, 'state.json'))) {
          const s = await readState(dir);
          if (s.ok) totals.push({ energyWh: s.state.energyTotalWh, rewards: s.state.rewards.total });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    rx = await up();
    meter = startMeter();
    for (const phase of PHASES) {
      if (phase === 'kill -9') {
        meter.proc.kill('SIGKILL');
        await meter.exited;
        meter = startMeter();
        await meter.waitFor(/totals energy_wh=/, 20_000);
        continue;
      }
      if (phase === 'down') {
        await rx?.close();
        rx = null;
        const before = meter.output().split('ECONNREFUSED').length;
        await until(
          () => meter!.output().split('ECONNREFUSED').length > before || /reason="ECONNREFUSED"/.test(meter!.output()),
          20_000,
          'the backend meeting a receiver that is down',
        );
        // Down for two more readings (1 s windows): a few refused retries meanwhile (the cap is 400 ms).
        const waiting = async () => {
          const s = await readState(dir);
          return s.ok ? s.state.publishing.waiting : Number.NaN;
        };
        const stored = await waiting();
        await until(async () => (await waiting()) >= stored + 2, 20_000, 'two more readings stored while the receiver is down');
        continue;
      }
      if (rx === null) rx = await up();
      rx.setMode(phase);
      if (phase === 'normal') {
        const n = arrived.length;
        await until(() => arrived.length >= n + 3, 30_000, 'deliveries while healthy');
      } else {
        const n = rx.requests();
        await until(() => rx!.requests() >= n + 3, 30_000, `attempts against ${JSON.stringify(phase)}`);
      }
    }
    // Healthy until the backlog is gone, then a clean stop.
    await until(
      async () => {
        const s = await readState(dir);
        return s.ok && s.state.publishing.waiting === 0;
      },
      30_000,
      'backlog drained',
    );
    expect(await meter.stop('SIGTERM')).toBe(0);
    sampling = false;
    await sampler;

    const box = await outboxContents(dir);
    // First arrivals by eventID across receiver restarts (a restarted receiver forgets what it saw).
    const seen = new Set<string>();
    const firstArrivals = arrived.filter((e) => !seen.has(e.eventId) && Boolean(seen.add(e.eventId))).map((e) => e.seq!);
    // In order, each number once (a kill -9 may skip the rest of a reserved block, never reuse one).
    expect(firstArrivals).toEqual([...firstArrivals].sort((a, b) => a - b));
    expect(new Set(firstArrivals).size).toBe(firstArrivals.length);
    // Every stored reading arrived: the outbox counted each window it stored, none was dropped,
    // and at most the one stored as SIGTERM came is still waiting, newer than all that arrived.
    expect(box.dropped).toBe(0);
    expect(box.seqs.length).toBeLessThanOrEqual(1);
    expect(box.seqs.filter((seq) => seq < Math.max(...firstArrivals))).toEqual([]);
    expect(firstArrivals.length + box.seqs.length).toBe(box.windows);
    // One body per eventID, every body verified and signed by the eventID's device.
    const bodies = new Map<string, string>();
    for (const e of arrived) {
      if (bodies.has(e.eventId)) expect(e.body).toBe(bodies.get(e.eventId));
      bodies.set(e.eventId, e.body);
      expect(e.verified).toBe(true);
      expect(e.signerMatchesEventId).toBe(true);
    }
    // Totals never decreased, and they grew.
    expect(totals.length).toBeGreaterThan(20);
    for (let i = 1; i < totals.length; i++) {
      expect(totals[i]!.energyWh).toBeGreaterThanOrEqual(totals[i - 1]!.energyWh);
      expect(totals[i]!.rewards).toBeGreaterThanOrEqual(totals[i - 1]!.rewards);
    }
    expect(totals.at(-1)!.energyWh).toBeGreaterThan(totals[0]!.energyWh);
    // Each healthy phase waited for 3 new arrivals: the soak really delivered under way.
    expect(arrived.length).toBeGreaterThanOrEqual(3 * PHASES.filter((p) => p === 'normal').length);
  }, 150_000);
});
