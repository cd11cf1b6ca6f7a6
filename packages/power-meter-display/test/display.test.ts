import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exampleState, writeFileAtomic } from '@power-meter/meter-files';
import { openModule, type St7735Module } from '@power-meter/st7735';
import { afterEach, describe, expect, it } from 'vitest';
import { DISPLAY, start, until, type Proc } from '../../../test/support/processes.js';
import { DisplayController, type FramePanel } from '../src/controller.js';
import { ScreenRenderer, TONE_COLOURS } from '../src/screen/render.js';

const NOW = 1_764_000_000_000;

/** `clock`: the wall and monotonic clocks the controller reads (default: wall fixed at NOW + 1 s). */
async function rig(clock?: { wallMs: number; monoMs: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'disp-'));
  const st7735: St7735Module = await openModule({ kind: 'emulated', variant: 'greentab', rotation: 90 });
  const frame: FramePanel = {
    width: st7735.device.width,
    height: st7735.device.height,
    writeRegion: (x, y, w, h, p) => st7735.device.writeRegion(x, y, w, h, p),
    close: () => st7735.close(),
  };
  const controller = new DisplayController({
    dataDir: dir,
    renderer: new ScreenRenderer('landscape'),
    panel: frame,
    nowMs: () => clock?.wallMs ?? NOW + 1000,
    monoMs: clock ? () => clock.monoMs : undefined,
  });
  const glassCount = (x: number, y: number, w: number, h: number, colour: string) => {
    const v = st7735.emulator!.view(90);
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
    let n = 0;
    for (let yy = y; yy < y + h; yy++)
      for (let xx = x; xx < x + w; xx++) {
        const i = (yy * 160 + xx) * 4;
        if (Math.abs(v.rgba[i]! - r!) < 40 && Math.abs(v.rgba[i + 1]! - g!) < 40 && Math.abs(v.rgba[i + 2]! - b!) < 40) n++;
      }
    return n;
  };
  return { dir, st7735, controller, glassCount };
}

describe('display controller: files -> screen -> changed regions -> panel', () => {
  it('shows "no data" before the backend ever wrote, then live data on the glass', async () => {
    const { dir, controller, glassCount } = await rig();
    expect((await controller.refresh()).model.mode).toBe('no-data');
    await writeFileAtomic(dir, 'state.json', JSON.stringify(exampleState({ updatedAtMs: NOW, powerW: 2.2 })));
    const r = await controller.refresh();
    expect(r.model).toMatchObject({ mode: 'live', powerText: '2.20' });
    expect(glassCount(0, 14, 160, 38, TONE_COLOURS.good)).toBeGreaterThan(150);
  });

  it('colours the glass by the reward tiers the backend wrote into state.json', async () => {
    const { dir, controller, glassCount } = await rig();
    const state = (tiers?: Array<{ belowW: number; tokensPerH: number }>) => {
      const s = exampleState({ updatedAtMs: NOW, powerW: 2.2 });
      return JSON.stringify({ ...s, rewards: { ...s.rewards, tiers } });
    };
    // Default table (and a state.json without tiers): 2.2 W is below 3 W, green.
    await writeFileAtomic(dir, 'state.json', state(undefined));
    await controller.refresh();
    expect(glassCount(0, 14, 160, 38, TONE_COLOURS.good)).toBeGreaterThan(150);
    // Configured: the best rate only below 2 W, a lower one below 6 W: 2.2 W is amber.
    await writeFileAtomic(
      dir,
      'state.json',
      state([
        { belowW: 2, tokensPerH: 10 },
        { belowW: 6, tokensPerH: 5 },
      ]),
    );
    await controller.refresh();
    expect(glassCount(0, 14, 160, 38, TONE_COLOURS.fair)).toBeGreaterThan(150);
    expect(glassCount(0, 14, 160, 38, TONE_COLOURS.good)).toBe(0);
    // Configured: nothing pays above 2 W: red.
    await writeFileAtomic(dir, 'state.json', state([{ belowW: 2, tokensPerH: 10 }]));
    await controller.refresh();
    expect(glassCount(0, 14, 160, 38, TONE_COLOURS.poor)).toBeGreaterThan(150);
  });

  it('keeps the last good screen with a marker for every kind of bad state.json, and never throws', async () => {
    const { dir, controller } = await rig();
    await writeFileAtomic(dir, 'state.json', JSON.stringify(exampleState({ updatedAtMs: NOW, powerW: 4.5 })));
    await controller.refresh();
    const good = JSON.stringify(exampleState({ updatedAtMs: NOW, powerW: 4.5 }));
    const bad: Array<[string, string]> = [
      ['', 'empty file'],
      [good.slice(0, 40), 'bad file'],
      ['\u0000\u0001garbage', 'bad file'],
      [JSON.stringify({ ...JSON.parse(good), schema: 99 }), 'new format'],
    ];
    for (const [content, marker] of bad) {
      writeFileSync(join(dir, 'state.json'), content);
      const r = await controller.refresh();
      expect(r.model.powerText).toBe('4.50');
      expect(r.model.problemMarker).toBe(marker);
    }
    const { rmSync } = await import('node:fs');
    rmSync(join(dir, 'state.json'));
    expect((await controller.refresh()).model).toMatchObject({ powerText: '4.50', problemMarker: 'no file' });
  });

  it('sends only the changed regions: a new power figure is far less than a full frame', async () => {
    const { dir, controller } = await rig();
    await writeFileAtomic(dir, 'state.json', JSON.stringify(exampleState({ updatedAtMs: NOW, powerW: 4.02 })));
    const first = await controller.refresh();
    expect(first.bytesSent).toBe(160 * 128 * 2);
    await writeFileAtomic(dir, 'state.json', JSON.stringify(exampleState({ updatedAtMs: NOW, powerW: 4.07 })));
    const second = await controller.refresh();
    expect(second.bytesSent).toBeGreaterThan(0);
    expect(second.bytesSent / first.bytesSent).toBeLessThan(0.25);
    const third = await controller.refresh();
    expect(third.bytesSent).toBe(0);
  });
});

