#!/usr/bin/env node
/**
 * What a Pi runs, derived from the repository instead of a list kept by hand:
 *
 * - the program workspaces are the ones whose package.json declares the `power-meter` or
 *   `power-meter-display` command (wherever a later change moves them);
 * - the runtime tree is every package their `dependencies`, `optionalDependencies` and
 *   (non-optional) `peerDependencies` reach, resolved through package-lock.json the way npm and
 *   Node resolve them (nearest `node_modules` first, then up the directories), so a dependency
 *   added to a program or to a library it uses arrives on the Pi, and a `devDependency` never does;
 * - inside those packages, files nothing loads at run time are left out: type declarations,
 *   TypeScript sources, source maps, documentation (licences stay), C/C++ sources, and the
 *   compiler's intermediate output of native modules (the built `.node` file and any shared
 *   libraries beside it stay).
 *
 * Used by install-requirements.sh (--runtime), install.sh and scripts/build-release.sh; Node's own
 * modules only, so it runs where nothing else is installed (a release tarball on a Pi).
 *
 *   node scripts/runtime-tree.mjs programs                 the program workspaces, one a line
 *   node scripts/runtime-tree.mjs workspaces               the workspaces the programs use (themselves included)
 *   node scripts/runtime-tree.mjs closure                  the workspaces and node_modules entries they need
 *   node scripts/runtime-tree.mjs prune                    ./node_modules pruned in place to the runtime tree
 *   node scripts/runtime-tree.mjs copy DEST                the application (programs, libraries, runtime tree) into DEST
 *   node scripts/runtime-tree.mjs footprint [DIR] [--check]  MB and files under DIR/node_modules; --check: fail over budget
 *   node scripts/runtime-tree.mjs build-tools DIR          package.json and package-lock.json of the build's tools (TypeScript
 *                                                          and the type packages tsconfig.base.json names), versions from the lock
 *   node scripts/runtime-tree.mjs source-hash              a hash of what the runtime build reads
 *   node scripts/runtime-tree.mjs needs MODE               what set-up MODE (runtime or full) still has to do: "install", "build", or nothing
 *   node scripts/runtime-tree.mjs mark MODE [--built]      records a finished set-up (node_modules/.power-meter-setup.json)
 *   node scripts/runtime-tree.mjs require-full             fails, saying what to do, in a checkout with the runtime set-up
 *
 * Every command works on the project the script belongs to (its parent directory), or on --root DIR;
 * needs and mark take the Node modules ABI with --abi N (default: this Node's).
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The commands a Pi runs; the workspaces that declare them are the programs. */
export const PROGRAM_BINS = ['power-meter', 'power-meter-display'];

/** Budget of the runtime tree (issue 26): disk usage as `du -sm` counts it (MiB), regular files as `find -type f` counts them. */
export const BUDGET = { mb: 60, files: 1500 };

