import fsSync, { constants, promises as fs } from 'node:fs';

/**
 * Reading a file that comes from outside the process (the config file, state.json) without
 * trusting it: only a regular file (a symlink is followed only when it ends at a regular file),
 * never more than `maxBytes`, and never blocking. `readFile` on a symlink to /dev/zero or a FIFO
 * grows without bound or waits forever; a 50 MB file costs four times its size in memory.
 *
 * The path is stat()ed before it is opened, so a device or FIFO is never even opened (opening
 * some devices has side effects), then opened with O_NONBLOCK and fstat()ed again, so a file
 * swapped for a FIFO between the two calls still cannot block or be read.
 */
export type BoundedReadResult =
  | { ok: true; text: string }
  | { ok: false; code: 'missing' | 'not-regular' | 'too-big' | 'unreadable'; message: string };

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

function kindOf(st: fsSync.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function checkStat(path: string, st: fsSync.Stats, maxBytes: number): BoundedReadResult | null {
  if (!st.isFile()) return { ok: false, code: 'not-regular', message: `${path} is ${kindOf(st)}, not a regular file: not read` };
  if (st.size > maxBytes)
    return { ok: false, code: 'too-big', message: `${path} is ${st.size} bytes, more than the ${maxBytes} allowed: not read` };
  return null;
}

/**
 * A read buffer for a file fstat() found `size` bytes long: one byte more than that tells a file
 * that grew since fstat from one that did not. Sized to the file, not to `maxBytes`: the display
 * reads state.json (a few hundred bytes) several times a second, and a 64 KiB buffer each time
 * is garbage that can outlive a young-generation collection. Below 4 KiB, Buffer.allocUnsafe
 * takes a slice of Node's shared pool instead of a new allocation; only the bytes read are used.
 */
function readBuffer(size: number, maxBytes: number): Buffer {
  return Buffer.allocUnsafe(Math.min(size, maxBytes) + 1);
}

/** The buffer is full but the file may go on (it grew since fstat): room up to the cap + 1 byte. */
function grown(buf: Buffer, n: number, maxBytes: number): Buffer {
  if (n < buf.length || buf.length > maxBytes) return buf;
  const bigger = Buffer.allocUnsafe(maxBytes + 1);
  buf.copy(bigger, 0, 0, n);
  return bigger;
}

function failed(path: string, err: unknown): BoundedReadResult {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, code: 'missing', message: `${path} does not exist` };
  return { ok: false, code: 'unreadable', message: `cannot read ${path}: ${code ?? (err as Error).message}` };
}

/** Synchronous form, for start-up (the config file). */
export function readBoundedFileSync(path: string, maxBytes: number): BoundedReadResult {
  let fd: number | null = null;
  try {
    const before = checkStat(path, fsSync.statSync(path), maxBytes);
    if (before) return before;
    fd = fsSync.openSync(path, OPEN_FLAGS);
    const st = fsSync.fstatSync(fd);
    const after = checkStat(path, st, maxBytes);
    if (after) return after;
    let buf = readBuffer(st.size, maxBytes);
    let n = 0;
    for (;;) {
      buf = grown(buf, n, maxBytes);
      const got = fsSync.readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > maxBytes) return { ok: false, code: 'too-big', message: `${path} is more than the ${maxBytes} bytes allowed: not read` };
    }
    return { ok: true, text: buf.subarray(0, n).toString('utf8') };
  } catch (err) {
    return failed(path, err);
  } finally {
    if (fd !== null) fsSync.closeSync(fd);
  }
}

/** Asynchronous form, for readers that run all the time (the display reading state.json). */
export async function readBoundedFile(path: string, maxBytes: number): Promise<BoundedReadResult> {
  let handle: fs.FileHandle | null = null;
  try {
    const before = checkStat(path, await fs.stat(path), maxBytes);
    if (before) return before;
    handle = await fs.open(path, OPEN_FLAGS);
    const st = await handle.stat();
    const after = checkStat(path, st, maxBytes);
    if (after) return after;
    let buf = readBuffer(st.size, maxBytes);
    let n = 0;
    for (;;) {
      buf = grown(buf, n, maxBytes);
      const { bytesRead } = await handle.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > maxBytes) return { ok: false, code: 'too-big', message: `${path} is more than the ${maxBytes} bytes allowed: not read` };
    }
    return { ok: true, text: buf.subarray(0, n).toString('utf8') };
  } catch (err) {
    return failed(path, err);
  } finally {
    await handle?.close();
  }
}
