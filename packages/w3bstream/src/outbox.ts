import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { readSequenceFloor, writeSequenceFloor, type SequenceFloorRecord } from './sequence-floor.js';

/**
 * The durable outbox (docs/design.md "Never losing a reading"): every signed message gets the next
 * per-device sequence number and is committed to SQLite before the first delivery attempt.
 *
 * - Sequence numbers: a counter row in the same database, advanced in the same transaction as
 *   the insert (what AUTOINCREMENT does with sqlite_sequence, without its extra B-tree). A number
 *   is never reused: not after deletes (delivered, rejected or dropped rows), not after reopening,
 *   not after kill -9 or a power cut, because the row and the counter commit or vanish together.
 * - Journal: WAL. kill -9 at any point leaves the last committed state; a torn write is rolled
 *   back by the WAL checksums, never half-applied.
 * - synchronous=FULL for appends: the commit waits until the WAL is on the disk, so a reading the
 *   outbox has acknowledged survives a power cut too. NORMAL would survive kill -9 but could lose
 *   the last few appends on power loss, which "stored durably before delivery" rules out.
 *   Removals (delivered/rejected) commit with NORMAL: losing one to a power cut only means one
 *   more delivery with the same eventID (at least once), never a lost reading, and it halves the
 *   cost of draining a backlog.
 * - locking_mode=EXCLUSIVE: a second process on the same file is refused (`OutboxLockedError`)
 *   instead of interleaving sequence numbers.
 * - Bounds: at most `maxCount` messages, and the head of the queue is dropped while it is older
 *   than `maxAgeMs`. Age is *measured* time, not the wall clock: a persistent counter advanced by
 *   the monotonic clock while the outbox is open, so a step of the system clock (NTP after a boot
 *   without a real-time clock, `date -s`) can never make a seconds-old reading look 40 days old.
 *   Time while the meter is off is not counted: a reading is kept longer, never dropped early.
 *   The oldest go first; every drop is counted in the database (`droppedTotal()`) and returned by
 *   `append`, never silent.
 * - Sequence floor (`sequenceFloorFile`, see sequence-floor.ts): numbers also never go back when
 *   the database itself is deleted, emptied, truncated or replaced by an older copy.
 * - Sequence numbers after a stop that was not clean: numbers stay contiguous when nothing was lost.
 *   Each open is a session (a random name) written into the floor and into the copy it works on
 *   (`local_meta`, a table that is never copied between the RAM copy and the card): `working` =
 *   `ram` or `card`. The next open trusts the next number of the copy it takes when that copy is
 *   the one the last session worked on (same session name, same place): the RAM copy after kill -9
 *   or a crash, the card's file when the session worked on it directly (no RAM copy, or a long
 *   backlog; every commit there is durable). Otherwise it continues above the floor's reservation
 *   and reports the skipped numbers (`openReport.seqRaised`, counted in `skipped`): the RAM copy
 *   was lost with what it held since the last sync (a power cut), or the outbox is new or older.
 *   The card is marked `working = ram` durably before a RAM copy hands out a number the card does
 *   not have. Not covered: a copy of the card's file taken while that very session ran and put
 *   back after it crashed, before the next start (it carries the session's name).
 * - Appending never fails after its commit: a reading is stored (numbered, counted) exactly once or
 *   not at all, whatever fails after (a sync to a full card: `append` returns `syncError`). Strict
 *   mode (`syncEveryAppend`) hands the publisher only messages that are on the card (`peek`).
 * - Schema: `PRAGMA user_version` and the migration list below; the backend keeps its own tables
 *   in the same database through `schemas` (migrations) and `transaction()` (no handle is shared).
 * - Staging in RAM (`stagingFile`, on a tmpfs such as /run): every operation (append, delivery,
 *   the backend's totals) commits to a copy of the database in RAM, and `sync()` copies what
 *   changed to the file on the card in one transaction (synchronous=FULL). A process crash
 *   (kill -9) loses nothing: the RAM copy is a file, it outlives the process, and the next open
 *   takes it when it is at least as new as the card's (the `synced_gen` counter). A power cut
 *   loses what changed since the last `sync()`, never more; sequence numbers still never go back
 *   (the floor is reserved on the card before a number is used). Readings delivered between two
 *   syncs never reach the card at all. Without `stagingFile` every append is durable at once.
 * - Corruption (SQLite says the file is malformed or not a database) is `OutboxCorruptError`,
 *   never a silent new database: the caller stops and tells the user how to salvage it.
 */
export interface OutboxMessage {
  seq: number;
  body: string;
  createdAtMs: number;
  /** Delivery attempts that did not remove it (failed, or stopped), as counted by `noteAttempt`. */
  attempts: number;
}

/** A migration: SQL text, or a function for changes that need values (it gets the transaction). */
export type Migration = string | ((sql: OutboxSql) => void);

/** A named set of tables kept in the outbox database by its user (the backend's totals). */
export interface SchemaExtension {
  name: string;
  /** Applied in order, once each; the version reached is recorded per name. Never reorder or edit. */
  migrations: readonly Migration[];
}