const procs: Proc[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
});

describe('power-meter-display program', () => {
  it('starts before the backend ("no data"), follows state.json, and exits 0 on SIGTERM', async () => {
    const base = mkdtempSync(join(tmpdir(), 'disp-'));
    const png = join(base, 'screen.png');
    const p = start(DISPLAY, ['--panel', 'png', '--png', png, '--data-dir', join(base, 'data')]);
    procs.push(p);
    await p.waitFor(/screen mode=no-data/);
    await until(
      () => {
        try {
          return readFileSync(png).length > 0;
        } catch {
          return false;
        }
      },
      10_000,
      'first png',
    );
    const noData = readFileSync(png);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(base, 'data'));
    await writeFileAtomic(join(base, 'data'), 'state.json', JSON.stringify(exampleState({ updatedAtMs: Date.now(), powerW: 7.5 })));
    await p.waitFor(/screen mode=live/);
    await until(() => !readFileSync(png).equals(noData), 5000, 'png to change');
    expect(await p.stop('SIGTERM')).toBe(0);
  });

  it('--panel emulated runs the same driver on the emulated module and saves nothing (the memory benchmark)', async () => {
    const base = mkdtempSync(join(tmpdir(), 'disp-'));
    const png = join(base, 'screen.png');
    const data = join(base, 'data');
    const { mkdirSync, existsSync, readdirSync } = await import('node:fs');
    mkdirSync(data);
    const p = start(DISPLAY, ['--panel', 'emulated', '--png', png, '--data-dir', data]);
    procs.push(p);
    await p.waitFor(/screen mode=no-data/);
    expect(p.output()).toMatch(/panel=emulated data_dir=/);
    await writeFileAtomic(data, 'state.json', JSON.stringify(exampleState({ updatedAtMs: Date.now(), powerW: 7.5 })));
    await p.waitFor(/screen mode=live/);
    expect(await p.stop('SIGTERM')).toBe(0);
    expect(existsSync(png)).toBe(false);
    expect(readdirSync(data)).toEqual(['state.json']);
  });

  it('exits 2 naming a bad setting; --help lists options with defaults and environment variables', async () => {
    const badBgr = start(DISPLAY, ['--bgr', 'maybe']);
    expect(await badBgr.exited).toBe(2);
    expect(badBgr.output()).toMatch(/--bgr = "maybe".*true or false/);
    const bad = start(DISPLAY, ['--rotation', '45']);
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toMatch(/invalid setting --rotation = "45".*0, 90, 180 or 270/);
    const env = start(DISPLAY, [], { POWER_METER_DISPLAY_PANEL: 'hdmi' });
    expect(await env.exited).toBe(2);
    expect(env.output()).toMatch(/POWER_METER_DISPLAY_PANEL = "hdmi"/);
    const help = start(DISPLAY, ['--help']);
    await help.exited;
    for (const f of [
      '--data-dir',
      '--panel',
      '--png',
      '--spi-bus',
      '--spi-device',
      '--dc-pin',
      '--reset-pin',
      '--speed-hz',
      '--rotation',
      '--variant',
      '--gpio',
      '--col-offset',
      '--row-offset',
      '--bgr',
      '--invert',
    ])
      expect(help.output()).toContain(f);
    expect(help.output()).toMatch(/POWER_METER_DISPLAY_DC_PIN/);
  });

  it('without the DejaVu fonts it stops with a message naming the Debian package', async () => {
    const p = start(DISPLAY, [
      '--panel',
      'png',
      '--png',
      join(mkdtempSync(join(tmpdir(), 'disp-')), 's.png'),
      '--font-dir',
      '/nonexistent-fonts',
      '--data-dir',
      mkdtempSync(join(tmpdir(), 'disp-')),
    ]);
    expect(await p.exited).toBe(1);
    expect(p.output()).toMatch(/DejaVuSans\.ttf is missing: install Debian's fonts-dejavu-core/);
  });

  it('on a machine without SPI, the st7735 panel fails with a message that says how to fix it', async () => {
    const p = start(DISPLAY, ['--panel', 'st7735', '--spi-bus', '6', '--data-dir', mkdtempSync(join(tmpdir(), 'disp-'))]);
    expect(await p.exited).toBe(1);
    expect(p.output()).toMatch(/spidev6\.0 does not exist: enable SPI.*; on a machine without the panel, use --panel png/);
  });
});