/** Development tools that must never be in a runtime tree: [what, package-name pattern]. */
export const FORBIDDEN = [
  ['Biome', /^@biomejs\//],
  ['Vitest', /^(vitest|@vitest\/.*)$/],
  ['TypeScript', /^typescript$/],
  ['anvil (foundry)', /^@foundry-rs\//],
  ['solc', /^solc$/],
  ['AssemblyScript', /^assemblyscript$/],
  ['binaryen', /^binaryen$/],
  ['ethers', /^ethers$/],
  ['PGlite', /^@electric-sql\/pglite/],
  ['a bundler', /^(rolldown|@rolldown\/.*|rollup|@rollup\/.*|esbuild|@esbuild\/.*|vite|webpack|parcel|@swc\/.*|tsup|terser)$/],
];

/** Where the set-up records what it did, inside node_modules (npm ci replaces the whole directory). */
export const MARKER = '.power-meter-setup.json';

const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

/** The workspace folders of the root package.json (`dir/*` patterns expanded), relative, that exist. */
export function workspaceDirs(root) {
  const pkg = readJson(join(root, 'package.json'));
  const patterns = Array.isArray(pkg.workspaces) ? pkg.workspaces : (pkg.workspaces?.packages ?? []);
  const dirs = [];
  for (const p of patterns) {
    const clean = p.replace(/\/+$/, '');
    if (clean.endsWith('/*')) {
      const parent = clean.slice(0, -2);
      if (!existsSync(join(root, parent))) continue;
      for (const e of readdirSync(join(root, parent), { withFileTypes: true }))
        if (e.isDirectory() && existsSync(join(root, parent, e.name, 'package.json'))) dirs.push(`${parent}/${e.name}`);
    } else if (clean.includes('*')) {
      throw new Error(`package.json: workspace pattern ${p} is not supported here (use a folder or folder/*)`);
    } else if (existsSync(join(root, clean, 'package.json'))) dirs.push(clean);
  }
  return dirs;
}

function binNames(pkg) {
  if (typeof pkg.bin === 'string') return [pkg.name.replace(/^@[^/]+\//, '')];
  return Object.keys(pkg.bin ?? {});
}

/** The workspaces that declare the programs' commands (each command must be found). */
export function programWorkspaces(root) {
  const found = new Map();
  for (const dir of workspaceDirs(root)) {
    for (const bin of binNames(readJson(join(root, dir, 'package.json')))) if (PROGRAM_BINS.includes(bin)) found.set(bin, dir);
  }
  const missing = PROGRAM_BINS.filter((b) => !found.has(b));
  if (missing.length > 0) throw new Error(`no workspace in ${root}/package.json declares the command ${missing.join(', ')}`);
  return [...new Set(found.values())].sort();
}

function lockPackages(root) {
  const file = join(root, 'package-lock.json');
  if (!existsSync(file)) throw new Error(`${file} is missing: the runtime tree is taken from it`);
  const lock = readJson(file);
  if (!lock.packages)
    throw new Error(`${file} is lockfileVersion ${lock.lockfileVersion}: npm 7 or newer writes the version this needs (3)`);
  return lock.packages;
}

const parentDir = (dir) => (dir.includes('/') ? dir.slice(0, dir.lastIndexOf('/')) : '');

/** Where `name`, required from the package at lock path `from`, is installed: Node's lookup, nearest node_modules first. */
export function resolveDep(packages, from, name) {
  for (let dir = from; ; dir = parentDir(dir)) {
    const key = dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`;
    if (packages[key]) return key;
    if (dir === '') return null;
  }
}

/** Dependencies a package needs at run time: [name, optional]. */
function runtimeDeps(entry) {
  const deps = [];
  for (const name of Object.keys(entry.dependencies ?? {})) deps.push([name, false]);
  for (const name of Object.keys(entry.optionalDependencies ?? {})) deps.push([name, true]);
  for (const name of Object.keys(entry.peerDependencies ?? {})) deps.push([name, entry.peerDependenciesMeta?.[name]?.optional === true]);
  return deps;
}

/**
 * The lock paths reachable from `starts` (lock paths: workspace folders or node_modules entries).
 * Returns workspace folders and node_modules entries separately; a link entry (a workspace's
 * symlink in node_modules) is kept and its target walked.
 */
function walk(packages, starts) {
  const workspaces = new Set();
  const modules = new Set();
  const queue = [...starts];
  while (queue.length > 0) {
    const key = queue.shift();
    const isModule = key.startsWith('node_modules/') || key.includes('/node_modules/');
    if (isModule ? modules.has(key) : workspaces.has(key)) continue;
    (isModule ? modules : workspaces).add(key);
    const entry = packages[key];
    if (!entry) throw new Error(`package-lock.json has no entry for ${key}: run npm install to update it`);
    if (entry.link) {
      queue.push(entry.resolved);
      continue;
    }
    for (const [name, optional] of runtimeDeps(entry)) {
      const found = resolveDep(packages, key, name);
      if (found) queue.push(found);
      else if (!optional)
        throw new Error(`package-lock.json: ${key || 'the root'} needs ${name}, which it does not list: run npm install to update it`);
    }
  }
  return { workspaces: [...workspaces].sort(), modules: [...modules].sort() };
}

/** The runtime tree: the program workspaces, the workspaces they use, and the node_modules entries of both. */
export function runtimeClosure(root) {
  const packages = lockPackages(root);
  const { workspaces, modules } = walk(packages, programWorkspaces(root));
  // Every workspace used keeps its link in node_modules (the programs' links carry node_modules/.bin's commands).
  const links = Object.keys(packages).filter((k) => packages[k].link && workspaces.includes(packages[k].resolved));
  return { workspaces, modules: [...new Set([...modules, ...links])].sort() };
}

/** Native modules: packages built by node-gyp (a binding.gyp at their top). */
const isNativePackage = (pkgDir) => existsSync(join(pkgDir, 'binding.gyp'));

/**
 * Whether a file inside a package (path relative to the package, '/'-separated) is only for
 * development: nothing loads it at run time.
 */
export function isDevFile(rel, native) {
  const parts = rel.split('/');
  const name = parts[parts.length - 1];
  const lower = name.toLowerCase();
  if (/\.d\.[cm]?ts$/.test(lower) || /\.[cm]?tsx?$/.test(lower) || lower.endsWith('.map')) return true;
  if (/\.(md|markdown)$/.test(lower) && !/^(licen[cs]e|copying|notice)/.test(lower)) return true;
  if (/^(readme|changelog|history)(\.|$)/.test(lower)) return true;
  if (/\.(c|cc|cpp|cxx|h|hh|hpp|hxx|o|obj)$/.test(lower)) return true;
  if (
    /^\.(travis\.yml|eslintrc.*|eslintignore|npmignore|editorconfig|gitattributes|prettierrc.*|prettierignore|jshintrc|nycrc|taprc|babelrc|airtap\.yml)$/.test(
      lower,
    )
  )
    return true;
  // node-gyp's output: only the built module and the libraries bundled beside it (build/Release/*) are loaded.
  if (native && parts[0] === 'build') {
    if (parts.length !== 3 || parts[1] !== 'Release') return true;
    if (/\.(d|mk|stamp|a)$/.test(lower)) return true;
  }
  return false;
}

/** Walks the files of one package (not its nested node_modules), calling `visit(rel, full, stat)`. */
function packageFiles(pkgDir, visit) {
  const rec = (dir, rel) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (r === 'node_modules') continue;
      const full = join(dir, e.name);
      if (e.isDirectory()) rec(full, r);
      else visit(r, full);
    }
  };
  rec(pkgDir, '');
}

/** The node_modules entries (lock-style keys, scoped names included) directly in `nmDir`, whose key prefix is `prefix`. */
function listEntries(nmDir, prefix) {
  const out = [];
  if (!existsSync(nmDir)) return out;
  for (const e of readdirSync(nmDir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    if (e.name.startsWith('@') && e.isDirectory()) {
      for (const s of readdirSync(join(nmDir, e.name))) out.push({ key: `${prefix}/${e.name}/${s}`, dir: join(nmDir, e.name, s) });
    } else out.push({ key: `${prefix}/${e.name}`, dir: join(nmDir, e.name) });
  }
  return out;
}

function removeEmptyDirs(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeEmptyDirs(join(dir, e.name));
  if (readdirSync(dir).length === 0) rmSync(dir, { recursive: true });
}

/** Links in node_modules/.bin whose target is gone. */
function removeDanglingBins(nm) {
  const bin = join(nm, '.bin');
  if (!existsSync(bin)) return;
  for (const name of readdirSync(bin)) if (!existsSync(join(bin, name))) unlinkSync(join(bin, name));
}

/**
 * Prunes `root/node_modules` in place to the runtime tree: entries the programs do not need are
 * removed, and development files inside the rest. Never follows a symlink (the workspaces'
 * links point into the checkout's own sources). Returns what it removed.
 */
export function prune(root) {
  const { modules } = runtimeClosure(root);
  const keep = new Set(modules);
  const nm = join(root, 'node_modules');
  const removed = { packages: 0, files: 0 };
  const rec = (nmDir, prefix) => {
    if (!existsSync(nmDir)) return;
    for (const { key, dir } of listEntries(nmDir, prefix)) {
      const st = lstatSync(dir);
      if (!keep.has(key)) {
        rmSync(dir, { recursive: true, force: true });
        removed.packages++;
        continue;
      }
      if (st.isSymbolicLink()) continue;
      const native = isNativePackage(dir);
      packageFiles(dir, (rel, full) => {
        if (isDevFile(rel, native)) {
          rmSync(full, { force: true });
          removed.files++;
        }
      });
      for (const sub of readdirSync(dir))
        if (sub !== 'node_modules' && lstatSync(join(dir, sub)).isDirectory()) removeEmptyDirs(join(dir, sub));
      rec(join(dir, 'node_modules'), `${key}/node_modules`);
    }
    // Scope folders left empty.
    for (const e of readdirSync(nmDir, { withFileTypes: true }))
      if (e.name.startsWith('@') && e.isDirectory() && readdirSync(join(nmDir, e.name)).length === 0)
        rmSync(join(nmDir, e.name), { recursive: true });
  };
  if (!existsSync(nm)) throw new Error(`${nm} does not exist`);
  rec(nm, 'node_modules');
  removeDanglingBins(nm);
  // npm's record of the tree it installed no longer describes it; the marker does (MARKER).
  rmSync(join(nm, '.package-lock.json'), { force: true });
  return removed;
}

/**
 * Copies a file tree, leaving out the files `skip(rel)` names (and a top-level node_modules),
 * keeping modes and symlinks as they are; folders left empty are not kept.
 */
function copyTree(src, dest, skip, rel = '') {
  mkdirSync(dest, { recursive: true });
  for (const e of readdirSync(src, { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (r === 'node_modules') continue;
    const s = join(src, e.name);
    const d = join(dest, e.name);
    if (e.isDirectory()) {
      copyTree(s, d, skip, r);
      continue;
    }
    if (skip(r)) continue;
    if (e.isSymbolicLink()) symlinkSync(readlinkSync(s), d);
    else {
      copyFileSync(s, d);
      chmodSync(d, statSync(s).mode & 0o7777);
    }
  }
  chmodSync(dest, statSync(src).mode & 0o7777);
  if (rel !== '' && readdirSync(dest).length === 0) rmSync(dest, { recursive: true });
}

/**
 * The application as installed (install.sh) or shipped (scripts/build-release.sh): the root
 * package.json (its workspaces cut to the ones used), package-lock.json, README, CHANGELOG and
 * LICENSE; of each workspace used its package.json, bin/ and the built dist/ (no benchmarks,
 * declarations or maps); and the runtime tree of node_modules. Nothing else: no sources, no keys,
 * no data. Fails when node_modules lacks a package the programs need.
 */
export function copyApp(root, dest) {
  const { workspaces, modules } = runtimeClosure(root);
  const packages = lockPackages(root);
  if (existsSync(dest) && readdirSync(dest).length > 0) throw new Error(`${dest} is not empty`);
  mkdirSync(dest, { recursive: true });
  const pkg = readJson(join(root, 'package.json'));
  pkg.workspaces = workspaces;
  delete pkg.devDependencies;
  delete pkg.scripts;
  writeFileSync(join(dest, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  for (const f of ['package-lock.json', 'README.md', 'CHANGELOG.md', 'LICENSE'])
    if (existsSync(join(root, f))) copyFileSync(join(root, f), join(dest, f));
  for (const ws of workspaces) {
    const src = join(root, ws);
    if (!existsSync(join(src, 'dist'))) throw new Error(`${ws}/dist is missing: build first`);
    mkdirSync(join(dest, ws), { recursive: true });
    copyFileSync(join(src, 'package.json'), join(dest, ws, 'package.json'));
    for (const sub of ['bin', 'dist'])
      if (existsSync(join(src, sub)))
        copyTree(join(src, sub), join(dest, ws, sub), (rel) => (sub === 'dist' && /^bench\./.test(rel)) || isDevFile(rel, false));
  }
  const missing = [];
  for (const key of modules) {
    const entry = packages[key];
    const src = join(root, key);
    const d = join(dest, key);
    mkdirSync(dirname(d), { recursive: true });
    if (entry.link) {
      symlinkSync(relative(dirname(d), join(dest, entry.resolved)), d);
      continue;
    }
    if (!existsSync(join(src, 'package.json'))) {
      missing.push(key);
      continue;
    }
    const native = isNativePackage(src);
    copyTree(src, d, (rel) => isDevFile(rel, native));
  }
  if (missing.length > 0)
    throw new Error(
      `node_modules lacks what the programs need (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}): run ./install-requirements.sh`,
    );
  // The commands in node_modules/.bin whose package came along.
  const srcBin = join(root, 'node_modules', '.bin');
  if (existsSync(srcBin)) {
    mkdirSync(join(dest, 'node_modules', '.bin'), { recursive: true });
    for (const name of readdirSync(srcBin)) {
      let target;
      try {
        target = readlinkSync(join(srcBin, name));
      } catch {
        continue; // not a link
      }
      const inDest = resolve(join(dest, 'node_modules', '.bin'), target);
      if (existsSync(inDest)) symlinkSync(target, join(dest, 'node_modules', '.bin', name));
    }
  }
  return { workspaces, modules: modules.length };
}

/** Disk usage (as `du` counts it: allocated blocks) and regular files under `dir`, never following links. */
export function diskUsage(dir) {
  let bytes = 0;
  let files = 0;
  const rec = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      const st = lstatSync(full);
      bytes += st.blocks * 512;
      if (e.isDirectory()) rec(full);
      else if (e.isFile()) files++;
    }
  };
  if (existsSync(dir)) {
    bytes += lstatSync(dir).blocks * 512;
    rec(dir);
  }
  return { bytes, files };
}

/** Package names installed under a node_modules folder, nested ones included. */
export function installedPackages(nm) {
  const names = [];
  const rec = (nmDir, prefix) => {
    for (const { key, dir } of listEntries(nmDir, prefix)) {
      if (lstatSync(dir).isSymbolicLink()) continue;
      try {
        names.push({ key, name: readJson(join(dir, 'package.json')).name });
      } catch {
        names.push({ key, name: key.split('node_modules/').pop() });
      }
      rec(join(dir, 'node_modules'), `${key}/node_modules`);
    }
  };
  rec(nm, 'node_modules');
  return names;
}

/** The runtime tree's size, files and any development tool in it. */
export function footprint(dir) {
  const nm = join(dir, 'node_modules');
  const { bytes, files } = diskUsage(nm);
  const pkgs = installedPackages(nm);
  const forbidden = [];
  for (const { key, name } of pkgs) for (const [what, re] of FORBIDDEN) if (re.test(name)) forbidden.push(`${what} (${key})`);
  return { mb: bytes / 2 ** 20, files, packages: pkgs.length, forbidden };
}

/** The build's tools: TypeScript and the type packages tsconfig.base.json names (its `types`), with their dependencies, as locked. */
export function buildTools(root, dir) {
  const packages = lockPackages(root);
  const base = readJson(join(root, 'tsconfig.base.json'));
  const tools = ['typescript', ...(base.compilerOptions?.types ?? []).map((t) => `@types/${t}`)];
  const starts = tools.map((t) => {
    if (!packages[`node_modules/${t}`]) throw new Error(`package-lock.json has no ${t}: it is a devDependency of the root package.json`);
    return `node_modules/${t}`;
  });
  const { modules } = walk(packages, starts);
  const deps = Object.fromEntries(tools.map((t) => [t, packages[`node_modules/${t}`].version]));
  const lockEntries = { '': { name: 'power-meter-build-tools', dependencies: deps } };
  for (const key of modules) {
    const { dev, devOptional, peer, ...entry } = packages[key];
    lockEntries[key] = entry;
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify({ name: 'power-meter-build-tools', private: true, dependencies: deps }, null, 2)}\n`,
  );
  writeFileSync(
    join(dir, 'package-lock.json'),
    `${JSON.stringify({ name: 'power-meter-build-tools', lockfileVersion: 3, requires: true, packages: lockEntries }, null, 2)}\n`,
  );
  return tools.map((t) => `${t}@${deps[t]}`);
}

/** A hash of everything the runtime build reads: the workspaces' sources, package.json and tsconfig files. */
export function sourceHash(root) {
  const { workspaces } = runtimeClosure(root);
  const h = createHash('sha256');
  const add = (rel) => {
    h.update(`${rel}\0`);
    h.update(readFileSync(join(root, rel)));
    h.update('\0');
  };
  add('tsconfig.base.json');
  for (const ws of workspaces) {
    for (const f of ['package.json', 'tsconfig.json']) if (existsSync(join(root, ws, f))) add(`${ws}/${f}`);
    const files = [];
    const rec = (d) => {
      for (const e of readdirSync(join(root, d), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        if (e.isDirectory()) rec(`${d}/${e.name}`);
        else files.push(`${d}/${e.name}`);
      }
    };
    if (existsSync(join(root, ws, 'src'))) rec(`${ws}/src`);
    for (const f of files) add(f);
  }
  return h.digest('hex');
}

const lockHash = (root) =>
  createHash('sha256')
    .update(readFileSync(join(root, 'package-lock.json')))
    .digest('hex');

function readMarker(root) {
  try {
    return readJson(join(root, 'node_modules', MARKER));
  } catch {
    return null;
  }
}

/**
 * What the set-up still has to do in `mode` ('runtime' or 'full') for a Node whose modules ABI is
 * `abi`: 'install' (npm ci: no record of a finished set-up, or the lock, the ABI or the mode
 * changed), 'build' (runtime: the sources changed since the last build), or '' (nothing).
 */
export function needs(root, mode, abi = process.versions.modules) {
  const m = readMarker(root);
  if (!m || m.mode !== mode || m.lock !== lockHash(root) || m.abi !== String(abi)) return 'install';
  if (mode === 'runtime' && m.built !== sourceHash(root)) return 'build';
  return '';
}

/** Records a finished set-up (`built`: the runtime build of the current sources is done too). */
export function mark(root, mode, abi = process.versions.modules, built = false) {
  writeFileSync(
    join(root, 'node_modules', MARKER),
    `${JSON.stringify({ mode, lock: lockHash(root), abi: String(abi), built: built ? sourceHash(root) : null }, null, 2)}\n`,
  );
}

function main(argv) {
  const args = [...argv];
  let root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const at = args.indexOf('--root');
  if (at >= 0) {
    root = resolve(args[at + 1] ?? '');
    args.splice(at, 2);
  }
  let abi = process.versions.modules;
  const abiAt = args.indexOf('--abi');
  if (abiAt >= 0) {
    abi = args[abiAt + 1] ?? '';
    args.splice(abiAt, 2);
  }
  const [cmd, ...rest] = args;
  switch (cmd) {
    case 'programs':
      for (const w of programWorkspaces(root)) console.log(w);
      return 0;
    case 'workspaces':
      for (const w of runtimeClosure(root).workspaces) console.log(w);
      return 0;
    case 'closure': {
      const c = runtimeClosure(root);
      for (const w of c.workspaces) console.log(w);
      for (const m of c.modules) console.log(m);
      return 0;
    }
    case 'prune': {
      const r = prune(root);
      console.log(`pruned node_modules to what the programs run: removed ${r.packages} packages and ${r.files} development files`);
      return 0;
    }
    case 'copy': {
      if (!rest[0]) throw new Error('copy needs a destination');
      copyApp(root, resolve(rest[0]));
      return 0;
    }
    case 'footprint': {
      const check = rest.includes('--check');
      const dir = resolve(rest.find((a) => !a.startsWith('--')) ?? root);
      const f = footprint(dir);
      const over = f.mb > BUDGET.mb || f.files > BUDGET.files;
      console.log(
        `runtime dependencies: ${f.mb.toFixed(1)} MB in ${f.files} files (${f.packages} packages) under ${join(dir, 'node_modules')}; budget ${BUDGET.mb} MB, ${BUDGET.files} files${over ? ': OVER BUDGET' : ''}`,
      );
      if (f.forbidden.length > 0) console.log(`development tools present: ${f.forbidden.join(', ')}`);
      return check && (over || f.forbidden.length > 0) ? 1 : 0;
    }
    case 'build-tools': {
      if (!rest[0]) throw new Error('build-tools needs a directory');
      console.log(buildTools(root, resolve(rest[0])).join(' '));
      return 0;
    }
    case 'source-hash':
      console.log(sourceHash(root));
      return 0;
    case 'require-full': {
      // npm run build/test/demo/bench/lint in a checkout with the runtime set-up: say why they cannot work.
      const m = readMarker(root);
      if (m?.mode === 'runtime') {
        console.error(
          'this checkout has the runtime set-up (./install-requirements.sh --runtime, the default on a Raspberry Pi): no TypeScript, tests or demo here. For them: ./install-requirements.sh --full',
        );
        return 1;
      }
      return 0;
    }
    case 'needs':
      if (rest[0] !== 'runtime' && rest[0] !== 'full') throw new Error('needs runtime|full');
      console.log(needs(root, rest[0], abi));
      return 0;
    case 'mark':
      if (rest[0] !== 'runtime' && rest[0] !== 'full') throw new Error('mark runtime|full [--built]');
      mark(root, rest[0], abi, rest.includes('--built'));
      return 0;
    default:
      console.error(
        'usage: node scripts/runtime-tree.mjs programs|workspaces|closure|prune|copy DEST|footprint [DIR] [--check]|build-tools DIR|source-hash|needs MODE|mark MODE [--built] [--root DIR]',
      );
      return 2;
  }
}

// Run as a command (also through a symlinked directory), not when imported by a test.
if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    console.error(`runtime-tree: ${err.message}`);
    process.exitCode = 1;
  }
}
