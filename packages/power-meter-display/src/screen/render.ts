import { existsSync } from 'node:fs';
import { createCanvas, registerFont, type Canvas, type CanvasRenderingContext2D } from 'canvas';
import { DEFAULT_FONT_DIR, FontMissingError, fontPaths } from './fonts.js';
import type { ScreenModel, Tone } from './model.js';

/**
 * Draws a ScreenModel with canvas. Fonts are registered explicitly from Debian's
 * fonts-dejavu-core, so the screen renders the same on a Pi, a laptop and CI (canvas would
 * otherwise fall back to whatever fontconfig finds).
 */
const FONT_FAMILY = 'MeterSans';

let registeredDir: string | null = null;

/** Registers the two DejaVu faces once per process; must run before the first canvas exists. */
export function registerScreenFonts(fontDir: string = DEFAULT_FONT_DIR): void {
  if (registeredDir !== null) return;
  const { regular, bold } = fontPaths(fontDir);
  for (const f of [regular, bold]) if (!existsSync(f)) throw new FontMissingError(f);
  registerFont(regular, { family: FONT_FAMILY, weight: 'normal' });
  registerFont(bold, { family: FONT_FAMILY, weight: 'bold' });
  registeredDir = fontDir;
}

export const TONE_COLOURS: Record<Tone, string> = {
  good: '#2ecc40',
  fair: '#ffb000',
  poor: '#ff4136',
  neutral: '#aab4be',
  alert: '#ff4136',
};
const BACKGROUND = '#000000';
/** Height of the status bar at the bottom. */
const STATUS_H = 16;
/** The status line's fonts, largest first (model.ts words fit the first one at 160 px). */
export const STATUS_FONTS = ['bold 10px', 'bold 9px', '9px', '8px'] as const;
const TEXT = '#ffffff';
const DIM = '#8a939c';
/** The on-chain balance: a cool blue, apart from the tones that judge power. */
export const BALANCE = '#5ab4ff';

export type Orientation = 'landscape' | 'portrait';

export interface Frame {
  width: number;
  height: number;
  /** RGBA, 4 bytes per pixel, row-major. */
  rgba: Uint8ClampedArray;
}

export class ScreenRenderer {
  readonly width: number;
  readonly height: number;
  private readonly canvas: Canvas;
  private readonly ctx: CanvasRenderingContext2D;

  constructor(
    readonly orientation: Orientation = 'landscape',
    fontDir?: string,
  ) {
    registerScreenFonts(fontDir);
    this.width = orientation === 'landscape' ? 160 : 128;
    this.height = orientation === 'landscape' ? 128 : 160;
    this.canvas = createCanvas(this.width, this.height);
    this.ctx = this.canvas.getContext('2d');
    // Crisp edges matter more than smooth ones on a 160x128 glass.
    this.ctx.antialias = 'gray';
  }

