import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { readSequenceFloor, writeSequenceFloor, type SequenceFloorRecord } from '../sequence-floor.js';
import { LOCAL_META, type OutboxSql } from './schema.js';

/**
 * Sequence numbers across opens (outbox.ts header, "Sequence floor" and "Sequence numbers after a
 * stop that was not clean"): the session that names this open, the record in each copy of the
 * database of which session worked on it and where, the choice of the next number at open, and
 * the reservation of blocks in the floor file. Apart from the outbox because it is the one part
 * whose mistakes reuse an eventID.
 */

/**
 * Why numbers were skipped at open:
 * - `ram-copy-lost`: the last session worked on a RAM copy that is gone (power cut, reboot without
 *   a clean stop); what it stored after the last sync is lost, and so are the numbers it used.
 * - `outbox-new`: the database was created (deleted or emptied) while the floor stayed.
 * - `outbox-older`: the database is behind the number recorded at the last clean stop (an older copy).
 * - `unclean-stop`: the last session did not stop cleanly and the database cannot show it holds its
 *   last number (an older copy, a start killed while opening, a floor of an earlier release).
 */
export type SeqGapReason = 'ram-copy-lost' | 'outbox-new' | 'outbox-older' | 'unclean-stop';

/** Which session worked on this copy of the database, and where (see the header). */
export interface LocalMeta {
  session: string | undefined;
  working: string | undefined;
}

export function readLocalMeta(db: Database.Database): LocalMeta {
  const rows = db.prepare(`SELECT name, value FROM ${LOCAL_META}`).all() as Array<{ name: string; value: string }>;
  const get = (name: string) => rows.find((r) => r.name === name)?.value;
  return { session: get('session'), working: get('working') };
}

export function writeLocalMeta(sql: OutboxSql, session: string, working: 'ram' | 'card', schema = ''): void {
  for (const [name, value] of [
    ['session', session],
    ['working', working],
  ])
    sql.run(
      `INSERT INTO ${schema}${LOCAL_META} (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value`,
      name,
      value,
    );
}

/**
 * The copy taken is the one the last session numbered in, in the same place: its next number is
 * exact, even though that session did not stop cleanly (see the header).
 */
function isExactCopy(floor: SequenceFloorRecord, taken: LocalMeta, place: 'ram' | 'card'): boolean {
  return !floor.clean && floor.session !== undefined && taken.session === floor.session && taken.working === place;
}

function gapReason(floor: SequenceFloorRecord, created: boolean, taken: LocalMeta, tookRamCopy: boolean): SeqGapReason {
  if (!tookRamCopy && created) return 'outbox-new';
  if (floor.clean) return 'outbox-older';
  if (!tookRamCopy && taken.session !== undefined && taken.session === floor.session && taken.working === 'ram') return 'ram-copy-lost';
  return 'unclean-stop';
}

/** The next number at open, and the numbers skipped to reach it (null: none). */
export interface NextSeqDecision {
  next: number;
  raised: { from: number; to: number; reason: SeqGapReason } | null;
}

/**
 * Never hand out a number at or below one already stored, nor below the floor unless the copy
 * taken is the one the last session numbered in (see the header). Pure: the caller reads the
 * database and the floor.
 */
export function decideNextSeq(a: {
  /** The copy's `next_seq` counter. */
  stored: number;
  /** The highest number stored in the copy (null: none). */
  maxStored: number | null;
  floor: SequenceFloorRecord | null;
  /** Which session worked on the copy taken, and where. */
  taken: LocalMeta;
  tookRamCopy: boolean;
  /** The database had no outbox tables. */
  created: boolean;
}): NextSeqDecision {
  const own = Math.max(a.stored, a.maxStored === null ? 1 : a.maxStored + 1);
  const exact = a.floor !== null && isExactCopy(a.floor, a.taken, a.tookRamCopy ? 'ram' : 'card');
  const next = a.floor === null || exact ? own : Math.max(own, a.floor.nextSeq);
  return {
    next,
    raised: next > own ? { from: own, to: next, reason: gapReason(a.floor!, a.created, a.taken, a.tookRamCopy) } : null,
  };
}

/**
 * This open's name, and its reservations in the floor file (sequence-floor.ts): a block is written
 * before its first number is used, the exact next number at a clean close. Without a floor file
 * the database alone keeps the numbers.
 */
export class SequenceReservation {
  /** This open's name in the floor file and in the copy it works on (see the header). */
  readonly session = randomBytes(8).toString('hex');
  readonly #floorFile: string | null;
  readonly #block: number;
  /** Numbers below this are covered by the floor file. */
  #reservedUpTo = 0;

  constructor(floorFile: string | null, block: number) {
    this.#floorFile = floorFile;
    this.#block = block;
  }

  /** The floor as the last session left it; null without a floor file. */
  readFloor(): SequenceFloorRecord | null {
    return this.#floorFile === null ? null : readSequenceFloor(this.#floorFile);
  }

  /** Writes the floor for the block starting at `seq` (before any number of it is used). */
  reserve(seq: number): void {
    if (this.#floorFile === null || seq < this.#reservedUpTo) return;
    writeSequenceFloor(this.#floorFile, { nextSeq: seq + this.#block, clean: false, session: this.session });
    this.#reservedUpTo = seq + this.#block;
  }

  /** A clean close: the floor records the exact next number, so a clean restart leaves no gap. */
  recordCleanStop(nextSeq: number): void {
    if (this.#floorFile !== null) writeSequenceFloor(this.#floorFile, { nextSeq, clean: true, session: this.session });
  }
}
