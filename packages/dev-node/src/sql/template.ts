import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BUILD_DIR = fileURLToPath(new URL('../../build', import.meta.url));
export const DATABASE_TEMPLATE_FILE = join(BUILD_DIR, 'pglite-template.tgz');

/**
 * An empty, initialised PGlite data directory (made by scripts/build-artifacts.mjs with the
 * installed PGlite): starting from it skips initdb, which is most of PGlite's start-up (on this
 * project's 2-core machine ~1.5 s instead of ~5-9 s). Without it the database runs initdb.
 */
export function emptyDatabaseTemplate(): Uint8Array | undefined {
  return existsSync(DATABASE_TEMPLATE_FILE) ? new Uint8Array(readFileSync(DATABASE_TEMPLATE_FILE)) : undefined;
}
