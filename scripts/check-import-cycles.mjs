#!/usr/bin/env node
/**
 * Fails when the shipped code imports in a circle, at either level:
 *
 * - packages: a workspace's `src/` names another workspace (`@power-meter/<name>`, in an import,
 *   an `export … from`, an `import()`, or a string it imports by at run time, as power-meter does
 *   with the development package), and the workspaces it names lead back to it;
 * - modules: inside one package's `src/`, relative imports (type-only ones too: a reader follows
 *   them just the same) that lead back to the module they start from.
 *
 * Tests and benchmarks are left out: they may use anything (w3bstream's tests run its publisher
 * against dev-node's receiver, which is built on w3bstream). Imports are read with TypeScript's
 * own scanner (`ts.preProcessFile`), not guessed from the text.
 *
 *   node scripts/check-import-cycles.mjs        (part of `npm run lint`)
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SOURCE = /\.(ts|mts|cts)$/;
const DECLARATION = /\.d\.(ts|mts|cts)$/;
/** A workspace named in a string anywhere in a source (an import, or a name imported by later). */
const WORKSPACE_NAME = /['"`](@power-meter\/[a-z0-9-]+)(?:\/[^'"`]*)?['"`]/g;

function sourcesUnder(dir) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourcesUnder(full));
    else if (SOURCE.test(e.name) && !DECLARATION.test(e.name)) out.push(full);
  }
  return out.sort();
}

/** The module a relative specifier names, as NodeNext resolves it from TypeScript sources (`./x.js` is `./x.ts`). */
function resolveRelative(fromFile, spec) {
  const base = resolve(dirname(fromFile), spec);
  const candidates = [base.replace(/\.(m|c)?js$/, '.$1ts'), base, `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((c) => existsSync(c) && statSync(c).isFile() && SOURCE.test(c)) ?? null;
}

/** The workspaces under `root` (packages/<dir> with a package.json): name -> directory. */
export function workspaces(root) {
  const found = new Map();
  const dir = join(root, 'packages');
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const pkg = join(dir, e.name, 'package.json');
    if (e.isDirectory() && existsSync(pkg)) found.set(JSON.parse(readFileSync(pkg, 'utf8')).name, join(dir, e.name));
  }
  return found;
}

/**
 * The circles of a graph (node -> the nodes it imports): each strongly connected component with
 * more than one member (or a member that imports itself), as `{ members, path }`, `path` one
 * circle through it (a -> b -> … -> a).
 */
export function cycles(graph) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const members = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        members.push(w);
      } while (w !== v);
      if (members.length > 1 || (graph.get(v) ?? new Set()).has(v))
        found.push({ members: members.sort(), path: pathThrough(graph, new Set(members)) });
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return found;
}

/** One circle inside a component, as a readable path a -> b -> … -> a (shortest way back, breadth first). */
function pathThrough(graph, members) {
  const start = [...members].sort()[0];
  const back = new Map([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of [...(graph.get(v) ?? [])].sort()) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let x = v; x !== null && x !== start; x = back.get(x)) path.splice(1, 0, x);
        return [...path, start];
      }
      if (!back.has(w)) {
        back.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

/** Both graphs of the repository at `root`, and their circles. */
export function importCycles(root) {
  const names = workspaces(root);
  const packageGraph = new Map();
  const moduleCycles = [];
  let modules = 0;
  for (const [name, dir] of names) {
    const edges = new Set();
    const moduleGraph = new Map();
    for (const file of sourcesUnder(join(dir, 'src'))) {
      modules += 1;
      const text = readFileSync(file, 'utf8');
      const id = relative(root, file);
      const out = new Set();
      for (const { fileName: spec } of ts.preProcessFile(text, true, true).importedFiles) {
        if (spec.startsWith('.')) {
          const target = resolveRelative(file, spec);
          if (target !== null) out.add(relative(root, target));
        }
      }
      for (const m of text.matchAll(WORKSPACE_NAME)) if (m[1] !== name && names.has(m[1])) edges.add(m[1]);
      moduleGraph.set(id, out);
    }
    moduleCycles.push(...cycles(moduleGraph));
    packageGraph.set(name, edges);
  }
  return { packages: names.size, modules, packageCycles: cycles(packageGraph), moduleCycles, packageGraph };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const { packages, modules, packageCycles, moduleCycles } = importCycles(root);
  const say = (what, c) =>
    console.error(
      `check-import-cycles: ${what} import in a circle: ${c.path.join(' -> ')}${c.members.length > 2 ? ` (the circle joins ${c.members.join(', ')})` : ''}`,
    );
  for (const c of packageCycles) say('packages', c);
  for (const c of moduleCycles) say('modules', c);
  if (packageCycles.length + moduleCycles.length > 0) {
    console.error('Move what both sides need into a module (or package) of its own that neither imports back.');
    process.exit(1);
  }
  console.log(`check-import-cycles: ${packages} packages, ${modules} modules in src/, no import circle`);
}
