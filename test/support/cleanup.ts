import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

/**
 * Clean-ups that run after the current test, last registered first: servers closed, temporary
 * directories removed, whether the test passed or not. Importing this module registers the
 * `afterEach` hook in the test file that imports it (w3bstream's and dev-node's unit tests).
 */
const cleanups: Array<() => Promise<void> | void> = [];
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A new temporary directory, removed after the test. */
export function tempDir(prefix = 'w3b-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
