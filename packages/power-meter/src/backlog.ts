import { Outbox, readTaskBody, type Identity } from '@power-meter/w3bstream';
import { outboxPaths, stagingFileFor } from './meter.js';
import type { BackendSettings } from './settings.js';
import { METER_SCHEMA, MeterStore } from './store.js';
import { backlogGroups, signReading, signedForSettings, type BacklogGroup, type SignedFor } from './transport.js';

/**
 * `power-meter outbox export | discard | resign`: the ways out of a backlog that the current
 * settings cannot send (signed for another W3bstream generation, node API, project or version),
 * run with the meter stopped (the outbox lock refuses a second opener). Nothing here is automatic:
 * the meter itself only refuses to start and names these.
 */

/** The outbox as the meter opens it (the RAM copy of a crashed run is taken over first). */
function openOutbox(s: Pick<BackendSettings, 'dataDir' | 'runtimeDir'>): Outbox {
  const paths = outboxPaths(s.dataDir);
  return Outbox.open(paths.outbox, { sequenceFloorFile: paths.floor, schemas: [METER_SCHEMA], stagingFile: stagingFileFor(s) });
}

/** What a stored reading says, whatever it was signed for: the power, the time (ms), and the energy total it signed (extended readings). */
export function readingOfBody(body: string): { powerW: number; timestampMs: number; energyWh?: number } | null {
  let data: unknown;
  const task = readTaskBody(body);
  try {
    if (task !== null) data = JSON.parse(task.payload);
    else {
      const o = JSON.parse(body) as { data?: unknown };
      data = typeof o.data === 'string' ? JSON.parse(o.data) : o.data;
    }
  } catch {
    return null;
  }
  const d = data as { sensor_reading?: unknown; timestamp?: unknown; energy_wh?: unknown } | null;
  if (typeof d !== 'object' || d === null || typeof d.sensor_reading !== 'number' || typeof d.timestamp !== 'number') return null;
  // Seconds or milliseconds, as the meter wrote it: no reading is from before 1973 in ms or after 5138 in s.
  const timestampMs = d.timestamp < 1e11 ? d.timestamp * 1000 : d.timestamp;
  return { powerW: d.sensor_reading, timestampMs, ...(typeof d.energy_wh === 'number' ? { energyWh: d.energy_wh } : {}) };
}

export interface BacklogSummary {
  waiting: number;
  groups: BacklogGroup[];
}

export function describeGroup(g: BacklogGroup): string {
  const what = g.signedFor ?? 'an unknown form';
  return g.signedFor === null || g.signedFor === 'w3bstream-v1'
    ? `${g.count} signed for ${what}`
    : `${g.count} signed for ${what}, project ${g.projectId} version ${g.projectVersion || '(default)'}`;
}

/** Writes every waiting reading as one JSON line (`seq`, `createdAtMs`, `signedFor`, `body`); returns the summary. */
export function exportBacklog(s: BackendSettings, write: (line: string) => void): BacklogSummary {
  const outbox = openOutbox(s);
  try {
    const groups = backlogGroups(outbox);
    let after = 0;
    let n = 0;
    for (;;) {
      const page = outbox.peek(500, after);
      if (page.length === 0) break;
      for (const m of page) {
        const reading = readingOfBody(m.body);
        write(
          JSON.stringify({
            seq: m.seq,
            createdAtMs: m.createdAtMs,
            signedFor: signedForOf(m.body),
            powerW: reading?.powerW ?? null,
            timestampMs: reading?.timestampMs ?? null,
            body: m.body,
          }),
        );
        n++;
      }
      after = page.at(-1)!.seq;
    }
    return { waiting: n, groups };
  } finally {
    outbox.close();
  }
}

function signedForOf(body: string): SignedFor | null {
  if (body.startsWith('{"nonce":')) return 'w3bstream-v2 task';
  if (body.startsWith('{"projectID":')) return 'w3bstream-v2 message';
  if (body.startsWith('{"data":')) return 'w3bstream-v1';
  return null;
}

/** The backlog, without changing it. */
export function summarizeBacklog(s: BackendSettings): BacklogSummary {
  const outbox = openOutbox(s);
  try {
    return { waiting: outbox.waiting(), groups: backlogGroups(outbox) };
  } finally {
    outbox.close();
  }
}

/** Removes every waiting reading (counted as discarded in the outbox); returns how many. */
export function discardBacklog(s: BackendSettings): number {
  const outbox = openOutbox(s);
  try {
    return outbox.discard();
  } finally {
    outbox.close();
  }
}

export interface ResignReport {
  resigned: number;
  /** Readings whose body held no reading to sign again (left as they were). */
  unreadable: number;
  to: SignedFor;
  /** The new sequence numbers (the nonces of W3bstream 2 tasks), first and last. */
  firstSeq: number | null;
  lastSeq: number | null;
}

/**
 * Signs every waiting reading again for the current settings, oldest first, with the identity
 * given: same power, same time (in the configured unit), new signature. Each gets a new sequence
 * number (a task's nonce is its number, and nonces only go up); the old body is gone in the same
 * transaction. A reading that cannot be read is left as it was and counted.
 */
export function resignBacklog(s: BackendSettings, identity: Identity): ResignReport {
  const outbox = openOutbox(s);
  try {
    const to = signedForSettings(s);
    const seqs: number[] = [];
    let after = 0;
    for (;;) {
      const page = outbox.peek(500, after);
      if (page.length === 0) break;
      for (const m of page) seqs.push(m.seq);
      after = page.at(-1)!.seq;
    }
    let resigned = 0;
    let unreadable = 0;
    let firstSeq: number | null = null;
    let lastSeq: number | null = null;
    // --signed-fields extended: a reading keeps the energy total it signed; one signed without it
    // gets today's total, which no reading delivered before it exceeds (the counter never goes back).
    const totalWh = new MeterStore(outbox).totals().energyWh;
    outbox.transaction(() => {
      for (const seq of seqs) {
        const [m] = outbox.peek(1, seq - 1);
        const reading = m === undefined || m.seq !== seq ? null : readingOfBody(m.body);
        if (reading === null) {
          unreadable++;
          continue;
        }
        const body = signReading(s, identity, reading, [], reading.energyWh ?? totalWh);
        const next = outbox.replace(seq, body);
        if (next === null) continue;
        firstSeq ??= next;
        lastSeq = next;
        resigned++;
      }
    });
    return { resigned, unreadable, to, firstSeq, lastSeq };
  } finally {
    outbox.close();
  }
}