export interface OutboxOptions {
  /** Most messages kept (default 1,000,000: > 57 days of 5 s readings). */
  maxCount?: number;
  /** Oldest message kept, in measured time (default 30 days). */
  maxAgeMs?: number;
  /** Wall clock in ms, for `createdAtMs` only. */
  now?: () => number;
  /** Monotonic clock in ms (default `performance.now`), for the age bound. */
  monotonicNow?: () => number;
  /** The sequence floor file (beside the device key). Without it, the database alone keeps numbers. */
  sequenceFloorFile?: string;
  /** Numbers reserved per floor write (default 100). */
  sequenceBlock?: number;
  /** The user's own tables, created and migrated at open in the same database. */
  schemas?: readonly SchemaExtension[];
  /**
   * A RAM copy of the database (a path on a tmpfs, e.g. /run/power-meter/outbox.sqlite): commits
   * go there, and reach `file` only at `sync()` (see the header). Removed after a clean close.
   */
  stagingFile?: string;
  /**
   * With `stagingFile`: sync after every append, before anyone is told of it (strict mode: an
   * acknowledged message is on the card, as without staging). The RAM copy is still the one
   * the process works on, so a crash's copy is taken over whatever the mode.
   */
  syncEveryAppend?: boolean;
  /**
   * With `stagingFile`: the most messages waiting in the RAM copy (default 2,880: four hours of
   * 5 s readings, about 1.5 MB). A longer outage would fill a small tmpfs (/run is a tenth of the
   * RAM), so beyond this the outbox works on the card's file directly, every append durable at
   * once, until the backlog is down to a tenth of it; then it stages again.
   */
  stagingMaxWaiting?: number;
}

export interface OutboxStats {
  waiting: number;
  /** Dropped because the outbox was full or too old, since the database was created. */
  dropped: number;
  /** Delivered but refused by the applet (counted, not retried). */
  rejected: number;
  /** Delivered, but no applet handled the eventType (`results: null`). */
  unhandled: number;
  delivered: number;
  /** The sequence number the next append gets. */
  nextSeq: number;
  /** Messages stored (signed readings), since the database was created. */
  appended: number;
  /**
   * Sequence numbers skipped since the database was created: never given to a stored message
   * (the readings of a RAM copy lost in a power cut, a lost or older outbox, the unused rest of
   * the reserved block). `nextSeq - 1 = appended + skipped` for a database numbered from 1.
   */
  skipped: number;
}

/** What `open` found, for the caller to log and show. */
export interface OutboxOpenReport {
  /** The database had no outbox tables (a new, deleted or emptied file). */
  created: boolean;
  /**
   * Set when the sequence floor raised the next number: numbers `from` to `to - 1` are skipped
   * (see the header), and why.
   */
  seqRaised: { from: number; to: number; reason: SeqGapReason } | null;
  /** Schema version before migrations (0: created or older than versioning). */
  fromVersion: number;
}

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

/** What `append` did: the number, the body stored, drops, and a sync that failed after the commit. */
export interface AppendResult {
  seq: number;
  body: string;
  dropped: number;
  /**
   * With `syncEveryAppend`: the sync after the commit failed (a full or failing card). The message
   * is stored (in the RAM copy) and counted; it is handed to the publisher once a sync succeeds.
   */
  syncError: Error | null;
}

export type DeliveryOutcome = 'delivered' | 'rejected' | 'unhandled';

/** The narrow view of the database that `transaction()` and migrations get: statements, no handle. */
export interface OutboxSql {
  run(sql: string, ...params: unknown[]): { changes: number };
  get<T>(sql: string, ...params: unknown[]): T | undefined;
  all<T>(sql: string, ...params: unknown[]): T[];
  exec(sql: string): void;
}

export class OutboxOptionError extends RangeError {
  constructor(name: string, value: unknown, allowed: string) {
    super(`outbox option ${name}=${String(value)} is invalid: ${allowed}`);
    this.name = 'OutboxOptionError';
  }
}

export class OutboxLockedError extends Error {
  constructor(readonly file: string) {
    super(
      `outbox ${file} is in use by another process: another program holds it (a meter already running on this data directory); stop it first`,
    );
    this.name = 'OutboxLockedError';
  }
}

/**
 * The database file is damaged (SQLite: malformed, not a database, integrity check failed). The
 * message names the file and what is wrong; the application adds how to salvage it.
 */
export class OutboxCorruptError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`outbox ${file} is damaged: ${detail}`);
    this.name = 'OutboxCorruptError';
  }
}

/** The database was written by a newer release (a schema this one does not know): it is left as is. */
export class OutboxTooNewError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`outbox ${file} was written by a newer release (${detail}): install that release again; this one does not change the file`);
    this.name = 'OutboxTooNewError';
  }
}

/** True for SQLite's "the file is damaged" errors. */
export function isCorruptionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^SQLITE_(CORRUPT|NOTADB)/.test(code);
}

/**
 * The outbox's own schema, one entry per `user_version`. Entry 1 is the schema of the first
 * release (written with IF NOT EXISTS, so a database from before versioning is adopted as is).
 */
const MIGRATIONS: readonly Migration[] = [
  `CREATE TABLE IF NOT EXISTS messages (
     seq INTEGER PRIMARY KEY,
     body TEXT NOT NULL,
     created_ms INTEGER NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0
   );
   CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
   INSERT OR IGNORE INTO counters VALUES ('next_seq', 1), ('dropped', 0), ('rejected', 0), ('delivered', 0), ('waiting', 0);`,
  // 2: measured age (see the header) and the unhandled count. Rows from before get a measured
  // creation time from their wall-clock age at the upgrade, the best estimate there is.
  (sql) => {
    sql.exec(`ALTER TABLE messages ADD COLUMN created_measured_ms INTEGER NOT NULL DEFAULT 0;
      INSERT OR IGNORE INTO counters VALUES ('measured_ms', 0), ('unhandled', 0);
      CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL);`);
    sql.run('UPDATE messages SET created_measured_ms = -MAX(0, ? - created_ms)', Date.now());
  },
  // 3: honest counters (appended, skipped; for an existing database every number used so far
  // counts as appended) and the values that belong to one copy of the database (see the header).
  `INSERT OR IGNORE INTO counters SELECT 'appended', value - 1 FROM counters WHERE name = 'next_seq';
   INSERT OR IGNORE INTO counters VALUES ('skipped', 0);
   CREATE TABLE IF NOT EXISTS local_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);`,
];

