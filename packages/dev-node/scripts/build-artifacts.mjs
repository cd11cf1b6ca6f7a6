#!/usr/bin/env node
// Builds what the applet host runs: the applets (AssemblyScript -> .wasm, with asc from npm) and
// the contracts (Solidity -> ABI + bytecode, with solc-js from npm, which carries its compiler:
// nothing is downloaded). Outputs go to build/ (git-ignored). Each output is written to a
// temporary file and renamed, so a test that builds at the same time never reads half a file.
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build');
const require = createRequire(import.meta.url);

function writeAtomic(file, data) {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

async function buildApplets() {
  const asc = (await import('assemblyscript/asc')).default;
  for (const name of ['energy-meter', 'abi-probe', 'sql-probe']) {
    const source = join(root, 'applet', `${name}.ts`);
    const wasm = join(out, 'applets', `${name}.wasm`);
    const tmp = `${wasm}.${process.pid}.tmp`;
    mkdirSync(dirname(wasm), { recursive: true });
    const { error, stderr } = await asc.main([source, '--outFile', tmp, '--optimizeLevel', '2', '--runtime', 'incremental'], {});
    if (error) throw new Error(`asc failed for ${name}: ${error.message}\n${stderr.toString()}`);
    renameSync(tmp, wasm);
  }
}

function buildContracts() {
  const solc = require('solc');
  const sources = {};
  for (const f of readdirSync(join(root, 'contracts'))) {
    if (f.endsWith('.sol')) sources[f] = { content: readFileSync(join(root, 'contracts', f), 'utf8') };
  }
  const input = {
    language: 'Solidity',
    sources,
    settings: { optimizer: { enabled: true, runs: 200 }, outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } },
  };
  const findImports = (path) => {
    try {
      return { contents: readFileSync(require.resolve(path), 'utf8') };
    } catch {
      return { error: `not found: ${path}` };
    }
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) throw new Error(`solc failed:\n${errors.map((e) => e.formattedMessage).join('\n')}`);
  for (const f of Object.keys(sources)) {
    for (const [name, c] of Object.entries(output.contracts[f])) {
      const artifact = { contractName: name, compiler: `solc ${solc.version()}`, abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
      writeAtomic(join(out, 'contracts', `${name}.json`), `${JSON.stringify(artifact, null, 2)}\n`);
    }
  }
}

// An empty, initialised PGlite database: the host starts from it instead of running initdb.
async function buildDatabaseTemplate() {
  const { PGlite } = await import('@electric-sql/pglite');
  const pg = await PGlite.create();
  const dump = await pg.dumpDataDir('gzip');
  await pg.close();
  writeAtomic(join(out, 'pglite-template.tgz'), Buffer.from(await dump.arrayBuffer()));
}

const started = Date.now();
buildContracts();
await buildApplets();
await buildDatabaseTemplate();
console.log(`applet-host: contracts and applets built in ${Date.now() - started} ms -> ${out}`);
