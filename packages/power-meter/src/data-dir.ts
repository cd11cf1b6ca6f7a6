import { accessSync, constants, mkdirSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { EXIT, type ExitStatus } from '@power-meter/service';

/**
 * The data directory must be usable before anything is written into it: a directory (not a
 * file), on a writable file system, writable by the user running the meter. What cannot be fixed
 * by restarting is exit status 4 (EXIT.dataDirUnusable, in the units' RestartPreventExitStatus=),
 * with a message saying what to do; the same problems met later while opening the outbox or the
 * sequence floor get the same words (`dataDirFault`).
 *
 * The directory is created when missing, with its missing parents, except a home directory or a
 * directory at the top of the file system: the default `/home/pi/data/power-meter` on a machine
 * without a user `pi` is a setting to change, not a directory to create.
 */
export type DataDirProblem = 'not-a-directory' | 'missing-parent' | 'read-only' | 'no-permission';

export class DataDirError extends Error {
  override name = 'DataDirError';
  constructor(
    readonly dir: string,
    readonly problem: DataDirProblem,
    message: string,
  ) {
    super(message);
  }
}

/** Where the meter never creates a directory below: the file system's top and /home (a user that does not exist). */
const NO_CREATE_BELOW = new Set(['/', '/home']);

const statOrNull = (path: string): Stats | null => {
  try {
    return statSync(path);
  } catch {
    return null;
  }
};

/** Checks the data directory and creates it when missing (see above); throws DataDirError. */
export function prepareDataDir(dir: string): void {
  const abs = resolve(dir);
  const st = statOrNull(abs);
  if (st !== null && !st.isDirectory())
    throw new DataDirError(abs, 'not-a-directory', `the data directory ${abs} is not a directory: move that file away, or set --data-dir`);
  if (st === null) {
    let existing = dirname(abs);
    while (statOrNull(existing) === null && dirname(existing) !== existing) existing = dirname(existing);
    if (!statOrNull(existing)?.isDirectory())
      throw new DataDirError(
        abs,
        'not-a-directory',
        `the data directory ${abs} cannot be created: ${existing} is not a directory; set --data-dir`,
      );
    if (NO_CREATE_BELOW.has(existing))
      throw new DataDirError(
        abs,
        'missing-parent',
        `the data directory ${abs} does not exist and would have to be created in ${existing}: create it (for the service, sudo ./install.sh does), or set --data-dir to a directory of the user running the meter`,
      );
    try {
      mkdirSync(abs, { recursive: true });
    } catch (err) {
      throw describe(err, abs) ?? err;
    }
  }
  // Writable by this user on a writable file system (access(2) answers EROFS for a read-only
  // mount, EACCES for the permission bits), without touching the directory: a start changes
  // nothing there that it does not need to.
  try {
    accessSync(abs, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw describe(err, abs) ?? err;
  }
}

/** A file-system error on the data directory in words, when it is one a restart cannot fix. */
function describe(err: unknown, dir: string): DataDirError | null {
  const code = (err as { code?: unknown } | null)?.code;
  const path = (err as { path?: unknown }).path;
  const where = typeof path === 'string' ? path : dir;
  if (code === 'EROFS' || (typeof code === 'string' && code.startsWith('SQLITE_READONLY')))
    return new DataDirError(
      dir,
      'read-only',
      `the data directory ${dir} cannot be written (${String(code)} at ${where}: a read-only file system or file): remount it read-write, or set --data-dir`,
    );
  if (code === 'EACCES' || code === 'EPERM' || code === 'SQLITE_CANTOPEN')
    return new DataDirError(
      dir,
      'no-permission',
      `the data directory ${dir} cannot be written by this user (${String(code)} at ${where}): it and everything in it must belong to the user running the meter (e.g. sudo chown -R <user>: ${dir}), or set --data-dir`,
    );
  if (code === 'ENOTDIR' || code === 'EEXIST' || code === 'EISDIR')
    return new DataDirError(
      dir,
      'not-a-directory',
      `the data directory ${dir} cannot be used (${String(code)} at ${where}: a file where a directory belongs, or the other way round): move it away, or set --data-dir`,
    );
  return null;
}

/**
 * How the program ends when starting failed on the data directory: the status and the words, or
 * null when `err` is something else. A full file system is exit 1 (systemd restarts, and it may
 * work once space is freed); the rest is exit 4.
 */
export function dataDirFault(err: unknown, dir: string): { status: ExitStatus; message: string } | null {
  if (err instanceof DataDirError) return { status: EXIT.dataDirUnusable, message: err.message };
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL')
    return {
      status: EXIT.failure,
      message: `the file system of the data directory ${resolve(dir)} is full (${String(code)}): free space there; the meter starts again by itself`,
    };
  const known = describe(err, resolve(dir));
  return known === null ? null : { status: EXIT.dataDirUnusable, message: known.message };
}
