import { exampleIoIdStatus, exampleRewardBalance, exampleState, type MeterState } from '@power-meter/meter-files';
import { describe, expect, it } from 'vitest';
import { areaPx, diffFrames, pixelWords } from '../src/diff/diff.js';
import {
  balanceStaleAfterMs,
  buildScreenModel,
  formatPowerW,
  refusalText,
  staleAfterMs,
  toneBounds,
  toneForPowerW,
} from '../src/screen/model.js';
import { BALANCE, ScreenRenderer, TONE_COLOURS } from '../src/screen/render.js';

const NOW = 1_764_000_000_000;

describe('screen model (pure)', () => {
  it('shows live power, the window average, rewards and publishing state', () => {
    const m = buildScreenModel(exampleState({ updatedAtMs: NOW, powerW: 4.02 }), null, NOW + 1000);
    expect(m).toMatchObject({
      mode: 'live',
      powerText: '4.02',
      powerTone: 'fair',
      avgText: 'avg 3.98 W',
      rateText: '4 tok/h',
      totalText: 'total 1.25',
      statusText: 'published ok',
      problemMarker: null,
    });
  });

  it('shows the on-chain balance beside the local estimate, with its age once it is old', () => {
    const balance = (over: Partial<NonNullable<MeterState['rewardBalance']>> = {}) =>
      exampleRewardBalance({ readAtMs: NOW - 5000, ...over });
    const at = (b: NonNullable<MeterState['rewardBalance']> | undefined, nowMs = NOW) =>
      buildScreenModel(exampleState({ updatedAtMs: nowMs, rewardBalance: b }), null, nowMs);
    expect(at(undefined)).toMatchObject({ balanceText: null, totalText: 'total 1.25' });
    expect(at(balance())).toMatchObject({ balanceText: 'chain 40.00', balanceTone: 'neutral', totalText: 'total 1.25' });
    expect(at(balance({ tokens: '1234.5678' }))).toMatchObject({ balanceText: 'chain 1235' });
    expect(at(balance({ tokens: '123456789.5' }))).toMatchObject({ balanceText: 'chain 123.5M' });
    // Three intervals (and at least 30 s) without a fresh read: the age is shown, in amber.
    expect(balanceStaleAfterMs(60_000)).toBe(180_000);
    expect(balanceStaleAfterMs(2000)).toBe(30_000);
    expect(at(balance({ readAtMs: NOW - 179_000 })).balanceTone).toBe('neutral');
    expect(at(balance({ readAtMs: NOW - 300_000, error: 'RPC unreachable' }))).toMatchObject({
      balanceText: 'chain 40.00 5min',
      balanceTone: 'fair',
    });
    // Never read yet: waiting, or failing.
    expect(at(balance({ raw: null, tokens: null, readAtMs: null }))).toMatchObject({ balanceText: 'chain …', balanceTone: 'fair' });
    expect(at(balance({ raw: null, tokens: null, readAtMs: null, error: 'RPC unreachable' }))).toMatchObject({ balanceText: 'chain ?' });
  });

  it('says when the device has no ioID (the node refuses its readings) before the publishing state', () => {
    const failing = {
      state: 'failing' as const,
      reason: 'device not approved for project 42',
      waiting: 7,
      dropped: 0,
      lastSuccessMs: null,
      held: 0,
    };
    const at = (ioid: MeterState['ioid'], publishing: MeterState['publishing'] = failing) =>
      buildScreenModel(exampleState({ updatedAtMs: NOW, ioid, publishing }), null, NOW + 1000);
    expect(at(exampleIoIdStatus({ registered: false, ioId: null, owner: null, projectId: null }))).toMatchObject({
      statusText: 'no ioID: 7 waiting',
      statusTone: 'alert',
    });
    const idle = { state: 'ok' as const, reason: null, waiting: 0, dropped: 0, lastSuccessMs: NOW, held: 0 };
    expect(at(exampleIoIdStatus({ registered: false }), idle)).toMatchObject({ statusText: 'ioID: not registered', statusTone: 'fair' });
    // Registered, or not read yet: the publishing state speaks.
    expect(at(exampleIoIdStatus(), idle)).toMatchObject({ statusText: 'published ok', statusTone: 'good' });
    expect(at(exampleIoIdStatus({ registered: null, readAtMs: null }))).toMatchObject({ statusTone: 'alert' });
    expect(at(exampleIoIdStatus({ registered: null, readAtMs: null })).statusText).toBe('failing: not approved');
    expect(at(undefined, idle).statusText).toBe('published ok');
  });

  it('says when the applet refuses the readings, with the count and the reason', () => {
    const reason =
      'applet: abort: device 0x8a1f5e2b4c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f is not registered at applet/energy-meter.ts:181:24 (wasm trap: unreachable)';
    expect(refusalText(reason)).toBe('device is not registered');
    const m = buildScreenModel(
      exampleState({ updatedAtMs: NOW, publishing: { ...exampleState().publishing, rejected: 4, lastRejection: reason } }),
      null,
      NOW,
    );
    // In words that fit the status bar (the count stays in state.json, MQTT and the metrics).
    expect(m).toMatchObject({ statusText: 'refused: not registered', statusTone: 'alert' });
    // Once a reading is accepted again the status is back to normal; the count stays in state.json.
    const ok = buildScreenModel(
      exampleState({ updatedAtMs: NOW, publishing: { ...exampleState().publishing, rejected: 4, lastRejection: null } }),
      null,
      NOW,
    );
    expect(ok.statusText).toBe('published ok');
  });

  it('reads lower consumption as better', () => {
    expect(toneForPowerW(2.9)).toBe('good');
    expect(toneForPowerW(4.9)).toBe('fair');
    expect(toneForPowerW(5)).toBe('poor');
    expect(toneForPowerW(null)).toBe('neutral');
    expect(formatPowerW(12.345)).toBe('12.3');
    expect(formatPowerW(0)).toBe('0.00');
  });

  it('colours follow the reward tiers configured in state.json, not fixed 3 W / 5 W', () => {
    // Tiers: < 2 W pays 10/h, < 6 W pays 5/h, < 8 W pays nothing (an explicit zero row), else 0.
    const tiers = [
      { belowW: 2, tokensPerH: 10 },
      { belowW: 6, tokensPerH: 5 },
      { belowW: 8, tokensPerH: 0 },
    ];
    expect(toneBounds(tiers)).toEqual({ goodBelowW: 2, fairBelowW: 6 });
    const at = (powerW: number, avgPowerW: number) =>
      buildScreenModel(
        exampleState({
          updatedAtMs: NOW,
          powerW,
          lastWindow: { ...exampleState().lastWindow!, avgPowerW },
          recentAvgPowerW: [1.9, 2.5, 5.9, 6.5],
          rewards: { tokensPerH: 5, total: 1, tiers },
        }),
        null,
        NOW,
      );
    // 2.5 W is green with the default table and amber here; 5.5 W red by default, amber here.
    expect(at(2.5, 5.5)).toMatchObject({ powerTone: 'fair', rateTone: 'fair', sparkTones: ['good', 'fair', 'fair', 'poor'] });
    expect(at(1.5, 7)).toMatchObject({ powerTone: 'good', rateTone: 'poor' });
    // One tier only: good below it, poor above, no amber.
    expect(toneBounds([{ belowW: 4, tokensPerH: 10 }])).toEqual({ goodBelowW: 4, fairBelowW: 4 });
    // A state.json without tiers (written before the field existed) uses the firmware's table.
    const { tiers: _none, ...rewards } = exampleState().rewards;
    const old = buildScreenModel(
      { ...exampleState({ updatedAtMs: NOW, powerW: 2.9, recentAvgPowerW: [2.9, 4.9, 5] }), rewards },
      null,
      NOW,
    );
    expect(old).toMatchObject({ powerTone: 'good', sparkTones: ['good', 'fair', 'poor'] });
  });

  it('says "no data" before the backend ever wrote, and "stale" when it stopped', () => {
    expect(buildScreenModel(null, 'missing', NOW)).toMatchObject({
      mode: 'no-data',
      powerText: '--',
      statusText: 'no data yet',
      problemMarker: null,
    });
    const s = exampleState({ updatedAtMs: NOW });
    expect(staleAfterMs(s)).toBe(15_000);
    expect(buildScreenModel(s, null, NOW + 14_000).mode).toBe('live');
    const stale = buildScreenModel(s, null, NOW + 16_000);
    expect(stale).toMatchObject({ mode: 'stale', powerText: '--', statusTone: 'alert' });
    expect(stale.statusText).toBe('stale: no update for 16s');
    expect(staleAfterMs(exampleState({ windowS: 60 }))).toBe(180_000);
  });

  it('keeps the last good data with a marker when the file goes bad', () => {
    const m = buildScreenModel(exampleState({ updatedAtMs: NOW }), 'garbage', NOW);
    expect(m.powerText).toBe('4.02');
    expect(m.problemMarker).toBe('bad file');
    expect(buildScreenModel(exampleState({ updatedAtMs: NOW }), 'schema', NOW).problemMarker).toBe('new format');
  });

  it('shows waiting readings, failures with the reason, disabled publishing, held readings and sensor faults', () => {
    const base = exampleState({ updatedAtMs: NOW });
    const pub = (p: Partial<typeof base.publishing>) =>
      buildScreenModel({ ...base, publishing: { ...base.publishing, ...p } }, null, NOW).statusText;
    expect(pub({ state: 'retrying', waiting: 12 })).toBe('retrying: 12 waiting');
    expect(pub({ state: 'retrying', reason: 'instance not running', waiting: 12 })).toBe('retrying: applet stopped');
    expect(pub({ state: 'failing', reason: 'InvalidToken' })).toBe('failing: bad token');
    expect(pub({ state: 'failing', reason: 'SomeNewNodeKey' })).toBe('failing: SomeNewNodeKey'); // as it is; the renderer cuts it to fit
    expect(pub({ state: 'disabled' })).toBe('publishing off');
    expect(pub({ held: 3 })).toBe('clock sync: 3 held');
    // W3bstream 2: a device the node does not approve, and the followed task's state.
    expect(pub({ state: 'failing', reason: 'device not approved for project 42', waiting: 7 })).toBe('failing: not approved');
    expect(pub({ state: 'failing', reason: 'unknown project 42 / version 0.1' })).toBe('failing: unknown project');
    const task = (state: string, error: string | null = null) => ({
      id: `0x${'ab'.repeat(32)}`,
      state,
      stateAtMs: NOW,
      txHash: state === 'settled' ? `0x${'cd'.repeat(32)}` : null,
      error,
      checkedAtMs: NOW,
      failedCount: state === 'failed' ? 1 : 0,
    });
    expect(pub({ task: task('settled') })).toBe('published, settled');
    expect(pub({ task: task('assigned') })).toBe('published, assigned');
    const failed = buildScreenModel(
      { ...base, publishing: { ...base.publishing, task: task('failed', 'proof rejected by verifier') } },
      null,
      NOW,
    );
    expect(failed).toMatchObject({ statusText: 'task failed: proof rejec…', statusTone: 'alert' });
    const fault = buildScreenModel(
      { ...base, sensor: { state: 'fault', reason: 'no answer at 0x40', busV: null, currentA: null } },
      null,
      NOW,
    );
    expect(fault).toMatchObject({ powerText: '--', statusText: 'sensor: no answer at 0x40', statusTone: 'alert' });
  });

  it('says what is wrong with the key in the token, while power stays live (measuring goes on)', () => {
    const base = exampleState({ updatedAtMs: NOW });
    const signing = (g: Partial<NonNullable<MeterState['signing']>>) =>
      buildScreenModel(
        { ...base, signing: { key: 'pkcs11', state: 'fault', reason: null, unsigned: 0, pinAttempts: 0, sinceMs: NOW, ...g } },
        null,
        NOW,
      );
    expect(signing({ reason: 'wrong PIN (not retried)', unsigned: 12, pinAttempts: 1 })).toMatchObject({
      powerText: '4.02',
      statusText: 'key: wrong PIN, 12 kept',
      statusTone: 'alert',
    });
    expect(signing({ reason: 'token gone or failing', unsigned: 3 }).statusText).toBe('key: offline, 3 kept');
    expect(signing({ reason: 'token not answering' }).statusText).toBe('key: no answer');
    expect(signing({ reason: 'token gone or failing', unsigned: 17_280 }).statusText).toBe('key: offline, 17k kept');
    expect(signing({ reason: 'another key in token', unsigned: 1 }).statusText).toBe('key: other key, 1 kept');
    // A key that signs again leaves the status bar to publishing; a sensor fault is said first.
    expect(signing({ state: 'ok' }).statusText).toBe(buildScreenModel(base, null, NOW).statusText);
    expect(
      buildScreenModel(
        {
          ...base,
          sensor: { state: 'fault', reason: 'no answer at 0x40', busV: null, currentA: null },
          signing: { key: 'pkcs11', state: 'fault', reason: 'PIN locked', unsigned: 1, pinAttempts: 0, sinceMs: NOW },
        },
        null,
        NOW,
      ).statusText,
    ).toBe('sensor: no answer at 0x40');
  });
});