/** Never copied between the RAM copy and the card: it says which copy a session works on. */
const LOCAL_META = 'local_meta';

type Row = { seq: number; body: string; created_ms: number; attempts: number };

export class Outbox {
  /** What open found (new database, sequence raised by the floor, schema version). */
  readonly openReport: OutboxOpenReport;
  #db: Database.Database;
  /** The connection to the file on the card when staging (the RAM copy is attached to it as `ram`). */
  readonly #disk: Database.Database | null = null;
  /** The RAM copy while staging (then `#db` is it); null when working on the card directly. */
  #ram: Database.Database | null = null;
  private readonly stagingMaxWaiting: number;
  private readonly schemas: readonly SchemaExtension[];
  private readonly stagingFile: string | null;
  /** Set by `restore()`: the next sync copies every message, not only the new ones. */
  private fullSync = false;
  private readonly syncEveryAppend: boolean;
  private readonly maxCount: number;
  private readonly maxAgeMs: number;
  private readonly nowMs: () => number;
  private readonly monoNow: () => number;
  private readonly measuredBase: number;
  private readonly monoAtOpen: number;
  private readonly floorFile: string | null;
  private readonly block: number;
  /** Numbers below this are covered by the floor file. */
  private reservedUpTo = 0;
  /** This open's name in the floor file and in the copy it works on (see the header). */
  private readonly session = randomBytes(8).toString('hex');
  /** Strict mode: messages below this number are on the card (or gone); only those are peeked. */
  private syncedNext = 0;
  private stmts: Statements;
  private readonly cache = new Map<string, Database.Statement>();
  private readonly listeners = new Set<() => void>();
  private readonly sql: OutboxSql;