describe('staleness is measured time, not the wall clock', () => {
  // One state written at NOW; the wall clock then steps while the monotonic clock runs on.
  async function controllerWith(clock: { wallMs: number; monoMs: number }) {
    const { dir, controller, st7735 } = await rig(clock);
    await writeFileAtomic(dir, 'state.json', JSON.stringify(exampleState({ updatedAtMs: NOW, powerW: 2.2 })));
    return { controller, st7735 };
  }

  it('a forward step of the wall clock does not make a live backend look stale', async () => {
    const clock = { wallMs: NOW + 1000, monoMs: 50_000 };
    const { controller, st7735 } = await controllerWith(clock);
    expect((await controller.refresh()).model.mode).toBe('live');
    clock.wallMs += 40 * 86_400_000; // date -s "+40 days"
    clock.monoMs += 2000;
    expect((await controller.refresh()).model.mode).toBe('live');
    await st7735.close();
  });

  it('a backward step does not keep a stopped backend looking live, and the age shown is the measured one', async () => {
    const clock = { wallMs: NOW + 1000, monoMs: 50_000 };
    const { controller, st7735 } = await controllerWith(clock);
    expect((await controller.refresh()).model.mode).toBe('live');
    clock.wallMs -= 3_600_000; // the clock steps an hour back, then the backend stops writing
    clock.monoMs += 20_000;
    const r = await controller.refresh();
    expect(r.model.mode).toBe('stale');
    expect(r.model.statusText).toBe('stale: no update for 21s');
    await st7735.close();
  });

  it('a display started long after the backend stopped still says stale (first sight uses the wall clock)', async () => {
    const clock = { wallMs: NOW + 600_000, monoMs: 50_000 };
    const { controller, st7735 } = await controllerWith(clock);
    expect((await controller.refresh()).model).toMatchObject({ mode: 'stale', statusText: 'stale: no update for 10min' });
    await st7735.close();
  });
});