  render(model: ScreenModel): Frame {
    const { ctx, width: w, height: h } = this;
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, w, h);
    ctx.textBaseline = 'alphabetic';
    this.drawHeader(model);
    const bigBaseline = this.drawPower(model);
    const rateY = this.drawAverageAndRewards(model, bigBaseline);
    // Sparkline of recent window averages, between the rewards and the status bar.
    const sparkTop = (this.portrait ? rateY + 15 : rateY) + 5;
    const sparkBottom = h - STATUS_H - 3;
    this.drawSparkline(model.spark, model.sparkTones, 4, sparkTop, w - 8, sparkBottom - sparkTop);
    this.drawStatus(model);
    const data = ctx.getImageData(0, 0, w, h).data;
    return { width: w, height: h, rgba: data };
  }

  private get portrait(): boolean {
    return this.orientation === 'portrait';
  }

  /** Label ("POWER NOW" / "STALE") and, when state.json is unreadable, the problem marker. */
  private drawHeader(model: ScreenModel): void {
    const { ctx, width: w } = this;
    ctx.font = `bold 10px ${FONT_FAMILY}`;
    ctx.fillStyle = DIM;
    ctx.textAlign = 'left';
    ctx.fillText(model.mode === 'stale' ? 'STALE' : this.portrait ? 'POWER' : 'POWER NOW', 4, 11);
    if (model.problemMarker === null) {
      if (model.chipText !== null) {
        // The chip that measures, small and dim: a fact about the figures, not news.
        ctx.font = `9px ${FONT_FAMILY}`;
        ctx.textAlign = 'right';
        ctx.fillText(model.chipText, w - 4, 10);
        ctx.textAlign = 'left';
      }
      return;
    }
    ctx.font = `bold 9px ${FONT_FAMILY}`;
    const text = `! ${model.problemMarker}`;
    const tw = Math.ceil(ctx.measureText(text).width) + 6;
    ctx.fillStyle = TONE_COLOURS.alert;
    ctx.fillRect(w - tw - 2, 1, tw, 12);
    ctx.fillStyle = TEXT;
    ctx.textAlign = 'right';
    ctx.fillText(text, w - 5, 10);
  }

  /** The big figure and its unit; returns the baseline the lines below hang from. */
  private drawPower(model: ScreenModel): number {
    const { ctx, width: w } = this;
    // At least 24 px tall on the glass (cap height of a 36 px bold face is ~26 px).
    const bigPx = this.portrait ? 34 : 36;
    const bigBaseline = this.portrait ? 50 : 48;
    ctx.font = `bold ${bigPx}px ${FONT_FAMILY}`;
    ctx.fillStyle = TONE_COLOURS[model.powerTone];
    ctx.textAlign = 'left';
    ctx.fillText(model.powerText, 4, bigBaseline);
    const numberWidth = ctx.measureText(model.powerText).width;
    ctx.font = `bold 16px ${FONT_FAMILY}`;
    ctx.fillText('W', Math.min(4 + numberWidth + 3, w - 16), bigBaseline);
    return bigBaseline;
  }

  /**
   * Window average, reward rate, the local total and the on-chain balance; returns the baseline
   * of the rate line. The balance sits right of the average (landscape) or of the total
   * (portrait), squeezed rather than overlapping when the line is full.
   */
  private drawAverageAndRewards(model: ScreenModel, bigBaseline: number): number {
    const { ctx, width: w } = this;
    ctx.font = `12px ${FONT_FAMILY}`;
    ctx.fillStyle = TEXT;
    const avgY = bigBaseline + 16;
    ctx.fillText(model.avgText, 4, avgY);
    const avgRight = 4 + ctx.measureText(model.avgText).width;
    const rateY = avgY + 15;
    ctx.fillStyle = TONE_COLOURS[model.rateTone];
    ctx.fillText(model.rateText, 4, rateY);
    ctx.fillStyle = DIM;
    if (this.portrait) {
      ctx.fillText(model.totalText, 4, rateY + 15);
      this.drawBalance(model, rateY + 15, 4 + ctx.measureText(model.totalText).width);
    } else {
      ctx.textAlign = 'right';
      ctx.fillText(model.totalText, w - 4, rateY);
      ctx.textAlign = 'left';
      this.drawBalance(model, avgY, avgRight);
    }
    return rateY;
  }

  private drawBalance(model: ScreenModel, baseline: number, leftEdge: number): void {
    if (model.balanceText === null) return;
    const { ctx, width: w } = this;
    ctx.font = `bold 11px ${FONT_FAMILY}`;
    ctx.fillStyle = model.balanceTone === 'neutral' ? BALANCE : TONE_COLOURS[model.balanceTone];
    ctx.textAlign = 'right';
    ctx.fillText(model.balanceText, w - 4, baseline, Math.max(20, w - 4 - leftEdge - 6));
    ctx.textAlign = 'left';
  }

  private drawStatus(model: ScreenModel): void {
    const { ctx, width: w, height: h } = this;
    ctx.fillStyle = model.statusTone === 'good' ? '#0b3d16' : model.statusTone === 'neutral' ? '#222a31' : TONE_COLOURS[model.statusTone];
    ctx.fillRect(0, h - STATUS_H, w, STATUS_H);
    const fit = this.statusFit(model.statusText);
    ctx.font = fit.font;
    ctx.fillStyle = model.statusTone === 'good' || model.statusTone === 'neutral' ? TEXT : '#000000';
    ctx.textAlign = 'left';
    ctx.fillText(fit.text, 4, h - 4);
  }

  /**
   * How the status line is drawn: in the first of the status fonts it fits whole (bold 10 px,
   * then smaller), else cut with "…" in the smallest. Never squeezed: canvas's maxWidth would
   * compress the glyphs until they are unreadable on the glass.
   */
  statusFit(text: string): { font: string; text: string; width: number } {
    const { ctx } = this;
    const room = this.width - 8;
    for (const font of STATUS_FONTS) {
      ctx.font = `${font} ${FONT_FAMILY}`;
      const width = ctx.measureText(text).width;
      if (width <= room) return { font: ctx.font, text, width };
    }
    let cut = text;
    while (cut.length > 1 && ctx.measureText(`${cut}…`).width > room) cut = cut.slice(0, -1);
    return { font: ctx.font, text: `${cut.trimEnd()}…`, width: ctx.measureText(`${cut.trimEnd()}…`).width };
  }

  /** The canvas itself, for saving previews. */
  get canvasForPreview(): Canvas {
    return this.canvas;
  }

  private drawSparkline(values: number[], tones: Tone[], x: number, y: number, w: number, h: number): void {
    const { ctx } = this;
    ctx.strokeStyle = '#30383f';
    ctx.lineWidth = 1;
    ctx.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
    if (values.length === 0 || h < 6) return;
    const max = Math.max(1, ...values.map((v) => (Number.isFinite(v) ? v : 0)));
    const innerH = h - 4;
    const n = values.length;
    const barW = Math.max(1, Math.floor((w - 4) / Math.max(n, 1)));
    const start = x + 2 + Math.max(0, w - 4 - barW * n);
    for (let i = 0; i < n; i++) {
      const v = Number.isFinite(values[i]!) ? Math.max(0, values[i]!) : 0;
      const barH = Math.max(1, Math.round((v / max) * innerH));
      ctx.fillStyle = TONE_COLOURS[tones[i] ?? 'neutral'];
      ctx.fillRect(start + i * barW, y + 2 + innerH - barH, Math.max(1, barW - 1), barH);
    }
  }
}
