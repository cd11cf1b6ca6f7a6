import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * The RAM directory: where the frequently rewritten files (state.json, the eight legacy files)
 * and the outbox's RAM copy live, so that they do not wear the SD card (README "What is written
 * where"). It must be a tmpfs: it outlives the process (kill -9 loses nothing) but not a reboot.
 *
 * Pure: the environment and the existence check are parameters.
 *
 * - `--runtime-dir` when set (the data directory itself turns the RAM directory off).
 * - Under systemd, the unit's `RuntimeDirectory=` (systemd passes it as $RUNTIME_DIRECTORY).
 * - Otherwise (tests, the demo, a laptop) a directory named after the data directory in
 *   $XDG_RUNTIME_DIR (the user's tmpfs), else /dev/shm, else the temporary directory: one meter
 *   per data directory, so two meters on one machine never share one.
 */
export function resolveRuntimeDir(
  setting: string,
  dataDir: string,
  env: NodeJS.ProcessEnv = process.env,
  exists: (path: string) => boolean = existsSync,
): string {
  if (setting !== '') return resolve(setting);
  const fromSystemd = env.RUNTIME_DIRECTORY?.split(':')[0];
  if (fromSystemd) return resolve(fromSystemd);
  const tag = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 12);
  const base = env.XDG_RUNTIME_DIR && exists(env.XDG_RUNTIME_DIR) ? env.XDG_RUNTIME_DIR : exists('/dev/shm') ? '/dev/shm' : tmpdir();
  return join(base, `power-meter-${tag}`);
}
