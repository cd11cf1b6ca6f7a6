import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STATE_MAX_BYTES, exampleState, writeFileAtomic } from '@power-meter/meter-files';
import { EXIT } from '@power-meter/service';
import { openModule } from '@power-meter/st7735';
import { afterEach, describe, expect, it } from 'vitest';
import { DISPLAY, start, until, type Proc } from '../../../test/support/processes.js';
import { DisplayController, type FramePanel } from '../src/controller.js';
import { ScreenRenderer } from '../src/screen/render.js';

const procs: Proc[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
});

function display(args: string[], env: Record<string, string> = {}): Proc {
  const p = start(DISPLAY, ['--panel', 'png', ...args], env);
  procs.push(p);
  return p;
}

/** Peak resident memory of a process so far, MB (VmHWM in /proc/<pid>/status). */
function peakRssMb(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1]) / 1024;
}

describe('the display reads state.json bounded', () => {
  const cases: Array<[string, (file: string) => void, RegExp]> = [
    ['a symlink to /dev/zero', (f) => symlinkSync('/dev/zero', f), /state\.json not-regular: .*character device/],
    ['a symlink to /dev/urandom', (f) => symlinkSync('/dev/urandom', f), /state\.json not-regular: .*character device/],
    ['a FIFO', (f) => expect(spawnSync('mkfifo', [f]).status).toBe(0), /state\.json not-regular: .*FIFO/],
    ['a 50 MB file', (f) => writeFileSync(f, Buffer.alloc(50 * 1024 * 1024, 0x7b)), /state\.json too-big: .*52428800 bytes/],
  ];
  for (const [what, make, message] of cases) {
    it(`stays under 120 MB and says what is wrong when state.json is ${what}`, async () => {
      const base = mkdtempSync(join(tmpdir(), 'disp-fuzz-'));
      const data = join(base, 'data');
      mkdirSync(data);
      // A good state first, so the screen has something to keep.
      await writeFileAtomic(data, 'state.json', JSON.stringify(exampleState({ updatedAtMs: Date.now(), powerW: 2.5 })));
      const p = display(['--png', join(base, 'screen.png'), '--data-dir', data]);
      await p.waitFor(/screen mode=live/);
      // Replaced, never removed first: the display goes straight from good to bad.
      make(join(data, 'state.json.new'));
      renameSync(join(data, 'state.json.new'), join(data, 'state.json'));
      await p.waitFor(message, 20_000);
      expect(p.output()).toMatch(/warning: state\.json (not-regular|too-big): .*keeping the last good screen/);
      expect(peakRssMb(p.proc.pid!)).toBeLessThan(120);
      expect(p.proc.exitCode).toBeNull();
    });
  }
});

describe('the screen says what is wrong with state.json', () => {
  it('keeps the last good screen with a marker for a device, a FIFO and a file too big', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'disp-marker-'));
    const st7735 = await openModule({ kind: 'emulated', variant: 'greentab', rotation: 90 });
    const frame: FramePanel = {
      width: st7735.device.width,
      height: st7735.device.height,
      writeRegion: (x, y, w, h, p) => st7735.device.writeRegion(x, y, w, h, p),
      close: () => st7735.close(),
    };
    const now = Date.now();
    const controller = new DisplayController({ dataDir: dir, renderer: new ScreenRenderer('landscape'), panel: frame, nowMs: () => now });
    await writeFileAtomic(dir, 'state.json', JSON.stringify(exampleState({ updatedAtMs: now, powerW: 4.5 })));
    expect((await controller.refresh()).model).toMatchObject({ powerText: '4.50', problemMarker: null });
    const file = join(dir, 'state.json');
    const cases: Array<[() => void, string]> = [
      [() => symlinkSync('/dev/zero', file), 'not a file'],
      [() => expect(spawnSync('mkfifo', [file]).status).toBe(0), 'not a file'],
      [() => writeFileSync(file, Buffer.alloc(STATE_MAX_BYTES + 1, 0x20)), 'file too big'],
    ];
    for (const [make, marker] of cases) {
      rmSync(file, { force: true });
      make();
      expect((await controller.refresh()).model).toMatchObject({ powerText: '4.50', problemMarker: marker });
    }
    await st7735.close();
  });
});

describe('the png panel as a service', () => {
  it('a relative --png goes to the state directory systemd names (STATE_DIRECTORY)', async () => {
    const state = mkdtempSync(join(tmpdir(), 'disp-state-'));
    const p = display(['--data-dir', mkdtempSync(join(tmpdir(), 'disp-'))], { STATE_DIRECTORY: state });
    await p.waitFor(new RegExp(`png=${state}/screen\\.png`));
    await until(
      () => {
        try {
          return readFileSync(join(state, 'screen.png')).length > 0;
        } catch {
          return false;
        }
      },
      15_000,
      'screen.png in the state directory',
    );
  });

  it('a redraw that fails is an error line until it works again', async () => {
    const base = mkdtempSync(join(tmpdir(), 'disp-redraw-'));
    const data = join(base, 'data');
    mkdirSync(data);
    const out = join(base, 'out');
    const p = display(['--png', join(out, 'screen.png'), '--data-dir', data]);
    await p.waitFor(/screen mode=no-data/);
    // The png's directory becomes a file: every save fails (ENOTDIR), as EROFS did under the unit.
    rmSync(out, { recursive: true });
    writeFileSync(out, 'not a directory');
    await writeFileAtomic(data, 'state.json', JSON.stringify(exampleState({ updatedAtMs: Date.now(), powerW: 3.3 })));
    await p.waitFor(/power-meter-display: redraw failed: .*ENOTDIR.*the screen is not updated until this is fixed/);
    rmSync(out);
    mkdirSync(out);
    await writeFileAtomic(data, 'state.json', JSON.stringify(exampleState({ updatedAtMs: Date.now(), powerW: 4.4 })));
    await p.waitFor(/redraw works again/);
  });

  it('refuses unknown keys in its config object and exits 2', async () => {
    const f = join(mkdtempSync(join(tmpdir(), 'disp-cfg-')), 'config.json');
    writeFileSync(f, JSON.stringify({ dataDir: '/tmp', display: { _comment: 'ok', pannel: 'png' } }));
    const p = start(DISPLAY, ['--config', f]);
    expect(await p.exited).toBe(EXIT.badSettings);
    expect(p.output()).toMatch(/unknown key "pannel" in "display" in the config file \(did you mean "panel"\?\)/);
  });
});
