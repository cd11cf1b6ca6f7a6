import { lstatSync, mkdirSync, rmdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { BackendSettings } from '../settings.js';
import { resolveRuntimeDir } from '../runtime-dir.js';

/**
 * The RAM directory's life at the meter's start and stop: made and checked before anything is
 * put there, removed when this program chose it and left it empty. Apart from the meter because
 * the check is a security rule (see `checkRuntimeDir`) that should read on its own.
 */

/** The RAM directory cannot be used (cli.ts: exit status 2, a setting to change). */
export class RuntimeDirError extends Error {
  override name = 'RuntimeDirError';
}

/** The RAM directory for these settings, made if needed and checked (`RuntimeDirError`). */
export function prepareRuntimeDir(s: Pick<BackendSettings, 'runtimeDir' | 'dataDir'>): string {
  const dir = resolveRuntimeDir(s.runtimeDir, s.dataDir);
  // Group-readable like the data directory (the display reads state.json through the links).
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  checkRuntimeDir(dir);
  return dir;
}

/** The RAM directory goes when this program chose it (not systemd, not the user) and it is empty. */
export function removeOwnRuntimeDir(s: Pick<BackendSettings, 'runtimeDir' | 'dataDir'>, runtimeDir: string): void {
  if (s.runtimeDir === '' && !process.env.RUNTIME_DIRECTORY && runtimeDir !== resolve(s.dataDir)) rmdirIfEmpty(runtimeDir);
}

function rmdirIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Not empty (a RAM copy whose last sync failed is kept there) or already gone.
  }
}

/**
 * The RAM directory holds the outbox between syncs: one made by someone else (its name under
 * /dev/shm can be guessed) could hand the meter readings it never measured. It must be a real
 * directory of this user that nobody else can write.
 */
function checkRuntimeDir(dir: string): void {
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0)
    throw new RuntimeDirError(
      `RAM directory ${dir} is ${st.isDirectory() ? `owned by uid ${st.uid} with mode ${(st.mode & 0o777).toString(8)}` : 'not a directory'}: it must be this user's and writable by nobody else; remove it, or choose another with --runtime-dir`,
    );
}
