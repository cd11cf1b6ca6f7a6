import { Outbox, OutboxCorruptError, isCorruptionError, loadOrCreateIdentity, type OutboxOptions } from '@power-meter/w3bstream';
import { fileKey, type MeterKey } from '../key/meter-key.js';
import type { BackendSettings } from '../settings.js';
import { METER_SCHEMA, MeterStore } from '../store.js';
import { backlogGroups, checkBacklogSigner, checkTransport, identityCurveFor } from '../transport.js';
import { outboxPaths, stagingFileFor } from './paths.js';

/**
 * Numbers reserved per write of the sequence floor: each write is a synced rename on the card,
 * and a power cut skips at most the rest of a block (a gap, never a reuse).
 */
const SEQUENCE_BLOCK = 1000;

/** Opens the outbox (MeterOptions.openOutbox; default `Outbox.open`). */
export type OpenOutbox = (file: string, opts: OutboxOptions) => Outbox;

/**
 * The outbox (locked first: a second instance must fail before touching anything), the key (the
 * token's, opened before by `start`, or the key file's), the checks of the backlog against both,
 * the totals. Apart from the meter because it is the one step whose failures decide the exit
 * status before anything runs.
 */
export function openStores(
  s: BackendSettings,
  tokenKey: MeterKey | undefined,
  openOutbox: OpenOutbox = (file, opts) => Outbox.open(file, opts),
): { outbox: Outbox; identity: MeterKey; store: MeterStore } {
  const paths = outboxPaths(s.dataDir);
  const outbox = openOutbox(paths.outbox, {
    maxCount: s.outboxMaxCount,
    maxAgeMs: s.outboxMaxAgeDays * 86_400_000,
    sequenceFloorFile: paths.floor,
    sequenceBlock: SEQUENCE_BLOCK,
    schemas: [METER_SCHEMA],
    // No RAM directory: every commit goes to the card. Strict mode (0): the RAM copy is synced
    // at every reading, so each is on the card before it is sent.
    stagingFile: stagingFileFor(s),
    syncEveryAppend: s.syncIntervalS === 0,
  });
  try {
    const identity = tokenKey ?? fileKey(loadOrCreateIdentity(paths.identityDir, { curve: identityCurveFor(s) }));
    checkTransport(s, identity, backlogGroups(outbox));
    checkBacklogSigner(identity, outbox.peek(1)[0], outbox.waiting());
    return { outbox, identity, store: new MeterStore(outbox) };
  } catch (err) {
    outbox.close();
    // Damage that the open-time check did not see, met when reading the totals.
    throw isCorruptionError(err) ? new OutboxCorruptError(paths.outbox, (err as Error).message) : err;
  }
}
