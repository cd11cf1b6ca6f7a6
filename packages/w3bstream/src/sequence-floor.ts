import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * The sequence floor: a small file kept beside the device key, outside the outbox database, that
 * says "every sequence number below `nextSeq` may have been handed out". An eventID
 * (`<address>-<seq>`) must never name two bodies, so a new, emptied, truncated or older outbox
 * must not start numbering below it while the key (and so the address) is the same.
 *
 * Hi/lo: the outbox reserves a block of numbers by writing `nextSeq = seq + block` before it hands
 * out the first number of the block, and writes the exact next number on a clean close. So the
 * file is written once per block (every `block` readings) and at start and stop, never per reading.
 * Written atomically: temporary file, fsync, rename, fsync of the directory.
 *
 * After a stop that was not clean (kill -9, a crash, a power cut) the reservation is only an upper
 * bound. `session` names the run that wrote the record; the outbox copy that run worked on records
 * the same name (outbox.ts "Sequence numbers after a stop that was not clean"). When the copy the
 * next start takes is that very copy (the RAM copy after kill -9, the card's file when the run
 * worked on it directly), it knows the exact next number and the rest of the block is not skipped;
 * otherwise (the RAM copy was lost in a power cut, the outbox is new or older) the start skips to
 * `nextSeq`: a gap, never a reuse.
 */
export interface SequenceFloorRecord {
  /** No number at or above this was ever handed out. */
  nextSeq: number;
  /** True when written by a clean close (`nextSeq` is then exact, not a reservation). */
  clean: boolean;
  /** The run (one open of the outbox) that wrote it; absent in files of earlier releases. */
  session?: string;
}

export class SequenceFloorError extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(
      `sequence floor ${file} is unreadable (${detail}): it records the sequence numbers already used by this device. If the outbox beside it is intact, delete ${basename(file)} and start again (the outbox's own counter is then used); otherwise restore it from a backup`,
    );
    this.name = 'SequenceFloorError';
  }
}

/** The record, or null when the file does not exist. Anything unreadable is an error, never 0. */
export function readSequenceFloor(file: string): SequenceFloorRecord | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return null;
    throw new SequenceFloorError(file, (err as Error).message);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new SequenceFloorError(file, 'not JSON');
  }
  const r = parsed as Partial<SequenceFloorRecord> | null;
  if (
    typeof r !== 'object' ||
    r === null ||
    !Number.isSafeInteger(r.nextSeq) ||
    (r.nextSeq as number) < 1 ||
    typeof r.clean !== 'boolean' ||
    (r.session !== undefined && typeof r.session !== 'string')
  )
    throw new SequenceFloorError(file, 'not {"nextSeq": a whole number >= 1, "clean": true|false, "session": text (optional)}');
  return { nextSeq: r.nextSeq as number, clean: r.clean, ...(r.session === undefined ? {} : { session: r.session }) };
}

export function writeSequenceFloor(file: string, record: SequenceFloorRecord): void {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(file)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(record)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  // The rename itself must reach the disk before a number of the new block is used.
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
