import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { mountTmpfs as mountTmpfsAt } from '../../../test/support/filesystem.js';

export { fillUp } from '../../../test/support/filesystem.js';

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

/** A tmpfs of `size` at `dir` (test/support/filesystem.ts), unmounted after the test. */
export function mountTmpfs(dir: string, size: string): void {
  onCleanup(mountTmpfsAt(dir, size));
}
