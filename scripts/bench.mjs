#!/usr/bin/env node
// Runs every package's `bench` script one after the other (they measure time, so never in
// parallel), passes their output through, and ends with one table of every figure next to its
// budget from docs/design.md. Each benchmark reports a figure (reportFigure in bench-figure.mjs) as a line
//   BENCH {"name": ..., "value": ..., "unit": ..., "budget": ..., "pass": true|false|null}
// Exit code 1 if any figure misses its budget or a benchmark fails to run.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const only = process.argv.slice(2);

const packages = readdirSync(path.join(root, 'packages'))
  .map((dir) => path.join(root, 'packages', dir))
  .filter((dir) => existsSync(path.join(dir, 'package.json')))
  .map((dir) => ({ dir, pkg: JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) }))
  .filter(({ pkg }) => pkg.scripts?.bench)
  .filter(({ dir }) => only.length === 0 || only.includes(path.basename(dir)));

// The Node flags each program runs with as a service (the V8 memory limits in the units'
// ExecStart lines) and the environment the unit sets for the process itself (MALLOC_ARENA_MAX,
// not the settings, which name paths on the Pi), so the memory figures are those of the
// installed services.
function unitNodeFlags(unit) {
  const file = path.join(root, 'systemd', unit);
  if (!existsSync(file)) return [];
  const exec = /^ExecStart=@NODE@ (.*)$/m.exec(readFileSync(file, 'utf8'));
  return (exec?.[1] ?? '').split(/\s+/).filter((word) => word.startsWith('--') && !word.startsWith('--config'));
}
function unitProcessEnv(unit) {
  const file = path.join(root, 'systemd', unit);
  if (!existsSync(file)) return {};
  const pairs = [...readFileSync(file, 'utf8').matchAll(/^Environment=([A-Z_]+)=(\S*)$/gm)].map((m) => [m[1], m[2]]);
  return Object.fromEntries(pairs.filter(([k]) => !k.startsWith('POWER_METER_')));
}
const nodeFlags = {
  'power-meter': unitNodeFlags('power-meter.service'),
  'power-meter-display': unitNodeFlags('power-meter-display.service'),
};
const processEnv = {
  'power-meter': unitProcessEnv('power-meter.service'),
  'power-meter-display': unitProcessEnv('power-meter-display.service'),
};

function run(dir, script) {
  return new Promise((resolve) => {
    const flags = nodeFlags[path.basename(dir)] ?? [];
    const env = {
      ...process.env,
      POWER_METER_BENCH_NODE_FLAGS: JSON.stringify(flags),
      POWER_METER_BENCH_UNIT_ENV: JSON.stringify(processEnv[path.basename(dir)] ?? {}),
    };
    const child = spawn('npm', ['run', '--silent', script], { cwd: dir, env, stdio: ['ignore', 'pipe', 'inherit'] });
    const figures = [];
    let buffered = '';
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.startsWith('BENCH ')) {
          try {
            figures.push(JSON.parse(line.slice(6)));
          } catch {
            console.log(`  (unparseable figure line: ${line})`);
          }
        } else {
          console.log(`  ${line}`);
        }
      }
    });
    child.on('close', (code) => resolve({ code, figures }));
  });
}

const rows = [];
let failed = false;
for (const { dir, pkg } of packages) {
  const name = path.basename(dir);
  console.log(`\n== ${pkg.name}: npm run bench`);
  const { code, figures } = await run(dir, 'bench');
  if (code !== 0) {
    failed = true;
    console.log(`  !! benchmark exited with code ${code}`);
  }
  for (const f of figures) rows.push({ pkg: name, ...f });
}

const fmt = (v) =>
  typeof v !== 'number' ? String(v) : Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : Number(v.toPrecision(3)).toString();
const verdict = (p) => (p === true ? 'ok' : p === false ? 'OVER BUDGET' : '-');

console.log('\n## Benchmark summary\n');
console.log('| package | figure | measured | budget | verdict |');
console.log('|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.pkg} | ${r.name} | ${fmt(r.value)} ${r.unit ?? ''} | ${r.budget || '-'} | ${verdict(r.pass)} |`);
  if (r.pass === false) failed = true;
}
console.log(`\n${rows.length} figures from ${packages.length} benchmarks on node ${process.version}, ${process.arch}.`);
process.exit(failed ? 1 : 0);
