import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cycles, importCycles } from '../scripts/check-import-cycles.mjs';
import { ROOT } from './support/processes.js';

/** A repository with these files (path -> text). */
function repo(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'import-cycles-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}
const made: string[] = [];
afterAll(() => {
  for (const root of made) rmSync(root, { recursive: true, force: true });
});
const pkg = (name: string) => JSON.stringify({ name: `@power-meter/${name}` });

describe('check-import-cycles: no package and no module imports in a circle', () => {
  it('finds a circle of modules, type-only and re-exporting imports included, and names every module in it', () => {
    const root = repo({
      'packages/a/package.json': pkg('a'),
      'packages/a/src/doctor.ts':
        "import { b } from './checks/b.js';\nexport { c } from './checks/c.js';\nexport interface Check { name: string }\n",
      'packages/a/src/checks/b.ts': "import type { Check } from '../doctor.js';\nexport const b = (x: Check) => x;\n",
      'packages/a/src/checks/c.ts': "export const c = async () => (await import('../doctor.js')).b;\n",
      'packages/a/src/leaf.ts': "import { b } from './checks/b.js';\nexport const leaf = b;\n",
      'packages/a/test/x.test.ts': "import '../src/leaf.js';\n",
    });
    made.push(root);
    const found = importCycles(root);
    expect(found.packageCycles).toEqual([]);
    expect(found.moduleCycles).toEqual([
      {
        members: ['packages/a/src/checks/b.ts', 'packages/a/src/checks/c.ts', 'packages/a/src/doctor.ts'],
        path: ['packages/a/src/checks/b.ts', 'packages/a/src/doctor.ts', 'packages/a/src/checks/b.ts'],
      },
    ]);
  });

  it('finds a circle of packages, through a name imported by at run time too; tests do not count', () => {
    const root = repo({
      'packages/lib/package.json': pkg('lib'),
      'packages/lib/src/index.ts': 'export const lib = 1;\n',
      'packages/lib/test/lib.test.ts': "import { dev } from '@power-meter/dev';\n",
      'packages/dev/package.json': pkg('dev'),
      'packages/dev/src/index.ts': "import { lib } from '@power-meter/lib';\nexport const dev = lib;\n",
      'packages/app/package.json': pkg('app'),
      'packages/app/src/cli.ts':
        "import { lib } from '@power-meter/lib';\nconst DEV = '@power-meter/dev/receiver';\nexport const load = () => import(DEV);\n",
    });
    made.push(root);
    expect(importCycles(root).packageCycles).toEqual([]); // tests may use the development package
    writeFileSync(join(root, 'packages/lib/src/later.ts'), "export const later = () => import('@power-meter/app');\n");
    writeFileSync(join(root, 'packages/app/src/dev.ts'), "export { dev } from '@power-meter/dev';\n");
    expect(importCycles(root).packageCycles).toEqual([
      {
        members: ['@power-meter/app', '@power-meter/dev', '@power-meter/lib'],
        path: ['@power-meter/app', '@power-meter/lib', '@power-meter/app'],
      },
    ]);
  });

  it('a module importing itself is a circle; a graph without circles has none', () => {
    expect(cycles(new Map([['x', new Set(['x'])]]))).toEqual([{ members: ['x'], path: ['x', 'x'] }]);
    expect(
      cycles(
        new Map([
          ['x', new Set(['y'])],
          ['y', new Set(['z'])],
          ['z', new Set<string>()],
        ]),
      ),
    ).toEqual([]);
  });

  it('the repository has none', () => {
    const found = importCycles(ROOT);
    expect(found.packages).toBeGreaterThanOrEqual(8);
    expect(found.modules).toBeGreaterThan(150);
    expect([...found.packageCycles, ...found.moduleCycles]).toEqual([]);
    // The programs may load the development package; nothing it uses may load a program.
    expect(found.packageGraph.get('@power-meter/dev-node')).not.toContain('@power-meter/power-meter');
    expect(found.packageGraph.get('@power-meter/w3bstream')).not.toContain('@power-meter/dev-node');
  });
});
