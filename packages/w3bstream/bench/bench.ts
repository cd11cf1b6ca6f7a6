/**
 * W3bstream stack benchmark (`npm run bench`): signing and verifying speed, the durable append,
 * and the time to deliver one day of 5 s readings (17,280) from the outbox to the local dev
 * receiver (docs/design.md budget: < 30 s, none lost or duplicated).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  buildMessage,
  createBodyVerifier,
  verifyBody,
  loadOrCreateIdentity,
  Outbox,
  Publisher,
  buildMessageV2,
  checkMessageV2,
  type Curve,
} from '@power-meter/w3bstream';
import { startDevReceiver } from '@power-meter/dev-node';
import { median, reportFigure } from '../../../scripts/bench-figure.mjs';

/** Median rate (per second) of `runs` runs of `n` calls. */
function rate(n: number, runs: number, fn: (i: number) => void): number {
  const rates: number[] = [];
  for (let run = 0; run < runs; run++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn(i);
    rates.push(n / ((performance.now() - t0) / 1000));
  }
  return median(rates);
}

const dir = mkdtempSync(join(tmpdir(), 'w3b-bench-'));
try {
  for (const curve of ['p256', 'secp256k1'] as Curve[]) {
    const id = loadOrCreateIdentity(join(dir, `identity-${curve}`), { curve });
    const signs = rate(2000, 5, (i) => id.sign(`{"sensor_reading":${i}.5,"timestamp":1764000000}`, 'raw'));
    console.log(`signatures (${curve}, SHA-256 ECDSA, raw, low S): median ${signs.toFixed(0)}/s over 5 runs of 2,000`);
    reportFigure(`signatures per second (${curve})`, signs, '1/s', '', null);
  }
  // W3bstream 2: Go-escaped JSON, keccak256 and a recoverable secp256k1 signature (@noble/curves)
  // per reading; the dev receiver recovers the signer from each.
  const k1 = loadOrCreateIdentity(join(dir, 'identity-secp256k1'));
  const ref = { projectId: '42', projectVersion: '0.1' };
  const v2Bodies: string[] = [];
  const v2Signs = rate(2000, 5, (i) => {
    v2Bodies[i] = buildMessageV2(k1, { powerW: i / 7, timestampMs: 1_764_000_000_000 + i * 5000 }, ref).body;
  });
  const v2Checks = rate(2000, 5, (i) => checkMessageV2(v2Bodies[i]!));
  console.log(
    `W3bstream 2 messages (keccak256, recoverable secp256k1): median ${v2Signs.toFixed(0)}/s built and signed; ${v2Checks.toFixed(0)}/s checked with signer recovery`,
  );
  reportFigure('W3bstream 2 messages signed per second', v2Signs, '1/s', '', null);
  reportFigure('W3bstream 2 messages recovered per second', v2Checks, '1/s', '', null);

  const id = loadOrCreateIdentity(join(dir, 'identity-p256'));
  const bodies = Array.from(
    { length: 2000 },
    (_, i) => buildMessage(id, { powerW: i / 7, timestampMs: 1_764_000_000_000 + i * 5000 }).body,
  );
  const verifies = rate(2000, 5, (i) => verifyBody(bodies[i]!));
  const cached = createBodyVerifier();
  const verifiesCached = rate(2000, 5, (i) => cached(bodies[i]!));
  console.log(
    `verifyBody (P-256, raw): median ${verifies.toFixed(0)}/s; with the key cache the receiver uses: ${verifiesCached.toFixed(0)}/s`,
  );
  reportFigure('verified bodies per second (p256)', verifies, '1/s', '', null);
  reportFigure('verified bodies per second, key cached (p256)', verifiesCached, '1/s', '', null);
  // The meter's default wire form: public_key is the address, the key is recovered from the
  // signature (once per address in the receiver, which then verifies against the remembered key).
  const addressBodies = Array.from(
    { length: 200 },
    (_, i) => buildMessage(id, { powerW: i / 7, timestampMs: 1_764_000_000_000 + i * 5000 }, { publicKeyField: 'address' }).body,
  );
  const recovers = rate(200, 5, (i) => verifyBody(addressBodies[i]!));
  const remembered = createBodyVerifier();
  const recoversRemembered = rate(200, 5, (i) => remembered(addressBodies[i]!));
  console.log(
    `verifyBody (P-256, address form, key recovered): median ${recovers.toFixed(0)}/s; the receiver's verifier (key remembered per address): ${recoversRemembered.toFixed(0)}/s`,
  );
  reportFigure('verified address-form bodies per second, recovery (p256)', recovers, '1/s', '', null);
  reportFigure('verified address-form bodies per second, receiver (p256)', recoversRemembered, '1/s', '', null);

  // Fill the outbox with a day of readings, each one its own durable transaction as in the meter.
  const N = 17_280;
  // As the meter opens it: with the sequence floor beside the key (one fsync'd write per 100 readings).
  const outboxOptions = { sequenceFloorFile: join(dir, 'identity-p256', 'sequence-floor.json') };
  const filled = Outbox.open(join(dir, 'outbox', 'outbox.sqlite'), outboxOptions);
  const ta = performance.now();
  // In the meter's default wire form (public_key = the device address): the receiver recovers the signer.
  for (let i = 0; i < N; i++)
    filled.append(buildMessage(id, { powerW: 4 + (i % 3), timestampMs: 1_764_000_000_000 + i * 5000 }, { publicKeyField: 'address' }).body);
  const appendMs = performance.now() - ta;
  console.log(
    `outbox: ${N} signed + durable appends (synchronous=FULL, one transaction each) in ${(appendMs / 1000).toFixed(1)} s = ${(appendMs / N).toFixed(2)} ms each`,
  );
  reportFigure('sign + durable outbox append', appendMs / N, 'ms', '', null);
  // A start checks the database (PRAGMA quick_check) before it trusts it: its cost grows with the backlog.
  filled.close();
  const to = performance.now();
  const outbox = Outbox.open(join(dir, 'outbox', 'outbox.sqlite'), outboxOptions);
  const openMs = performance.now() - to;
  console.log(`outbox: open with integrity check and migrations, ${N} readings waiting: ${openMs.toFixed(0)} ms`);
  reportFigure(`outbox open with integrity check (${N} waiting)`, openMs, 'ms', '', null);

  const receiver = await startDevReceiver({ project: 'bench', token: 'bench-token' });
  const publisher = new Publisher({ outbox, url: receiver.url, token: 'bench-token', deviceId: id.deviceId });
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  publisher.on('delivered', () => {
    if (outbox.waiting() === 0) done();
  });
  const t0 = performance.now();
  publisher.start();
  await finished;
  const deliverS = (performance.now() - t0) / 1000;
  await publisher.stop();
  await receiver.close();
  const seqs = receiver.received.map((r) => r.seq);
  const inOrder = seqs.every((s, i) => s === i + 1);
  const duplicates = receiver.received.filter((r) => r.duplicate).length;
  const allVerified = receiver.received.every((r) => r.verified);
  const stats = outbox.stats();
  const sound = seqs.length === N && inOrder && duplicates === 0 && allVerified && stats.delivered === N && stats.waiting === 0;
  console.log(
    `backlog of ${N} readings delivered to the local receiver in ${deliverS.toFixed(1)} s (${(N / deliverS).toFixed(0)}/s); ` +
      `received ${seqs.length}, in order: ${inOrder}, duplicates: ${duplicates}, all verified: ${allVerified}, outbox delivered ${stats.delivered}, waiting ${stats.waiting}`,
  );
  reportFigure(
    'deliver a 24 h backlog (17,280) to a local receiver',
    deliverS,
    's',
    '< 30 s, none lost or duplicated',
    deliverS < 30 && sound,
  );
  outbox.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
