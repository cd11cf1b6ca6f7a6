#!/usr/bin/env node
// What an applet's SQL costs on this host: median and 90th-percentile time of one event that
// makes no SQL call (probe_log), one INSERT with six parameters (probe_sql_set) and one SELECT
// (probe_sql_get), each run N times in a row through the host (no HTTP), after a warm-up.
// The difference to probe_log is the SQL call's cost: the VM thread's request, the database
// thread's round trip to PGlite, the answer copied back. Run it with nice: node
// scripts/bench-sql.mjs [N]
import { AppletHost, appletWasmFile, ensureArtifacts } from '../dist/index.js';

const N = Number(process.argv[2] ?? 300);
ensureArtifacts();
const handlers = ['probe_log', 'probe_sql_set', 'probe_sql_get'];
const host = await AppletHost.start({
  name: 'bench',
  publisherToken: 'bench',
  applets: [
    { appletName: 'abi-probe', wasmFile: appletWasmFile('abi-probe'), strategies: handlers.map((h) => ({ eventType: h, handler: h })) },
  ],
  database: {
    schemas: [
      {
        tables: [
          {
            name: 'probe',
            cols: [
              { name: 'id', constrains: { datatype: 'INT64', autoincrement: true } },
              { name: 'name', constrains: { datatype: 'TEXT' } },
              { name: 'count32', constrains: { datatype: 'INT32' } },
              { name: 'count64', constrains: { datatype: 'INT64' } },
              { name: 'ratio', constrains: { datatype: 'FLOAT64' } },
              { name: 'active', constrains: { datatype: 'BOOL' } },
              { name: 'raw', constrains: { datatype: 'TEXT', null: true } },
            ],
            keys: [{ name: 'primary', isUnique: true, columnNames: ['id'] }],
          },
        ],
      },
    ],
  },
});
const enc = new TextEncoder();
const figures = {};
for (const h of handlers) {
  const times = [];
  for (let i = 0; i < N + 20; i++) {
    const t = performance.now();
    const [r] = await host.handleEvent(h, enc.encode(h === 'probe_sql_get' ? 'name-1' : `name-${i % 50}`));
    if (r.code !== 0) throw new Error(`${h}: ${r.error}`);
    if (i >= 20) times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  figures[h] = { median: times[Math.floor(N / 2)], p90: times[Math.floor(N * 0.9)] };
}
await host.close();
const f = (ms) => `${ms.toFixed(2)} ms`;
console.log(`applet-host SQL (PGlite), ${N} events each`);
for (const [h, v] of Object.entries(figures)) console.log(`  ${h.padEnd(14)} median ${f(v.median)}  p90 ${f(v.p90)}`);
console.log(
  `  one INSERT costs ${f(figures.probe_sql_set.median - figures.probe_log.median)}, one SELECT ${f(figures.probe_sql_get.median - figures.probe_log.median)} (medians over probe_log)`,
);
