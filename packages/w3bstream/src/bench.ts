/**
 * W3bstream stack benchmark (`npm run bench`): signing speed, outbox append speed, and the time
 * to deliver one day of 5 s readings (17,280) to the local dev receiver.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildMessage, verifyBody } from './codec.js';
import { loadOrCreateIdentity } from './identity.js';
import { Outbox } from './outbox.js';
import { Publisher } from './publisher.js';
import { startDevReceiver } from './receiver.js';

function bench(name: string, value: number, unit: string, budget: string, pass: boolean | null): void {
  console.log(`BENCH ${JSON.stringify({ name, value: Number(value.toPrecision(4)), unit, budget, pass })}`);
}
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

const dir = mkdtempSync(join(tmpdir(), 'w3b-bench-'));
const id = loadOrCreateIdentity(join(dir, 'identity'));

// Signatures per second (median of 5 runs of 2,000).
const rates: number[] = [];
for (let run = 0; run < 5; run++) {
  const t0 = performance.now();
  for (let i = 0; i < 2000; i++) buildMessage(id, { powerW: i / 7, timestampMs: 1_764_000_000_000 + i });
  rates.push(2000 / ((performance.now() - t0) / 1000));
}
console.log(`signing (P-256, raw, low S): median ${median(rates).toFixed(0)} messages/s over 5 runs of 2,000`);
bench('signed messages per second', median(rates), '1/s', '', null);

// Fill the outbox with a day of readings, then deliver them.
const N = 17_280;
const outbox = Outbox.open(join(dir, 'outbox', 'outbox.sqlite'));
const ta = performance.now();
for (let i = 0; i < N; i++) outbox.append(buildMessage(id, { powerW: 4 + (i % 3), timestampMs: 1_764_000_000_000 + i * 5000 }).body);
const appendMs = performance.now() - ta;
console.log(`outbox: ${N} durable appends (synchronous=FULL, one transaction each) in ${(appendMs / 1000).toFixed(1)} s = ${(appendMs / N).toFixed(2)} ms each`);
bench('durable outbox append', appendMs / N, 'ms', '', null);

const receiver = await startDevReceiver({ project: 'bench', token: 't' });
const publisher = new Publisher({ outbox, url: receiver.url, token: 't', deviceAddress: id.address });
const t0 = performance.now();
publisher.start();
while (outbox.stats().waiting > 0) await new Promise((r) => setTimeout(r, 20));
const deliverS = (performance.now() - t0) / 1000;
await publisher.stop();
await receiver.close();
const seqs = receiver.received.map((r) => r.seq!);
const inOrder = seqs.every((s, i) => s === i + 1);
const allVerified = receiver.received.every((r) => r.verified) && receiver.received.slice(0, 10).every((r) => verifyBody(r.body).ok);
console.log(`backlog of ${N} readings delivered to the local receiver in ${deliverS.toFixed(1)} s (${(N / deliverS).toFixed(0)}/s); received ${seqs.length}, in order: ${inOrder}, all verified: ${allVerified}`);
bench('deliver a 24 h backlog (17,280) to a local receiver', deliverS, 's', '< 30 s, none lost or duplicated', deliverS < 30 && seqs.length === N && inOrder && allVerified);
outbox.close();
rmSync(dir, { recursive: true, force: true });
