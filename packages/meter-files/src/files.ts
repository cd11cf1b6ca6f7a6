import fsSync, { promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { FILES } from './schema.js';
import { parseState, type ParseResult } from './parse.js';
import { readBoundedFile } from './bounded-read.js';
import { pidAlive } from './process.js';

/** Temporary files are hidden and carry this marker, so watchers and cleanup can recognise them. */
const TMP_MARKER = '.tmp-';

/** True for the temporary files `writeFileAtomic` creates (`.<name>.tmp-<pid>-<random>`). */
export function isTempFile(fileName: string): boolean {
  const base = path.basename(fileName);
  return base.startsWith('.') && base.includes(TMP_MARKER);
}

export interface AtomicWriteOptions {
  /**
   * fsync the file and its directory. Needed only for files whose loss after a power cut matters;
   * the display files are rewritten every few hundred ms and syncing each would wear SD cards
   * (docs/design.md "What users of other meters complain about", item 4) for no benefit, so the
   * default is off.
   */
  durable?: boolean;
  /** File mode; the data directory is readable by the display user, so 0644 by default. */
  mode?: number;
  /**
   * Give the file exactly `mode`, whatever the process's umask (which creation applies): for a
   * file another user's program must read, such as a Prometheus textfile for node_exporter
   * under the service's UMask=0027. Set on the temporary file, so the file is never visible
   * with another mode.
   */
  exactMode?: boolean;
}

/** Where a write of `dir/name` goes first: hidden, in the same directory (so rename is atomic), named after this process. */
/**
 * Random per process, then counted: unique among this process's writes (even concurrent ones to
 * the same file) and unlike another process's, without a call into crypto for each of the
 * backend's several writes a second.
 */
const tmpPrefix = `${process.pid}-${randomBytes(4).toString('hex')}`;
let tmpCount = 0;

function tempPathFor(dir: string, name: string): string {
  return path.join(dir, `.${name}${TMP_MARKER}${tmpPrefix}-${(++tmpCount).toString(36)}`);
}

/**
 * Replace `dir/name` atomically: write a temporary file in the same directory, then rename it
 * over the target. A reader sees the old content or the new, never a partial file (the
 * original firmware truncated and wrote in place, so its display sometimes read an empty file).
 * With `durable`, the file is flushed before the rename and the directory after it.
 */
export async function writeFileAtomic(
  dir: string,
  name: string,
  content: string | Uint8Array,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const tmp = tempPathFor(dir, name);
  try {
    await fs.writeFile(tmp, content, { mode: opts.mode ?? 0o644, flush: opts.durable === true });
    if (opts.exactMode) await fs.chmod(tmp, opts.mode ?? 0o644);
    await fs.rename(tmp, path.join(dir, name));
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  if (opts.durable) await syncDir(dir);
}

/**
 * The same steps without the thread pool, for small, frequent files (the backend rewrites
 * state.json a few times per second): no round trips through libuv's workers costs a fraction
 * of the CPU of the async version, and a page-cache write of < 1 KiB does not block the event
 * loop noticeably.
 */
export function writeFileAtomicSync(dir: string, name: string, content: string | Uint8Array, opts: AtomicWriteOptions = {}): void {
  const tmp = tempPathFor(dir, name);
  try {
    fsSync.writeFileSync(tmp, content, { mode: opts.mode ?? 0o644, flush: opts.durable === true });
    if (opts.exactMode) fsSync.chmodSync(tmp, opts.mode ?? 0o644);
    fsSync.renameSync(tmp, path.join(dir, name));
  } catch (err) {
    fsSync.rmSync(tmp, { force: true });
    throw err;
  }
  if (opts.durable) syncDirSync(dir);
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function syncDirSync(dir: string): void {
  const fd = fsSync.openSync(dir, 'r');
  try {
    fsSync.fsyncSync(fd);
  } finally {
    fsSync.closeSync(fd);
  }
}

/**
 * Remove temporary files left by a writer that was killed between write and rename.
 * Only files whose writer process is gone are removed, so a running writer is never disturbed.
 * Returns the names removed.
 */
export async function cleanupTempFiles(dir: string, isAlive: (pid: number) => boolean = pidAlive): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!isTempFile(name)) continue;
    const pid = Number(/\.tmp-(\d+)-/.exec(name)?.[1]);
    if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) continue;
    if (pid === process.pid) continue;
    await fs.rm(path.join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/** state.json is a few hundred bytes; anything this big is not ours and is not read. */
export const STATE_MAX_BYTES = 64 * 1024;

/**
 * Read and validate `state.json`; never throws for a missing or bad file. Bounded (regular files
 * only, at most STATE_MAX_BYTES, never blocking): the data directory may be written by others.
 */
export async function readState(dir: string): Promise<ParseResult> {
  const file = path.join(dir, FILES.state);
  const r = await readBoundedFile(file, STATE_MAX_BYTES);
  if (r.ok) return parseState(r.text);
  if (r.code === 'missing') return { ok: false, problem: 'missing', message: `no ${FILES.state} in ${dir} (has the backend run yet?)` };
  return { ok: false, problem: r.code, message: r.message };
}
