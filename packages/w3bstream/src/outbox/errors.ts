/**
 * The outbox's errors, apart from the outbox itself so that every part of it (opening, schema,
 * staging) can throw them without importing the whole class.
 */

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
