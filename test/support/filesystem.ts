import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Real, small file systems for the tests of what a full or read-only SD card does: a tmpfs
 * mounted at `dir`, then filled or remounted read-only, so the failures are the kernel's, not a
 * stub's. Mounting needs root (the suite runs as root in CI, as the systemd tests do). Returns
 * the function that unmounts it (lazily: a process the test killed may still hold a file).
 */
export function mountTmpfs(dir: string, size: string): () => void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  return () => void execFileSync('umount', ['-l', dir]);
}

/** The file system at `dir` read-only (`mount -o remount,ro`), as a card the kernel found errors on. */
export function remountReadOnly(dir: string): void {
  execFileSync('mount', ['-o', 'remount,ro', dir]);
}

/** Fills the file system that holds `dir` to the last byte with one file; returns the function that frees it. */
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
