import { join } from 'node:path';
import { onCleanup } from '../../../test/support/cleanup.js';
import { mountTmpfs as mountTmpfsAt } from '../../../test/support/filesystem.js';

export { fillUp } from '../../../test/support/filesystem.js';
export { onCleanup, tempDir } from '../../../test/support/cleanup.js';

/** The package root (tests that spawn processes use the built dist/). */
export const PACKAGE_DIR = join(import.meta.dirname, '..');

/** A tmpfs of `size` at `dir` (test/support/filesystem.ts), unmounted after the test. */
export function mountTmpfs(dir: string, size: string): void {
  onCleanup(mountTmpfsAt(dir, size));
}
