import type { MessagePort } from 'node:worker_threads';

/** Messages between the main thread and the project database's thread. */
export interface DbInit {
  /** A directory to keep the database in; none = in memory. */
  dataDir?: string;
  /** An empty, initialised data directory (PGlite's dump) to start from instead of running initdb. */
  template?: Uint8Array;
  /** The project's schema, created at start (CREATE … IF NOT EXISTS). */
  ddl: string[];
  schemas: string[];
  databaseName: string;
}

export type DbRequest =
  | { id: number; op: 'applet'; query: Uint8Array; mode: 'query' | 'exec' }
  | { id: number; op: 'attach'; port: MessagePort; signal: SharedArrayBuffer; run: SharedArrayBuffer }
  | { id: number; op: 'query'; sql: string; params?: unknown[] }
  | { id: number; op: 'close' };

export interface DbReply {
  /** 0: the start-up answer. */
  id: number;
  ok: boolean;
  data?: Uint8Array;
  error?: string;
  notes?: string[];
  rows?: Record<string, unknown>[];
}