  private constructor(
    readonly file: string,
    opts: OutboxOptions,
  ) {
    this.maxCount = opts.maxCount ?? 1_000_000;
    this.maxAgeMs = opts.maxAgeMs ?? 30 * 86_400_000;
    this.block = opts.sequenceBlock ?? 100;
    if (!Number.isSafeInteger(this.maxCount) || this.maxCount < 1)
      throw new OutboxOptionError('maxCount', opts.maxCount, 'a whole number >= 1');
    if (!(this.maxAgeMs > 0) || !Number.isFinite(this.maxAgeMs))
      throw new OutboxOptionError('maxAgeMs', opts.maxAgeMs, 'a duration > 0 ms');
    if (!Number.isSafeInteger(this.block) || this.block < 1)
      throw new OutboxOptionError('sequenceBlock', opts.sequenceBlock, 'a whole number >= 1');
    this.nowMs = opts.now ?? Date.now;
    this.monoNow = opts.monotonicNow ?? (() => performance.now());
    this.floorFile = opts.sequenceFloorFile ?? null;
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.sql = {
      run: (text, ...params) => ({ changes: this.statement(text).run(...params).changes }),
      get: <T>(text: string, ...params: unknown[]) => this.statement(text).get(...params) as T | undefined,
      all: <T>(text: string, ...params: unknown[]) => this.statement(text).all(...params) as T[],
      exec: (text) => void this.#db.exec(text),
    };
    let db: Database.Database;
    try {
      db = new Database(file, { timeout: 0 });
    } catch (err) {
      throw isCorruptionError(err) ? new OutboxCorruptError(file, (err as Error).message) : err;
    }
    this.#db = db;
    try {
      // 1 KiB pages: each reading touches a few pages, and every page is rewritten whole in the
      // WAL, so small pages cut the bytes written to the SD card per reading (SD-card wear:
      // docs/design.md "What users of other meters complain about", item 4).
      // Effective only when the database is created.
      this.#db.pragma('page_size = 1024');
      this.#db.pragma('locking_mode = EXCLUSIVE');
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = FULL');
      // Take the exclusive lock now (a write transaction), not at the first append.
      this.#db.exec('BEGIN IMMEDIATE; COMMIT;');
      const check = this.#db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new OutboxCorruptError(file, `integrity check: ${String(check)}`);
      this.openReport = this.migrate(opts.schemas ?? []);
      this.#db.exec("INSERT OR IGNORE INTO counters VALUES ('synced_gen', 0)");
    } catch (err) {
      this.#db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new OutboxLockedError(file);
      if (isCorruptionError(err)) throw new OutboxCorruptError(file, (err as Error).message);
      throw err;
    }
    this.stagingFile = opts.stagingFile ?? null;
    this.syncEveryAppend = opts.syncEveryAppend === true;
    this.stagingMaxWaiting = opts.stagingMaxWaiting ?? 2880;
    this.schemas = opts.schemas ?? [];
    if (!Number.isSafeInteger(this.stagingMaxWaiting) || this.stagingMaxWaiting < 1) {
      this.#db.close();
      throw new OutboxOptionError('stagingMaxWaiting', opts.stagingMaxWaiting, 'a whole number >= 1');
    }
    // Which copy the last session worked on, as the card says (read before this session marks it).
    const cardMeta = readLocalMeta(this.#db);
    let tookRamCopy = false;
    if (this.stagingFile !== null) {
      const disk = this.#db;
      this.#disk = disk;
      try {
        const staged = this.openStaging(disk, this.stagingFile, false);
        this.#ram = staged?.db ?? null;
        tookRamCopy = staged?.taken === true;
      } catch (err) {
        disk.close();
        throw err;
      }
      if (this.#ram !== null) this.#db = this.#ram;
    }
    this.stmts = prepareStatements(this.#db);
    this.measuredBase = this.stmts.counter.get('measured_ms')!.value;
    this.monoAtOpen = this.monoNow();
    let seqRaised: OutboxOpenReport['seqRaised'] = null;
    try {
      // The copy this session takes: a RAM copy left by the last session knows its own state;
      // a fresh copy of the card (or the card itself) is what the card says.
      const taken = tookRamCopy ? readLocalMeta(this.#db) : cardMeta;
      this.#db.transaction(() => {
        // The waiting counter saves a COUNT(*) (a full scan in SQLite) on every append. Recount once
        // at open so that rows removed behind our back (a user pruning the table) cannot skew it.
        this.stmts.set.run(this.stmts.count.get()!.n, 'waiting');
        // Never hand out a number at or below one already stored, nor below the floor unless the
        // copy taken is the one the last session numbered in (see the header).
        const max = this.stmts.maxSeq.get()!.m;
        const stored = this.stmts.counter.get('next_seq')!.value;
        const own = Math.max(stored, max === null ? 1 : max + 1);
        const floor = this.floorFile === null ? null : readSequenceFloor(this.floorFile);
        const exact = floor !== null && isExactCopy(floor, taken, tookRamCopy ? 'ram' : 'card');
        const next = floor === null || exact ? own : Math.max(own, floor.nextSeq);
        if (next !== stored) this.stmts.set.run(next, 'next_seq');
        if (next > own) {
          seqRaised = { from: own, to: next, reason: gapReason(floor!, this.openReport.created, taken, tookRamCopy) };
          this.stmts.bump.run(next - own, 'skipped');
        }
        writeLocalMeta(this.sql, this.session, this.#ram === null ? 'card' : 'ram');
        // Reserve the first block before the first number of it can be handed out.
        this.reserve(next);
      })();
      // The card says durably that a RAM copy may hold more than it does, before a number is used.
      if (this.#ram !== null) this.markCard('ram');
    } catch (err) {
      this.#ram?.close();
      (this.#disk ?? this.#db).close();
      throw err;
    }
    this.openReport = { ...this.openReport, seqRaised };
    // The card now holds what the RAM copy holds (raised numbers, reserved block included).
    this.sync();
  }

  /** Records on the card which copy this session works on (a durable commit on the card). */
  private markCard(working: 'ram' | 'card'): void {
    const disk = this.#disk!;
    disk.transaction(() =>
      writeLocalMeta(
        {
          run: (text, ...params) => ({ changes: disk.prepare(text).run(...params).changes }),
          get: () => undefined,
          all: () => [],
          exec: (text) => void disk.exec(text),
        },
        this.session,
        working,
        'main.',
      ),
    )();
  }

  /**
   * Opens the RAM copy: the one left by an earlier process of this boot when it is at least as new
   * as the card's file (kill -9, a crash, a restart), else a fresh copy of the card's file (after
   * a reboot or power cut /run is empty). Attaches it to the card's connection for `sync()`.
   * Null (work on the card) when there is no copy and the card's backlog is over the bound.
   */
  private openStaging(disk: Database.Database, staging: string, resuming: boolean): { db: Database.Database; taken: boolean } | null {
    const schemas = this.schemas;
    const counter = (name: string) => (disk.prepare('SELECT value FROM counters WHERE name = ?').get(name) as { value: number }).value;
    const diskGen = counter('synced_gen');
    mkdirSync(dirname(staging), { recursive: true, mode: 0o700 });
    let ram: Database.Database | null = null;
    let taken = false;
    if (existsSync(staging)) {
      try {
        ram = new Database(staging, { timeout: 0 });
        const check = ram.pragma('quick_check', { simple: true });
        const gen = ram.prepare("SELECT value FROM counters WHERE name = 'synced_gen'").get() as { value: number } | undefined;
        if (check !== 'ok' || gen === undefined || gen.value < diskGen) {
          ram.close();
          ram = null;
        } else taken = true;
      } catch {
        ram?.close();
        ram = null;
      }
    }
    if (ram === null) {
      if (!resuming && counter('waiting') > this.stagingMaxWaiting) return null;
      removeStaging(staging);
      // VACUUM INTO writes a consistent copy of the card's database (its page size too).
      disk.prepare('VACUUM INTO ?').run(staging);
      ram = new Database(staging, { timeout: 0 });
    }
    try {
      // RAM: nothing to wait for; WAL so that a kill -9 mid-commit leaves the last commit.
      ram.pragma('journal_mode = WAL');
      ram.pragma('synchronous = OFF');
      const db = this.#db;
      this.#db = ram;
      // Statements are cached per connection: none of the card's may be used on the RAM copy.
      this.cache.clear();
      try {
        this.migrate(schemas);
      } finally {
        this.#db = db;
        this.cache.clear();
      }
      // The card's file stays locked exclusively (one process per outbox: in WAL mode with the
      // lock taken before the first access, SQLite keeps it whatever locking_mode says later).
      // The RAM copy is written by the other connection, so it is attached under normal locks.
      disk.pragma('locking_mode = NORMAL');
      disk.prepare('ATTACH DATABASE ? AS ram').run(staging);
      disk.pragma('main.locking_mode = EXCLUSIVE');
    } catch (err) {
      ram.close();
      throw err;
    }
    return { db: ram, taken };
  }

  /** True when commits go to a RAM copy and reach the card at `sync()`. */
  get staged(): boolean {
    return this.#ram !== null;
  }

  /** The backlog outgrew the RAM copy: everything is on the card (just synced); work there. */
  private unstage(): void {
    const disk = this.#disk!;
    // The card is complete now, and from here on every number is committed to it first.
    this.markCard('card');
    disk.exec('DETACH DATABASE ram');
    this.#ram!.close();
    this.#ram = null;
    removeStaging(this.stagingFile!);
    this.#db = disk;
    this.cache.clear();
    this.stmts = prepareStatements(disk);
  }

  /** The backlog drained: stage in RAM again (a fresh copy of the card's file). */
  private restage(): void {
    // Durably on the card before the RAM copy hands out a number the card will not have.
    this.markCard('ram');
    const ram = this.openStaging(this.#disk!, this.stagingFile!, true)!.db;
    const sql: OutboxSql = {
      run: (text, ...params) => ({ changes: ram.prepare(text).run(...params).changes }),
      get: () => undefined,
      all: () => [],
      exec: (text) => void ram.exec(text),
    };
    writeLocalMeta(sql, this.session, 'ram');
    // The card holds every message now (the copy was just made from it): all of them may go out.
    this.syncedNext = (ram.prepare("SELECT value FROM counters WHERE name = 'next_seq'").get() as { value: number }).value;
    this.#ram = ram;
    this.#db = ram;
    this.cache.clear();
    this.stmts = prepareStatements(ram);
  }

  /**
   * Copies what changed in the RAM copy to the card in one durable transaction: messages stored
   * since the last sync, removals, and every other table (counters, the backend's totals; all
   * small). A no-op without staging (every commit is durable already).
   */
  sync(): void {
    const disk = this.#disk;
    if (disk === null || !this.#db.open) return;
    if (this.#ram === null) {
      if (this.waiting() <= this.stagingMaxWaiting / 10) this.restage();
      return;
    }
    const gen = this.stmts.counter.get('synced_gen')!.value + 1;
    this.stmts.set.run(gen, 'synced_gen');
    const nextOnCard = this.stmts.counter.get('next_seq')!.value;
    const full = this.fullSync;
    disk.transaction(() => {
      const maxOnDisk = (disk.prepare('SELECT MAX(seq) AS m FROM main.messages').get() as { m: number | null }).m ?? 0;
      // Delivered, rejected and dropped messages: gone from the RAM copy.
      disk.exec('DELETE FROM main.messages WHERE seq NOT IN (SELECT seq FROM ram.messages)');
      disk
        .prepare('INSERT OR IGNORE INTO main.messages SELECT * FROM ram.messages WHERE seq > ?')
        .run(full ? Number.MIN_SAFE_INTEGER : maxOnDisk);
      const tables = disk
        .prepare(
          "SELECT name FROM ram.sqlite_master WHERE type = 'table' AND name <> 'messages' AND name <> ? AND name NOT LIKE 'sqlite_stat%'",
        )
        .all(LOCAL_META) as Array<{ name: string }>;
      for (const { name } of tables) {
        const q = `"${name.replaceAll('"', '""')}"`;
        // Unchanged tables are not rewritten: every page written is a page on the card.
        const differs = disk
          .prepare(
            `SELECT 1 FROM (SELECT * FROM ram.${q} EXCEPT SELECT * FROM main.${q}) UNION ALL SELECT 1 FROM (SELECT * FROM main.${q} EXCEPT SELECT * FROM ram.${q}) LIMIT 1`,
          )
          .get();
        if (differs !== undefined) disk.exec(`DELETE FROM main.${q}; INSERT INTO main.${q} SELECT * FROM ram.${q};`);
      }
    })();
    this.fullSync = false;
    const gated = this.syncEveryAppend && nextOnCard > this.syncedNext;
    this.syncedNext = nextOnCard;
    if (this.waiting() > this.stagingMaxWaiting) this.unstage();
    // Strict mode: messages the publisher could not see until now are on the card.
    if (gated) this.notifyAppend();
  }

  private notifyAppend(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch {
        // A listener's failure is its own: the message is stored whatever it does.
      }
    }
  }

  private readonly diskCache = new Map<string, Database.Statement>();
  private diskStatement(disk: Database.Database, text: string): Database.Statement {
    let st = this.diskCache.get(text);
    if (st === undefined) {
      st = disk.prepare(text);
      this.diskCache.set(text, st);
    }
    return st;
  }

  /** Reads from the card's file (what survives a power cut); the same as `transaction` without staging. */
  durable<T>(fn: (sql: OutboxSql) => T): T {
    const disk = this.#disk;
    if (disk === null || this.#ram === null) return this.transaction(fn);
    const sql: OutboxSql = {
      run: () => {
        throw new Error('durable(): read only');
      },
      get: <U>(text: string, ...params: unknown[]) => this.diskStatement(disk, text).get(...params) as U | undefined,
      all: <U>(text: string, ...params: unknown[]) => this.diskStatement(disk, text).all(...params) as U[],
      exec: () => {
        throw new Error('durable(): read only');
      },
    };
    return fn(sql);
  }

  static open(file: string, opts: OutboxOptions = {}): Outbox {
    return new Outbox(file, opts);
  }

  /** Applies the outbox's migrations (user_version) and each extension's (schema_versions). */
  private migrate(schemas: readonly SchemaExtension[]): OutboxOpenReport {
    const fromVersion = this.#db.pragma('user_version', { simple: true }) as number;
    const hadTables = this.#db.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'messages'").get() as {
      n: number;
    };
    if (fromVersion > MIGRATIONS.length)
      throw new OutboxTooNewError(this.file, `schema version ${fromVersion}, this release knows ${MIGRATIONS.length}`);
    this.#db.transaction(() => {
      for (let v = fromVersion; v < MIGRATIONS.length; v++) this.apply(MIGRATIONS[v]!);
      this.#db.pragma(`user_version = ${MIGRATIONS.length}`);
      for (const ext of schemas) {
        const row = this.sql.get<{ version: number }>('SELECT version FROM schema_versions WHERE name = ?', ext.name);
        const at = row?.version ?? 0;
        if (at > ext.migrations.length)
          throw new OutboxTooNewError(this.file, `${ext.name} tables at version ${at}, this release knows ${ext.migrations.length}`);
        for (let v = at; v < ext.migrations.length; v++) this.apply(ext.migrations[v]!);
        this.sql.run(
          'INSERT INTO schema_versions (name, version) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET version = excluded.version',
          ext.name,
          ext.migrations.length,
        );
      }
    })();
    return { created: hadTables.n === 0, seqRaised: null, fromVersion };
  }

  private apply(m: Migration): void {
    if (typeof m === 'string') this.#db.exec(m);
    else m(this.sql);
  }

  private statement(text: string): Database.Statement {
    let st = this.cache.get(text);
    if (st === undefined) {
      st = this.#db.prepare(text);
      this.cache.set(text, st);
    }
    return st;
  }

  /** Measured time in ms: persistent, advanced only by the monotonic clock while open. */
  measuredNowMs(): number {
    return this.measuredBase + Math.max(0, this.monoNow() - this.monoAtOpen);
  }

  /** Writes the floor for the block starting at `seq` (before any number of it is used). */
  private reserve(seq: number): void {
    if (this.floorFile === null || seq < this.reservedUpTo) return;
    writeSequenceFloor(this.floorFile, { nextSeq: seq + this.block, clean: false, session: this.session });
    this.reservedUpTo = seq + this.block;
  }

  /**
   * Runs `fn` in one transaction with the outbox (nested inside `append`'s when called from its
   * `inTransaction`): the backend's own tables change exactly when a message is stored. Durable
   * (synchronous=FULL) when the outermost transaction commits.
   */
  transaction<T>(fn: (sql: OutboxSql) => T): T {
    return this.#db.inTransaction ? fn(this.sql) : this.#db.transaction(() => fn(this.sql))();
  }

  /**
   * Stores a message under the next sequence number, in one transaction: the number is taken (and
   * reserved in the floor), `body` is made (a function gets the number, so it can be signed into
   * the message: a W3bstream 2 task's nonce, the extended reading's seq), stored, and `inTransaction` runs with the same number (the backend counts the
   * window's energy there, so a window is counted exactly when its message is stored). Anything
   * failing up to the commit rolls all of it back: nothing is numbered, stored or counted, and the
   * caller may try again. Nothing fails after the commit: a strict-mode sync that fails is
   * returned as `syncError` (the message waits in the RAM copy until a sync succeeds), never
   * thrown, so a caller never stores the same thing twice. `dropped`: how many of the oldest
   * messages the bounds removed to make room (also counted).
   */
  append(
    body: string | ((seq: number) => string),
    opts: { createdAtMs?: number; inTransaction?: (seq: number, sql: OutboxSql) => void } = {},
  ): AppendResult {
    const createdAtMs = opts.createdAtMs ?? this.nowMs();
    if (!Number.isFinite(createdAtMs)) throw new OutboxOptionError('createdAtMs', createdAtMs, 'a time in ms');
    const result = this.transaction(() => {
      const seq = this.stmts.counter.get('next_seq')!.value;
      this.reserve(seq);
      const text = typeof body === 'function' ? body(seq) : body;
      const measured = Math.round(this.measuredNowMs());
      this.stmts.bump.run(1, 'next_seq');
      this.stmts.insert.run(seq, text, Math.round(createdAtMs), measured);
      this.stmts.bump.run(1, 'waiting');
      this.stmts.bump.run(1, 'appended');
      this.stmts.set.run(measured, 'measured_ms');
      opts.inTransaction?.(seq, this.sql);
      const dropped = this.enforceBounds();
      return { seq, body: text, dropped };
    });
    let syncError: Error | null = null;
    // Inside a caller's transaction the commit is the caller's: it syncs after it (sync()).
    if (this.syncEveryAppend && !this.#db.inTransaction) {
      try {
        this.sync();
      } catch (err) {
        syncError = err instanceof Error ? err : new Error(String(err));
      }
    }
    this.notifyAppend();
    return { ...result, syncError };
  }

  /**
   * Puts salvaged messages back under their own sequence numbers (`power-meter outbox salvage`):
   * the next number becomes larger than all of them. A number already stored is skipped.
   */
  restore(messages: ReadonlyArray<{ seq: number; body: string; createdAtMs: number }>): number {
    return this.transaction((sql) => {
      let restored = 0;
      // Numbers below this were counted as skipped when this database was opened behind the floor.
      const nextBefore = this.stmts.counter.get('next_seq')!.value;
      let refilled = 0;
      const measured = Math.round(this.measuredNowMs());
      for (const m of messages) {
        if (!Number.isSafeInteger(m.seq) || m.seq < 1) continue;
        const inserted = sql.run(
          'INSERT OR IGNORE INTO messages (seq, body, created_ms, created_measured_ms) VALUES (?, ?, ?, ?)',
          m.seq,
          m.body,
          Math.round(m.createdAtMs),
          measured,
        ).changes;
        restored += inserted;
        if (inserted > 0 && m.seq < nextBefore) refilled++;
        if (m.seq >= this.stmts.counter.get('next_seq')!.value) {
          this.reserve(m.seq + 1);
          this.stmts.set.run(m.seq + 1, 'next_seq');
        }
      }
      // A salvaged message is stored in this database again: its number is no longer a hole.
      this.stmts.bump.run(restored, 'appended');
      this.stmts.set.run(Math.max(0, this.stmts.counter.get('skipped')!.value - refilled), 'skipped');
      this.stmts.set.run(this.stmts.count.get()!.n, 'waiting');
      this.fullSync = true;
      return restored;
    });
  }

  /** Applies the age and count bounds now: the oldest go first, and every drop is counted. */
  enforceBounds(): number {
    return this.transaction(() => {
      const cutoff = this.measuredNowMs() - this.maxAgeMs;
      let dropped = 0;
      for (let head = this.stmts.oldestHead.get(); head && head.created_measured_ms < cutoff; head = this.stmts.oldestHead.get()) {
        this.stmts.remove.run(head.seq);
        dropped++;
      }
      const excess = this.stmts.counter.get('waiting')!.value - dropped - this.maxCount;
      if (excess > 0) dropped += this.stmts.dropOldest.run(excess).changes;
      if (dropped > 0) {
        this.stmts.bump.run(dropped, 'dropped');
        this.stmts.bump.run(-dropped, 'waiting');
      }
      return dropped;
    });
  }

  /**
   * The oldest undelivered messages after `afterSeq`, in order. Strict mode (`syncEveryAppend`)
   * while staged: only those on the card (a message whose sync failed waits for the next one).
   */
  peek(limit = 1, afterSeq = 0): OutboxMessage[] {
    const below = this.syncEveryAppend && this.#ram !== null ? this.syncedNext : Number.MAX_SAFE_INTEGER;
    return this.stmts.peek
      .all(afterSeq, below, limit)
      .map((r) => ({ seq: r.seq, body: r.body, createdAtMs: r.created_ms, attempts: r.attempts }));
  }

  /**
   * Counts an attempt that did not deliver the message. The publisher calls it after a failure
   * only, and it commits without waiting for the disk (synchronous=NORMAL): counting every
   * attempt up front with an fsync cost more than the rest of a delivery (a third of the time to
   * drain a day of backlog) and a WAL page per reading on the SD card, for a diagnostic figure.
   */
  noteAttempt(seq: number): void {
    this.relaxed(() => void this.stmts.attempt.run(seq));
  }

  /**
   * Removes a message the node answered: `delivered`, `rejected` (the node took it but the
   * applet refused this message; retrying cannot help) or `unhandled` (the node took it and no
   * applet handled its eventType). Returns false if it was not waiting (already removed, or
   * dropped by the bounds meanwhile).
   */
  markDelivered(seq: number, outcome: DeliveryOutcome = 'delivered'): boolean {
    const remove = (): boolean => {
      if (this.stmts.remove.run(seq).changes === 0) return false;
      this.stmts.bump.run(1, outcome);
      this.stmts.bump.run(-1, 'waiting');
      return true;
    };
    return this.relaxed(() => this.#db.transaction(remove)());
  }

  /**
   * Runs `fn` with synchronous=NORMAL (commits reach the WAL, not yet the disk): for writes whose
   * loss in a power cut is harmless. synchronous cannot change inside a transaction; inside the
   * caller's, the caller's commit decides.
   */
  private relaxed<T>(fn: () => T): T {
    if (this.#db.inTransaction || this.#ram !== null) return fn();
    this.#db.pragma('synchronous = NORMAL');
    try {
      return fn();
    } finally {
      this.#db.pragma('synchronous = FULL');
    }
  }

  /**
   * The waiting messages grouped by what their JSON bodies say (SQLite's JSON functions, one
   * scan): `extract` paths by value, `type` paths by JSON type (null: absent). A body that is not
   * JSON groups with nulls. Oldest group first. For start-up checks of a backlog (which project,
   * which node it was signed for) without reading every body into the process.
   */
  groupWaiting(
    paths: { extract?: readonly string[]; type?: readonly string[] } = {},
  ): Array<{ values: unknown[]; types: Array<string | null>; count: number; firstSeq: number; lastSeq: number }> {
    const extract = paths.extract ?? [];
    const types = paths.type ?? [];
    const cols = [
      ...extract.map((_, i) => `CASE WHEN json_valid(body) THEN json_extract(body, ?) END AS e${i}`),
      ...types.map((_, i) => `CASE WHEN json_valid(body) THEN json_type(body, ?) END AS t${i}`),
    ];
    const keys = [...extract.map((_, i) => `e${i}`), ...types.map((_, i) => `t${i}`)];
    const text = `SELECT ${[...cols, 'COUNT(*) AS n', 'MIN(seq) AS first', 'MAX(seq) AS last'].join(', ')} FROM messages${keys.length > 0 ? ` GROUP BY ${keys.join(', ')}` : ''} ORDER BY first`;
    const rows = this.statement(text).all(...extract, ...types) as Array<Record<string, unknown>>;
    return rows
      .filter((r) => (r.n as number) > 0)
      .map((r) => ({
        values: extract.map((_, i) => r[`e${i}`] ?? null),
        types: types.map((_, i) => (r[`t${i}`] as string | null) ?? null),
        count: r.n as number,
        firstSeq: r.first as number,
        lastSeq: r.last as number,
      }));
  }

  /**
   * Removes waiting messages on the user's word (`power-meter outbox discard`), counted apart from
   * the bounds' drops (counter `discarded`). All of them, or those up to `throughSeq`. Returns how many.
   */
  discard(throughSeq: number = Number.MAX_SAFE_INTEGER): number {
    return this.transaction((sql) => {
      const n = sql.run('DELETE FROM messages WHERE seq <= ?', throughSeq).changes;
      sql.run("INSERT OR IGNORE INTO counters VALUES ('discarded', 0)");
      sql.run("UPDATE counters SET value = value + ? WHERE name = 'discarded'", n);
      this.stmts.bump.run(-n, 'waiting');
      return n;
    });
  }

  /** Messages removed by `discard` since the database was created. */
  discardedTotal(): number {
    return this.transaction((sql) => sql.get<{ value: number }>("SELECT value FROM counters WHERE name = 'discarded'")?.value ?? 0);
  }

  /**
   * Replaces a waiting message by one built for a new sequence number (`build(newSeq)`), keeping
   * its creation time and place in the order relative to the others replaced after it: the old
   * one is removed and the new one appended, in one transaction (a body that carries its number,
   * a W3bstream 2 task's nonce, is signed again for the new one). Returns the new number, or null
   * when `seq` was not waiting.
   */
  replace(seq: number, build: (newSeq: number) => string): number | null {
    return this.transaction((sql) => {
      const row = sql.get<{ created_ms: number; created_measured_ms: number }>(
        'SELECT created_ms, created_measured_ms FROM messages WHERE seq = ?',
        seq,
      );
      if (row === undefined) return null;
      const next = this.stmts.counter.get('next_seq')!.value;
      this.reserve(next);
      this.stmts.bump.run(1, 'next_seq');
      sql.run('DELETE FROM messages WHERE seq = ?', seq);
      this.stmts.insert.run(next, build(next), row.created_ms, row.created_measured_ms);
      // A new signature under a new number: stored, so not a hole (the old number stays its old body's).
      this.stmts.bump.run(1, 'appended');
      return next;
    });
  }

  /** Messages stored and not yet delivered. */
  waiting(): number {
    return this.stmts.counter.get('waiting')!.value;
  }

  /** Messages dropped by the bounds since the database was created. */
  droppedTotal(): number {
    return this.stmts.counter.get('dropped')!.value;
  }

  stats(): OutboxStats {
    const c = (name: string): number => this.stmts.counter.get(name)!.value;
    return {
      waiting: c('waiting'),
      dropped: c('dropped'),
      rejected: c('rejected'),
      unhandled: c('unhandled'),
      delivered: c('delivered'),
      nextSeq: c('next_seq'),
      appended: c('appended'),
      skipped: c('skipped'),
    };
  }

  /** Called after every append (the publisher wakes up). Returns the unsubscribe function. */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Closes the database (idempotent). SQLite checkpoints the WAL into the main file on close. The
   * floor then records the exact next number, so a clean restart leaves no gap in the numbers.
   */
  close(): void {
    this.listeners.clear();
    if (!this.#db.open) return;
    let next: number | null = null;
    let synced = false;
    try {
      this.relaxed(() => void this.stmts.set.run(Math.round(this.measuredNowMs()), 'measured_ms'));
      this.sync();
      synced = true;
      next = this.stmts.counter.get('next_seq')!.value;
    } finally {
      this.#ram?.close();
      (this.#disk ?? this.#db).close();
    }
    // The card holds everything now: the RAM copy is redundant (if the sync failed it is kept,
    // and the next open takes it).
    if (this.#ram !== null && synced) removeStaging(this.stagingFile!);
    if (this.floorFile !== null && next !== null) writeSequenceFloor(this.floorFile, { nextSeq: next, clean: true, session: this.session });
  }
}

/** Which session worked on this copy of the database, and where (see the header). */
interface LocalMeta {
  session: string | undefined;
  working: string | undefined;
}

function readLocalMeta(db: Database.Database): LocalMeta {
  const rows = db.prepare(`SELECT name, value FROM ${LOCAL_META}`).all() as Array<{ name: string; value: string }>;
  const get = (name: string) => rows.find((r) => r.name === name)?.value;
  return { session: get('session'), working: get('working') };
}

function writeLocalMeta(sql: OutboxSql, session: string, working: 'ram' | 'card', schema = ''): void {
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

/** The RAM copy and its WAL files. */
function removeStaging(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
}

/** The outbox's statements, on whichever connection it works on (the RAM copy or the card's file). */
function prepareStatements(db: Database.Database) {
  return {
    counter: db.prepare<[string], { value: number }>('SELECT value FROM counters WHERE name = ?'),
    bump: db.prepare<[number, string]>('UPDATE counters SET value = value + ? WHERE name = ?'),
    set: db.prepare<[number, string]>('UPDATE counters SET value = ? WHERE name = ?'),
    insert: db.prepare<[number, string, number, number]>(
      'INSERT INTO messages (seq, body, created_ms, created_measured_ms) VALUES (?, ?, ?, ?)',
    ),
    count: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM messages'),
    maxSeq: db.prepare<[], { m: number | null }>('SELECT MAX(seq) AS m FROM messages'),
    dropOldest: db.prepare<[number]>('DELETE FROM messages WHERE seq IN (SELECT seq FROM messages ORDER BY seq LIMIT ?)'),
    // The age bound walks from the head in sequence order and stops at the first young message,
    // so it costs O(dropped) per append instead of a full scan of a large backlog.
    oldestHead: db.prepare<[], { seq: number; created_measured_ms: number }>(
      'SELECT seq, created_measured_ms FROM messages ORDER BY seq LIMIT 1',
    ),
    peek: db.prepare<[number, number, number], Row>(
      'SELECT seq, body, created_ms, attempts FROM messages WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?',
    ),
    remove: db.prepare<[number]>('DELETE FROM messages WHERE seq = ?'),
    attempt: db.prepare<[number]>('UPDATE messages SET attempts = attempts + 1 WHERE seq = ?'),
  };
}

type Statements = ReturnType<typeof prepareStatements>;
