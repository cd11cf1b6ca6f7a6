import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { LOCAL_META, migrate, type OutboxSql, type SchemaExtension } from './schema.js';
import { writeLocalMeta } from './sequence.js';
import { sqlOf } from './statements.js';

/**
 * The RAM copy of the outbox (outbox.ts header, "Staging in RAM"): commits go to a copy of the
 * database on a tmpfs, and `copyToCard` puts what changed on the card in one durable transaction,
 * sparing the SD card a write per reading. It owns both connections while staging: the card's
 * file (locked exclusively, with the RAM copy attached as `ram`) and the RAM copy. A long backlog
 * moves the work to the card (`leaveRam`) and a drained one back (`enterRam`); the outbox decides
 * when, and works on `working`.
 */
export class OutboxStaging {
  /** The connection to the file on the card (the RAM copy is attached to it as `ram`). */
  readonly disk: Database.Database;
  /** The RAM copy; null while working on the card directly. */
  #ram: Database.Database | null = null;
  readonly #file: string;
  readonly #cardFile: string;
  readonly #maxWaiting: number;
  readonly #schemas: readonly SchemaExtension[];
  readonly #session: string;
  readonly #diskCache = new Map<string, Database.Statement>();

  private constructor(
    disk: Database.Database,
    o: { file: string; cardFile: string; maxWaiting: number; schemas: readonly SchemaExtension[]; session: string },
  ) {
    this.disk = disk;
    this.#file = o.file;
    this.#cardFile = o.cardFile;
    this.#maxWaiting = o.maxWaiting;
    this.#schemas = o.schemas;
    this.#session = o.session;
  }

  /**
   * Stages the card's database `disk` in `o.file`. `tookRamCopy`: the copy is one an earlier
   * process left (see `#openCopy`), not a fresh copy of the card's file. Closes `disk` if it fails.
   */
  static open(
    disk: Database.Database,
    o: { file: string; cardFile: string; maxWaiting: number; schemas: readonly SchemaExtension[]; session: string },
  ): { staging: OutboxStaging; tookRamCopy: boolean } {
    const staging = new OutboxStaging(disk, o);
    try {
      const staged = staging.#openCopy(false);
      staging.#ram = staged?.db ?? null;
      return { staging, tookRamCopy: staged?.taken === true };
    } catch (err) {
      disk.close();
      throw err;
    }
  }

  /** The most messages waiting in the RAM copy (`stagingMaxWaiting`). */
  get maxWaiting(): number {
    return this.#maxWaiting;
  }

  /** True while commits go to the RAM copy. */
  get inRam(): boolean {
    return this.#ram !== null;
  }

  /** The connection the outbox commits to: the RAM copy, or the card's file while the backlog is long. */
  get working(): Database.Database {
    return this.#ram ?? this.disk;
  }

  /** Records on the card which copy this session works on (a durable commit on the card). */
  markCard(working: 'ram' | 'card'): void {
    const disk = this.disk;
    disk.transaction(() => writeLocalMeta(sqlOf(disk), this.#session, working, 'main.'))();
  }

  /**
   * Opens the RAM copy: the one left by an earlier process of this boot when it is at least as new
   * as the card's file (kill -9, a crash, a restart), else a fresh copy of the card's file (after
   * a reboot or power cut /run is empty). Attaches it to the card's connection for `sync()`.
   * Null (work on the card) when there is no copy and the card's backlog is over the bound.
   */
  #openCopy(resuming: boolean): { db: Database.Database; taken: boolean } | null {
    const disk = this.disk;
    const staging = this.#file;
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
      if (!resuming && counter('waiting') > this.#maxWaiting) return null;
      removeStaging(staging);
      // VACUUM INTO writes a consistent copy of the card's database (its page size too).
      disk.prepare('VACUUM INTO ?').run(staging);
      ram = new Database(staging, { timeout: 0 });
    }
    try {
      // RAM: nothing to wait for; WAL so that a kill -9 mid-commit leaves the last commit.
      ram.pragma('journal_mode = WAL');
      ram.pragma('synchronous = OFF');
      migrate(ram, sqlOf(ram), this.#cardFile, this.#schemas);
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

  /** The backlog outgrew the RAM copy: everything is on the card (just synced); work there. */
  leaveRam(): void {
    const disk = this.disk;
    // The card is complete now, and from here on every number is committed to it first.
    this.markCard('card');
    disk.exec('DETACH DATABASE ram');
    this.#ram!.close();
    this.#ram = null;
    removeStaging(this.#file);
  }

  /**
   * The backlog drained: stage in RAM again (a fresh copy of the card's file). Returns the copy's
   * next number: the card holds every message below it (the copy was just made from it).
   */
  enterRam(): number {
    // Durably on the card before the RAM copy hands out a number the card will not have.
    this.markCard('ram');
    const ram = this.#openCopy(true)!.db;
    writeLocalMeta(sqlOf(ram), this.#session, 'ram');
    this.#ram = ram;
    return (ram.prepare("SELECT value FROM counters WHERE name = 'next_seq'").get() as { value: number }).value;
  }

  /**
   * Copies what changed in the RAM copy to the card in one durable transaction: messages stored
   * since the last sync (all of them when `full`), removals, and every other table (counters, the
   * backend's totals; all small).
   */
  copyToCard(full: boolean): void {
    const disk = this.disk;
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
  }

  /** Read-only statements on the card's file (what survives a power cut). */
  cardReader(): OutboxSql {
    const disk = this.disk;
    return {
      run: () => {
        throw new Error('durable(): read only');
      },
      get: <U>(text: string, ...params: unknown[]) => this.#diskStatement(disk, text).get(...params) as U | undefined,
      all: <U>(text: string, ...params: unknown[]) => this.#diskStatement(disk, text).all(...params) as U[],
      exec: () => {
        throw new Error('durable(): read only');
      },
    };
  }

  #diskStatement(disk: Database.Database, text: string): Database.Statement {
    let st = this.#diskCache.get(text);
    if (st === undefined) {
      st = disk.prepare(text);
      this.#diskCache.set(text, st);
    }
    return st;
  }

  /** Closes both connections (the RAM copy's file stays). */
  close(): void {
    try {
      this.#ram?.close();
    } finally {
      this.disk.close();
    }
  }

  /** The RAM copy and its WAL files (after a clean close: the card holds everything). */
  removeCopy(): void {
    removeStaging(this.#file);
  }
}

/** The RAM copy and its WAL files. */
function removeStaging(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
}
