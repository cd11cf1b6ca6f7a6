import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `cond` holds; fails the test with `what` if it does not within `timeoutMs`. */
export async function until(cond: () => boolean, what = 'condition', timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await sleep(5);
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
/** Runs after the current test, last registered first. */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

export function tempDir(prefix = 'w3b-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The package root (tests that spawn processes use the built dist/). */
export const PACKAGE_DIR = join(import.meta.dirname, '..');

/**
 * A real, small file system at `dir` (a tmpfs of `size`, e.g. '2m'), unmounted after the test:
 * what a full SD card does to the outbox is then what the kernel does, not a stub. Needs root
 * (the test suite runs as root in CI, as the systemd tests do).
 */
export function mountTmpfs(dir: string, size: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  onCleanup(() => void execFileSync('umount', ['-l', dir]));
}

/** Fills the file system that holds `dir` to the last byte with one file; returns a function that frees it. */
export function fillUp(dir: string): () => void {
  const file = join(dir, `.filler-${process.pid}`);
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (let size = chunk.length; size >= 1; size = Math.floor(size / 2)) {
      for (;;) {
        try {
          writeSync(fd, chunk, 0, size);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return () => rmSync(file, { force: true });
}