function hex(c: string): [number, number, number] {
  return [parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16)];
}

/** Pixels in a region close to a colour (anti-aliasing tolerant). */
function countNear(
  frame: { width: number; rgba: Uint8ClampedArray },
  x0: number,
  y0: number,
  w: number,
  h: number,
  colour: string,
): number {
  const [r, g, b] = hex(colour);
  let n = 0;
  for (let y = y0; y < y0 + h; y++)
    for (let x = x0; x < x0 + w; x++) {
      const i = (y * frame.width + x) * 4;
      if (Math.abs(frame.rgba[i]! - r) < 40 && Math.abs(frame.rgba[i + 1]! - g) < 40 && Math.abs(frame.rgba[i + 2]! - b) < 40) n++;
    }
  return n;
}

/** Height of the rows that contain a colour within a region (the drawn figure's height). */
function inkHeight(
  frame: { width: number; rgba: Uint8ClampedArray },
  x0: number,
  y0: number,
  w: number,
  h: number,
  colour: string,
): number {
  let top = -1;
  let bottom = -1;
  for (let y = y0; y < y0 + h; y++) {
    if (countNear(frame, x0, y, w, 1, colour) === 0) continue;
    if (top < 0) top = y;
    bottom = y;
  }
  return top < 0 ? 0 : bottom - top + 1;
}

