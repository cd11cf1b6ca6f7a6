import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createCanvas, registerFont, type Canvas, type CanvasRenderingContext2D } from 'canvas';
import type { ScreenModel, Tone } from './model.js';

/**
 * Draws a ScreenModel with canvas. Fonts are registered explicitly from Debian's
 * fonts-dejavu-core, so the screen renders the same on a Pi, a laptop and CI (canvas would
 * otherwise fall back to whatever fontconfig finds).
 */
export const DEFAULT_FONT_DIR = '/usr/share/fonts/truetype/dejavu';
const FONT_FAMILY = 'MeterSans';

export class FontMissingError extends Error {
  constructor(readonly file: string) {
    super(
      `font file ${file} is missing: install Debian's fonts-dejavu-core ` +
        `(sudo apt-get install fonts-dejavu-core, or run ./install-requirements.sh), ` +
        `or point --font-dir at a folder containing DejaVuSans.ttf and DejaVuSans-Bold.ttf`,
    );
    this.name = 'FontMissingError';
  }
}

let registeredDir: string | null = null;

/** Registers the two DejaVu faces once per process; must run before the first canvas exists. */
export function registerScreenFonts(fontDir: string = DEFAULT_FONT_DIR): void {
  if (registeredDir !== null) return;
  const regular = join(fontDir, 'DejaVuSans.ttf');
  const bold = join(fontDir, 'DejaVuSans-Bold.ttf');
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
const TEXT = '#ffffff';
const DIM = '#8a939c';

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

  constructor(readonly orientation: Orientation = 'landscape', fontDir?: string) {
    registerScreenFonts(fontDir);
    this.width = orientation === 'landscape' ? 160 : 128;
    this.height = orientation === 'landscape' ? 128 : 160;
    this.canvas = createCanvas(this.width, this.height);
    this.ctx = this.canvas.getContext('2d');
    // Crisp edges matter more than smooth ones on a 160x128 panel.
    this.ctx.antialias = 'gray';
  }

  render(model: ScreenModel): Frame {
    const { ctx, width: w, height: h } = this;
    const portrait = this.orientation === 'portrait';
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, w, h);
    ctx.textBaseline = 'alphabetic';

    // Header: label and problem marker.
    ctx.font = `bold 10px ${FONT_FAMILY}`;
    ctx.fillStyle = DIM;
    ctx.textAlign = 'left';
    ctx.fillText(model.mode === 'stale' ? 'STALE' : portrait ? 'POWER' : 'POWER NOW', 4, 11);
    if (model.problemMarker !== null) {
      ctx.font = `bold 9px ${FONT_FAMILY}`;
      const text = `! ${model.problemMarker}`;
      const tw = Math.ceil(ctx.measureText(text).width) + 6;
      ctx.fillStyle = TONE_COLOURS.alert;
      ctx.fillRect(w - tw - 2, 1, tw, 12);
      ctx.fillStyle = TEXT;
      ctx.textAlign = 'right';
      ctx.fillText(text, w - 5, 10);
    }

    // Main figure: at least 24 px tall on the glass (cap height of a 36 px bold face is ~26 px).
    const bigPx = portrait ? 34 : 36;
    const bigBaseline = portrait ? 50 : 48;
    ctx.font = `bold ${bigPx}px ${FONT_FAMILY}`;
    ctx.fillStyle = TONE_COLOURS[model.powerTone];
    ctx.textAlign = 'left';
    ctx.fillText(model.powerText, 4, bigBaseline);
    const numberWidth = ctx.measureText(model.powerText).width;
    ctx.font = `bold 16px ${FONT_FAMILY}`;
    ctx.fillText('W', Math.min(4 + numberWidth + 3, w - 16), bigBaseline);

    // Window average and rewards.
    ctx.font = `12px ${FONT_FAMILY}`;
    ctx.fillStyle = TEXT;
    const avgY = bigBaseline + 16;
    ctx.fillText(model.avgText, 4, avgY);
    const rateY = avgY + 15;
    ctx.fillStyle = TONE_COLOURS[model.rateTone];
    ctx.fillText(model.rateText, 4, rateY);
    ctx.fillStyle = DIM;
    if (portrait) {
      ctx.fillText(model.totalText, 4, rateY + 15);
    } else {
      ctx.textAlign = 'right';
      ctx.fillText(model.totalText, w - 4, rateY);
      ctx.textAlign = 'left';
    }

    // Sparkline of recent window averages.
    const statusH = 16;
    const sparkTop = (portrait ? rateY + 15 : rateY) + 5;
    const sparkBottom = h - statusH - 3;
    this.drawSparkline(model.spark, 4, sparkTop, w - 8, sparkBottom - sparkTop);

    // Status bar.
    ctx.fillStyle = model.statusTone === 'good' ? '#0b3d16' : model.statusTone === 'neutral' ? '#222a31' : TONE_COLOURS[model.statusTone];
    ctx.fillRect(0, h - statusH, w, statusH);
    ctx.font = `bold 10px ${FONT_FAMILY}`;
    ctx.fillStyle = model.statusTone === 'good' || model.statusTone === 'neutral' ? TEXT : '#000000';
    ctx.textAlign = 'left';
    ctx.fillText(model.statusText, 4, h - 4, w - 8);

    const data = ctx.getImageData(0, 0, w, h).data;
    return { width: w, height: h, rgba: data };
  }

  /** The canvas itself, for saving previews. */
  get canvasForPreview(): Canvas {
    return this.canvas;
  }

  private drawSparkline(values: number[], x: number, y: number, w: number, h: number): void {
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
      ctx.fillStyle = TONE_COLOURS[v < 3 ? 'good' : v < 5 ? 'fair' : 'poor'];
      ctx.fillRect(start + i * barW, y + 2 + innerH - barH, Math.max(1, barW - 1), barH);
    }
  }
}
