import { readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FORBIDDEN, programWorkspaces, runtimeClosure } from '../scripts/runtime-tree.mjs';
import { ROOT } from './support/processes.js';

/**
 * Where a dependency is declared decides whether a Pi gets it: the runtime set-up, install.sh and
 * the release tarball carry exactly what the programs' `dependencies` reach (scripts/runtime-tree.mjs).
 * So every package the programs' code imports must be a dependency of the workspace that imports
 * it (not a devDependency, not only the root's), and nothing the programs reach may be a
 * development tool. These checks read the sources and the lock; they need no install.
 */
function sources(dir: string): string[] {
  const out: string[] = [];
  const rec = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) rec(join(d, e.name));
      else if (/\.[cm]?tsx?$/.test(e.name) && !/\.d\.[cm]?ts$/.test(e.name)) out.push(join(d, e.name));
    }
  };
  rec(dir);
  return out;
}

/** The packages a source file imports (static, re-exported or dynamic), without Node's own modules and relative paths. */
function importedPackages(text: string): string[] {
  const specs = new Set<string>();
  const patterns = [
    /^\s*(?:import|export)\s(?:[^'"`;]*?\sfrom\s+)?['"]([^'"\s]+)['"]/gm,
    // import('x') at run time; `typeof import('x')` is a type, gone from the JavaScript
    /(?<!typeof\s+)\bimport\(\s*['"]([^'"\s]+)['"]\s*\)/g,
    // require('x'), createRequire(import.meta.url)('x')
    /\brequire\(\s*['"]([^'"\s]+)['"]\s*\)/g,
    /\bcreateRequire\([^)]*\)\(\s*['"]([^'"\s]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) specs.add(m[1]!);
  const names = new Set<string>();
  for (const s of specs) {
    if (s.startsWith('.') || s.startsWith('node:') || builtinModules.includes(s.split('/')[0]!)) continue;
    names.add(s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!);
  }
  return [...names].sort();
}

describe('dependency placement: what the programs import is what a Pi installs', () => {
  const closure = runtimeClosure(ROOT);

  it('the programs are found by their commands, and reach the libraries they use', () => {
    expect(programWorkspaces(ROOT)).toEqual(['packages/power-meter', 'packages/power-meter-display']);
    expect(closure.workspaces).toEqual(
      expect.arrayContaining(['packages/meter-files', 'packages/w3bstream', 'packages/ina219', 'packages/st7735']),
    );
    expect(closure.workspaces).not.toContain('packages/dev-node');
  });

  it("every package a runtime workspace imports is in that workspace's dependencies", () => {
    const wrong: string[] = [];
    for (const ws of closure.workspaces) {
      const pkg = JSON.parse(readFileSync(join(ROOT, ws, 'package.json'), 'utf8'));
      const declared = new Set([
        ...Object.keys(pkg.dependencies ?? {}),
        ...Object.keys(pkg.optionalDependencies ?? {}),
        ...Object.keys(pkg.peerDependencies ?? {}),
      ]);
      for (const file of sources(join(ROOT, ws, 'src')))
        for (const name of importedPackages(readFileSync(file, 'utf8')))
          if (!declared.has(name) && name !== pkg.name)
            wrong.push(
              `${file.slice(ROOT.length + 1)} imports ${name}, which ${ws}/package.json does not list in "dependencies": a Pi would not get it`,
            );
    }
    expect(wrong).toEqual([]);
  });

  it('finds imports the way the check above needs', () => {
    expect(
      importedPackages(
        "import { a } from 'mqtt';\nimport type { B } from '@noble/curves/nist.js';\nexport { c } from './local.js';\nconst x = await import('pkcs11js');\nimport 'side-effect';\nimport fs from 'node:fs';\nimport path from 'path';\n// a word from 'gpioset --version' in a comment\n" +
          "const y = createRequire(import.meta.url)('canvas') as typeof import('typed-only');\nconst z = require('chokidar/lib');\n",
      ),
    ).toEqual(['@noble/curves', 'canvas', 'chokidar', 'mqtt', 'pkcs11js', 'side-effect']);
  });

  it('nothing the programs reach is a development tool (Biome, Vitest, TypeScript, anvil, solc, AssemblyScript, binaryen, ethers, PGlite, bundlers)', () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')).packages as Record<string, { link?: boolean }>;
    const tools: string[] = [];
    for (const key of closure.modules) {
      if (lock[key]?.link) continue;
      const name = key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
      for (const [what, re] of FORBIDDEN) if (re.test(name)) tools.push(`${what}: ${key}`);
    }
    expect(tools).toEqual([]);
  });
});
