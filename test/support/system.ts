import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadImage, createCanvas } from 'canvas';
import { BACKEND, DISPLAY, start, type Proc } from './processes.js';

/** Helpers for the end-to-end tests: the whole system as real processes. */
export const TOKEN = 'e2e-token-7d41';

export function receiverProcess(port: number, record: string): Proc {
  return start(BACKEND, ['dev-receiver', '--port', String(port), '--project', 'e2e', '--record', record], { DEV_RECEIVER_TOKEN: TOKEN });
}

export const urlFor = (port: number) => `http://127.0.0.1:${port}/srv-applet-mgr/v0/event/e2e`;

export function backendProcess(dataDir: string, port: number, load: string, extraEnv: Record<string, string> = {}): Proc {
  return start(BACKEND, ['--sensor', 'sim', '--sim-load', load, '--window', '1', '--data-dir', dataDir, '--publish-url', urlFor(port)], {
    W3BSTREAM_PUBLISHER_TOKEN: TOKEN,
    POWER_METER_RETRY_MAX_MS: '1000',
    ...extraEnv,
  });
}

export function displayProcess(dataDir: string, png: string): Proc {
  return start(DISPLAY, ['--panel', 'png', '--png', png, '--data-dir', dataDir]);
}

/** The fields of a dev receiver's `--record` line (its ReceivedEvent) that these tests read. */
export interface RecordedEvent {
  seq: number;
  eventId: string;
  sensorReading: number;
  verified: boolean;
  body: string;
}

export function records(file: string): RecordedEvent[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as RecordedEvent);
}

/** Pixels of the PNG screen near a colour inside a region (tolerant to anti-aliasing). */
export async function pngCount(
  file: string,
  region: { x: number; y: number; w: number; h: number },
  colour: [number, number, number],
): Promise<number> {
  const img = await loadImage(readFileSync(file));
  const c = createCanvas(img.width, img.height);
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(region.x, region.y, region.w, region.h).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (Math.abs(d[i]! - colour[0]) < 40 && Math.abs(d[i + 1]! - colour[1]) < 40 && Math.abs(d[i + 2]! - colour[2]) < 40) n++;
  return n;
}

export const GREEN: [number, number, number] = [0x2e, 0xcc, 0x40];
export const RED: [number, number, number] = [0xff, 0x41, 0x36];
export const MAIN_FIGURE = { x: 0, y: 14, w: 160, h: 38 };
export { join };