describe('rendering (regions and colours)', () => {
  const renderer = new ScreenRenderer('landscape');

  it('draws the main figure in the tone colour, at least 24 px tall, in the top half', () => {
    const good = renderer.render(buildScreenModel(exampleState({ updatedAtMs: NOW, powerW: 2.5 }), null, NOW));
    expect(good.width).toBe(160);
    expect(countNear(good, 0, 14, 160, 38, TONE_COLOURS.good)).toBeGreaterThan(150);
    expect(countNear(good, 0, 14, 160, 38, TONE_COLOURS.poor)).toBe(0);
    expect(inkHeight(good, 0, 14, 110, 38, TONE_COLOURS.good)).toBeGreaterThanOrEqual(24);
    const poor = renderer.render(buildScreenModel(exampleState({ updatedAtMs: NOW, powerW: 11.9 }), null, NOW));
    expect(countNear(poor, 0, 14, 160, 38, TONE_COLOURS.poor)).toBeGreaterThan(150);
  });

  it('shows the problem marker top right and an alert status bar when stale', () => {
    const f = renderer.render(buildScreenModel(exampleState({ updatedAtMs: NOW }), 'garbage', NOW + 60_000));
    expect(countNear(f, 100, 0, 60, 13, TONE_COLOURS.alert)).toBeGreaterThan(100);
    expect(countNear(f, 0, 112, 160, 16, TONE_COLOURS.alert)).toBeGreaterThan(1000);
  });

  it('draws the chain balance right of the average in its own colour, amber when old, never over the average', () => {
    const rewardBalance = exampleRewardBalance({ raw: '1234500000000000000000', tokens: '1234.5', readAtMs: NOW });
    const avgLine = { x: 80, y: 52, w: 80, h: 14 };
    const count = (f: ReturnType<typeof renderer.render>, colour: string, r = avgLine) => countNear(f, r.x, r.y, r.w, r.h, colour);
    const without = renderer.render(buildScreenModel(exampleState({ updatedAtMs: NOW }), null, NOW));
    expect(count(without, BALANCE)).toBe(0);
    const fresh = renderer.render(buildScreenModel(exampleState({ updatedAtMs: NOW, rewardBalance }), null, NOW));
    expect(count(fresh, BALANCE)).toBeGreaterThan(40);
    // The average ("avg 3.98 W", white) is still drawn whole at the left.
    const white = (f: ReturnType<typeof renderer.render>) => countNear(f, 0, 52, 80, 14, '#ffffff');
    expect(white(fresh)).toBe(white(without));
    const later = NOW + 600_000;
    const old = renderer.render(buildScreenModel(exampleState({ updatedAtMs: later, rewardBalance }), null, later));
    expect(count(old, BALANCE)).toBe(0);
    expect(count(old, TONE_COLOURS.fair)).toBeGreaterThan(40);
    // A wide average ("avg 12.35 W") squeezes the balance instead of overlapping it.
    const wide = exampleState({ updatedAtMs: NOW, rewardBalance, lastWindow: { ...exampleState().lastWindow!, avgPowerW: 12.35 } });
    const wideNo = renderer.render(buildScreenModel({ ...wide, rewardBalance: undefined }, null, NOW));
    const wideYes = renderer.render(buildScreenModel(wide, null, NOW));
    expect(countNear(wideYes, 0, 52, 75, 14, '#ffffff')).toBe(countNear(wideNo, 0, 52, 75, 14, '#ffffff'));
    const portrait = new ScreenRenderer('portrait').render(buildScreenModel(exampleState({ updatedAtMs: NOW, rewardBalance }), null, NOW));
    expect(countNear(portrait, 0, 0, 128, 160, BALANCE)).toBeGreaterThan(40);
  });

  it('names the chip that measures top right, dim, and gives the place to the problem marker', () => {
    const sensor = (chip?: string, simulated?: boolean) => ({ ...exampleState().sensor, chip, simulated });
    const at = (over: Partial<MeterState>, problem: 'garbage' | null = null) =>
      buildScreenModel(exampleState({ updatedAtMs: NOW, ...over }), problem, NOW);
    expect(at({}).chipText).toBeNull(); // a backend from before the field
    expect(at({ sensor: sensor('INA228', false) }).chipText).toBe('INA228');
    expect(at({ sensor: sensor('INA219', true) }).chipText).toBe('INA219 sim');
    const dim = '#8a939c';
    const without = renderer.render(at({}));
    const withChip = renderer.render(at({ sensor: sensor('INA228', false) }));
    expect(countNear(without, 110, 0, 50, 13, dim)).toBe(0);
    expect(countNear(withChip, 110, 0, 50, 13, dim)).toBeGreaterThan(15);
    // The label on the left is untouched.
    expect(countNear(withChip, 0, 0, 80, 13, dim)).toBe(countNear(without, 0, 0, 80, 13, dim));
    const marked = renderer.render(at({ sensor: sensor('INA228', false) }, 'garbage'));
    expect(countNear(marked, 110, 0, 50, 13, dim)).toBe(0);
  });

  it('renders portrait 128x160 too', () => {
    const f = new ScreenRenderer('portrait').render(buildScreenModel(exampleState({ updatedAtMs: NOW }), null, NOW));
    expect([f.width, f.height]).toEqual([128, 160]);
    expect(f.rgba.length).toBe(128 * 160 * 4);
  });
});

