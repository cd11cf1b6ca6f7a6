import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { OutboxCorruptError, OutboxLockedError, isCorruptionError } from './errors.js';
import { migrate, type MigrationReport, type SchemaExtension } from './schema.js';
import { sqlOf } from './statements.js';

/**
 * Opens the outbox's file on the card: locked for this process alone (a second one gets
 * `OutboxLockedError`), checked (`OutboxCorruptError` rather than a silent new database) and
 * migrated. Apart from the outbox because every way it can fail maps to one error the caller
 * acts on, and none of that is the outbox's day-to-day work.
 */
export function openCardDatabase(file: string, schemas: readonly SchemaExtension[]): { db: Database.Database } & MigrationReport {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: 0 });
  } catch (err) {
    throw isCorruptionError(err) ? new OutboxCorruptError(file, (err as Error).message) : err;
  }
  try {
    // 1 KiB pages: each reading touches a few pages, and every page is rewritten whole in the
    // WAL, so small pages cut the bytes written to the SD card per reading (SD-card wear:
    // docs/design.md "What users of other meters complain about", item 4).
    // Effective only when the database is created.
    db.pragma('page_size = 1024');
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    // Take the exclusive lock now (a write transaction), not at the first append.
    db.exec('BEGIN IMMEDIATE; COMMIT;');
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new OutboxCorruptError(file, `integrity check: ${String(check)}`);
    const report = migrate(db, sqlOf(db), file, schemas);
    db.exec("INSERT OR IGNORE INTO counters VALUES ('synced_gen', 0)");
    return { db, ...report };
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new OutboxLockedError(file);
    if (isCorruptionError(err)) throw new OutboxCorruptError(file, (err as Error).message);
    throw err;
  }
}
