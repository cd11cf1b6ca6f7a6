/**
 * Frame differencing (the luma "diff_to_previous" policy): compare the new frame with the one
 * the panel already shows and return the rectangles that changed, so the device only rewrites
 * those windows. Pure and allocation-light: pixels are compared as 32-bit words.
 */
import type { Rect } from '@power-meter/st7735';

export type { Rect };

export interface DiffOptions {
  /** Height of the horizontal bands the frame is scanned in. */
  bandH?: number;
  /**
   * Two changed spans closer than this many pixels are sent as one window: a window costs
   * 11 command/parameter bytes plus D/C switches, so tiny gaps are cheaper to resend.
   */
  joinGapPx?: number;
}

/** View an RGBA byte buffer as one 32-bit word per pixel without copying. */
export function pixelWords(rgba: Uint8Array | Uint8ClampedArray): Uint32Array {
  return new Uint32Array(rgba.buffer, rgba.byteOffset, rgba.byteLength >>> 2);
}

/**
 * Changed rectangles between `prev` and `next` (same size). `prev === null` means the panel
 * content is unknown: the whole frame is one rectangle. The union of the result covers every
 * changed pixel; rectangles never overlap.
 */
export function diffFrames(prev: Uint32Array | null, next: Uint32Array, width: number, height: number, opts: DiffOptions = {}): Rect[] {
  if (next.length !== width * height) throw new RangeError(`frame has ${next.length} pixels, expected ${width}x${height}`);
  if (prev === null) return [{ x: 0, y: 0, w: width, h: height }];
  if (prev.length !== next.length) throw new RangeError('frames differ in size');
  const bandH = opts.bandH ?? 8;
  const joinGapPx = opts.joinGapPx ?? 8;
  const frames: FramePair = { prev, next, width };
  const rects: Rect[] = [];
  const colDirty = new Uint8Array(width);
  for (let y0 = 0; y0 < height; y0 += bandH) {
    const y1 = Math.min(height, y0 + bandH);
    if (!markDirtyColumns(frames, y0, y1, colDirty)) continue;
    for (const [start, end] of dirtyRuns(colDirty, joinGapPx)) {
      const [top, bottom] = changedRows(frames, y0, y1, start, end);
      rects.push({ x: start, y: top, w: end - start + 1, h: bottom - top + 1 });
    }
  }
  return mergeVertical(rects);
}

interface FramePair {
  prev: Uint32Array;
  next: Uint32Array;
  width: number;
}

/** Sets colDirty[x] = 1 for every column with a changed pixel in rows y0..y1-1; false if none. */
function markDirtyColumns({ prev, next, width }: FramePair, y0: number, y1: number, colDirty: Uint8Array): boolean {
  colDirty.fill(0);
  let any = false;
  for (let y = y0; y < y1; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      if (prev[row + x] !== next[row + x]) {
        colDirty[x] = 1;
        any = true;
      }
    }
  }
  return any;
}

/** Runs of dirty columns as [first, last] (inclusive), joined across gaps of at most joinGapPx. */
function dirtyRuns(colDirty: Uint8Array, joinGapPx: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  const width = colDirty.length;
  let x = 0;
  while (x < width) {
    if (colDirty[x] === 0) {
      x++;
      continue;
    }
    const start = x;
    let end = x;
    let gap = 0;
    for (x = x + 1; x < width; x++) {
      if (colDirty[x] === 1) {
        end = x;
        gap = 0;
      } else if (++gap > joinGapPx) break;
    }
    runs.push([start, end]);
    x = end + 1;
  }
  return runs;
}

/** First and last row within y0..y1-1 with a changed pixel in columns start..end. */
function changedRows({ prev, next, width }: FramePair, y0: number, y1: number, start: number, end: number): [number, number] {
  let top = -1;
  let bottom = -1;
  for (let y = y0; y < y1; y++) {
    const row = y * width;
    for (let cx = start; cx <= end; cx++) {
      if (prev[row + cx] !== next[row + cx]) {
        if (top < 0) top = y;
        bottom = y;
        break;
      }
    }
  }
  return [top, bottom];
}

/** Join a rectangle with the one directly below it when they span the same columns. */
function mergeVertical(rects: Rect[]): Rect[] {
  const out: Rect[] = [];
  for (const r of rects) {
    const above = out.find((o) => o.x === r.x && o.w === r.w && o.y + o.h === r.y);
    if (above) above.h += r.h;
    else out.push({ ...r });
  }
  return out;
}

/** Pixels covered by a list of rectangles. */
export function areaPx(rects: readonly Rect[]): number {
  let sum = 0;
  for (const r of rects) sum += r.w * r.h;
  return sum;
}
