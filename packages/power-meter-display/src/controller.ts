import { readState, type MeterState, type StateProblem } from '@power-meter/meter-files';
import { rgbaToRgb565be } from '@power-meter/st7735';
import type { Log } from '@power-meter/service';
import { areaPx, diffFrames, pixelWords, type Rect } from './diff/diff.js';
import { buildScreenModel, measuredAgeMs, type ScreenModel } from './screen/model.js';
import type { ScreenRenderer } from './screen/render.js';

/** The panel (`--panel`): what the controller draws on, the ST7735 device on the real or the emulated module. */
export interface FramePanel {
  readonly width: number;
  readonly height: number;
  /** Writes RGB565 big-endian pixels into a window. */
  writeRegion(x: number, y: number, w: number, h: number, rgb565be: Buffer): Promise<void>;
  /** Called after each update's regions were written (the png panel saves its glass here). */
  afterUpdate?(): Promise<void>;
  close(): Promise<void>;
}

export interface UpdateResult {
  model: ScreenModel;
  rects: Rect[];
  bytesSent: number;
}

/**
 * files -> state -> model -> frame -> changed regions -> panel (the layering of luma.core).
 * Keeps the last good state so a bad file never blanks the screen; a problem marker says so.
 */
export class DisplayController {
  private lastGood: MeterState | null = null;
  private problem: StateProblem | null = null;
  /** When the current state was first seen, for its measured age. */
  private sight: { updatedAtMs: number; seenWallMs: number; seenMonoMs: number } | null = null;
  private previous: Uint32Array | null = null;
  private readonly out: Buffer;
  frames = 0;
  bytesSent = 0;

  constructor(
    private readonly opts: {
      dataDir: string;
      renderer: ScreenRenderer;
      panel: FramePanel;
      nowMs?: () => number;
      /** Monotonic milliseconds (default `performance.now`): how staleness is measured. */
      monoMs?: () => number;
      /** A state.json that exists but cannot be used is a warning; a missing one, and its return, info. */
      log?: Log;
    },
  ) {
    const { renderer, panel } = opts;
    if (renderer.width !== panel.width || renderer.height !== panel.height)
      throw new Error(
        `screen is ${renderer.width}x${renderer.height} but the panel is ${panel.width}x${panel.height}: check --rotation and --variant`,
      );
    this.out = Buffer.alloc(renderer.width * renderer.height * 2);
  }

  /** Reads state.json and pushes whatever changed on screen. */
  async refresh(): Promise<UpdateResult> {
    const result = await readState(this.opts.dataDir);
    const nowMs = (this.opts.nowMs ?? Date.now)();
    const monoMs = this.opts.monoMs ? this.opts.monoMs() : performance.now();
    if (result.ok) {
      this.lastGood = result.state;
      if (this.sight?.updatedAtMs !== result.state.updatedAtMs)
        this.sight = { updatedAtMs: result.state.updatedAtMs, seenWallMs: nowMs, seenMonoMs: monoMs };
      if (this.problem !== null) this.opts.log?.info('state.json readable again');
      this.problem = null;
    } else if (result.problem !== this.problem) {
      this.problem = result.problem;
      // A missing file is the normal "backend never ran / directory gone" case, not an alarm.
      this.opts.log?.[result.problem === 'missing' ? 'info' : 'warning'](
        `state.json ${result.problem}: ${result.message}${this.lastGood ? '; keeping the last good screen' : ''}`,
      );
    }
    const problemForModel = this.problem === 'missing' && this.lastGood === null ? null : this.problem;
    const ageMs = this.sight === null ? undefined : measuredAgeMs(this.sight, monoMs);
    const model = buildScreenModel(this.lastGood, problemForModel, nowMs, ageMs);
    return this.draw(model);
  }

  async draw(model: ScreenModel): Promise<UpdateResult> {
    const { renderer, panel } = this.opts;
    const frame = renderer.render(model);
    const words = pixelWords(frame.rgba);
    const rects = diffFrames(this.previous, words, frame.width, frame.height);
    let bytes = 0;
    for (const r of rects) {
      const n = r.w * r.h * 2;
      const px = this.out.subarray(0, n);
      rgbaToRgb565be(frame.rgba, frame.width, r, px);
      await panel.writeRegion(r.x, r.y, r.w, r.h, px);
      bytes += n;
    }
    if (rects.length > 0) {
      await panel.afterUpdate?.();
      this.frames++;
    }
    this.bytesSent += bytes;
    // Keep a copy (the renderer's next frame is a new array), in one buffer for the program's
    // life: a new 80 KB array per frame outlives a young-generation collection, and such arrays
    // pile up in the old generation until a full one (tens of MB on a 512 MB Pi).
    if (this.previous === null || this.previous.length !== words.length) this.previous = new Uint32Array(words.length);
    this.previous.set(words);
    return { model, rects, bytesSent: bytes };
  }

  /** Pixels changed by the last update relative to the full frame. */
  static fraction(rects: Rect[], width: number, height: number): number {
    return areaPx(rects) / (width * height);
  }
}
