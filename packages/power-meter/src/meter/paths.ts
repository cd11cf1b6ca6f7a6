import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendSettings } from '../settings.js';
import { resolveRuntimeDir } from '../runtime-dir.js';

/**
 * Where the meter's files are, and the earliest time a reading can have: small facts that the
 * commands beside the daemon (salvage, backlog, calibrate, doctor) need without starting a meter.
 */

/** No reading can be older than this release: a clock before it is certainly wrong. */
const RELEASE_FLOOR_MS = Date.UTC(2026, 10, 1);

export function buildFloorMs(): number {
  try {
    // The compiled file's mtime is the build (or install) time.
    return Math.max(RELEASE_FLOOR_MS, statSync(fileURLToPath(import.meta.url)).mtimeMs);
  } catch {
    return RELEASE_FLOOR_MS;
  }
}

/** Where the outbox and the sequence floor live in the data directory. */
export function outboxPaths(dataDir: string): { outbox: string; floor: string; identityDir: string } {
  return {
    outbox: join(dataDir, 'outbox', 'outbox.sqlite'),
    floor: join(dataDir, 'identity', 'sequence-floor.json'),
    identityDir: join(dataDir, 'identity'),
  };
}

/** The outbox's RAM copy in the RAM directory (see runtime-dir.ts); none when RAM is off. */
export function stagingFileFor(s: Pick<BackendSettings, 'runtimeDir' | 'dataDir'>): string | undefined {
  const dir = resolveRuntimeDir(s.runtimeDir, s.dataDir);
  return dir === resolve(s.dataDir) ? undefined : join(dir, 'outbox.sqlite');
}