describe('frame diff', () => {
  const W = 160;
  const H = 128;
  const blank = () => new Uint32Array(W * H);

  it('reports the whole frame when the panel content is unknown, nothing when equal', () => {
    expect(diffFrames(null, blank(), W, H)).toEqual([{ x: 0, y: 0, w: W, h: H }]);
    expect(diffFrames(blank(), blank(), W, H)).toEqual([]);
  });

  it('yields exactly the changed region, tight to the changed pixels', () => {
    const a = blank();
    const b = blank();
    for (let y = 20; y < 30; y++) for (let x = 40; x < 70; x++) b[y * W + x] = 0xffffffff;
    const rects = diffFrames(a, b, W, H);
    expect(areaPx(rects)).toBe(30 * 10);
    const minX = Math.min(...rects.map((r) => r.x));
    const maxX = Math.max(...rects.map((r) => r.x + r.w));
    expect([minX, maxX]).toEqual([40, 70]);
    expect(rects.length).toBeLessThanOrEqual(2);
  });

  it('covers every changed pixel and nothing far from them, for random sparse changes', () => {
    const a = blank();
    const b = blank();
    let seed = 1;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const changed: number[] = [];
    for (let i = 0; i < 50; i++) {
      const p = Math.floor(rnd() * W * H);
      b[p] = 0x12345678;
      changed.push(p);
    }
    const rects = diffFrames(a, b, W, H);
    for (const p of changed) {
      const x = p % W;
      const y = Math.floor(p / W);
      expect(rects.some((r) => x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h)).toBe(true);
    }
    // Rectangles never overlap.
    for (let i = 0; i < rects.length; i++)
      for (let j = i + 1; j < rects.length; j++) {
        const r = rects[i]!;
        const s = rects[j]!;
        expect(r.x < s.x + s.w && s.x < r.x + r.w && r.y < s.y + s.h && s.y < r.y + r.h).toBe(false);
      }
  });

  it('a change of the live power figure rewrites far less than a full frame', () => {
    const f1 = renderer().render(buildScreenModel(exampleState({ updatedAtMs: NOW, powerW: 4.02 }), null, NOW));
    const w1 = Uint32Array.from(pixelWords(f1.rgba));
    const f2 = renderer().render(buildScreenModel(exampleState({ updatedAtMs: NOW, powerW: 4.07 }), null, NOW));
    const rects = diffFrames(w1, pixelWords(f2.rgba), W, H);
    expect(rects.length).toBeGreaterThan(0);
    expect(areaPx(rects) / (W * H)).toBeLessThan(0.25);
  });
});

function renderer(): ScreenRenderer {
  return new ScreenRenderer('landscape');
}
