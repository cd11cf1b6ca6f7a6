import type Database from 'better-sqlite3';
import { OutboxTooNewError } from './errors.js';

/**
 * The outbox's schema and its migrations (`PRAGMA user_version`), and the user's own tables kept
 * in the same database (`SchemaExtension`, versions per name in `schema_versions`). Apart from the
 * outbox so that the list of versions reads as one piece, and because it is applied to both the
 * card's file and the RAM copy (staging.ts).
 */

/** The narrow view of the database that `transaction()` and migrations get: statements, no handle. */
export interface OutboxSql {
  run(sql: string, ...params: unknown[]): { changes: number };
  get<T>(sql: string, ...params: unknown[]): T | undefined;
  all<T>(sql: string, ...params: unknown[]): T[];
  exec(sql: string): void;
}

/** A migration: SQL text, or a function for changes that need values (it gets the transaction). */
export type Migration = string | ((sql: OutboxSql) => void);

/** A named set of tables kept in the outbox database by its user (the backend's totals). */
export interface SchemaExtension {
  name: string;
  /** Applied in order, once each; the version reached is recorded per name. Never reorder or edit. */
  migrations: readonly Migration[];
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
export const LOCAL_META = 'local_meta';

/** What the migrations found: no outbox tables before (a new, deleted or emptied file), and the version then. */
export interface MigrationReport {
  created: boolean;
  /** Schema version before migrations (0: created or older than versioning). */
  fromVersion: number;
}

/**
 * Applies the outbox's migrations (user_version) and each extension's (schema_versions) to `db`,
 * in one transaction; `sql` runs on the same connection. `file` names the outbox in errors.
 */
export function migrate(db: Database.Database, sql: OutboxSql, file: string, schemas: readonly SchemaExtension[]): MigrationReport {
  const fromVersion = db.pragma('user_version', { simple: true }) as number;
  const hadTables = db.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'messages'").get() as {
    n: number;
  };
  if (fromVersion > MIGRATIONS.length)
    throw new OutboxTooNewError(file, `schema version ${fromVersion}, this release knows ${MIGRATIONS.length}`);
  const apply = (m: Migration): void => {
    if (typeof m === 'string') db.exec(m);
    else m(sql);
  };
  db.transaction(() => {
    for (let v = fromVersion; v < MIGRATIONS.length; v++) apply(MIGRATIONS[v]!);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
    for (const ext of schemas) {
      const row = sql.get<{ version: number }>('SELECT version FROM schema_versions WHERE name = ?', ext.name);
      const at = row?.version ?? 0;
      if (at > ext.migrations.length)
        throw new OutboxTooNewError(file, `${ext.name} tables at version ${at}, this release knows ${ext.migrations.length}`);
      for (let v = at; v < ext.migrations.length; v++) apply(ext.migrations[v]!);
      sql.run(
        'INSERT INTO schema_versions (name, version) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET version = excluded.version',
        ext.name,
        ext.migrations.length,
      );
    }
  })();
  return { created: hadTables.n === 0, fromVersion };
}
