import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cellsOf, tableProblems } from './support/markdown-tables.js';
import { ROOT } from './support/processes.js';

function markdownFiles(): string[] {
  const files = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  for (const p of readdirSync(join(ROOT, 'packages')))
    if (existsSync(join(ROOT, 'packages', p, 'README.md'))) files.push(`packages/${p}/README.md`);
  return files;
}

describe('Markdown tables render with the cells they were written with', () => {
  it('every row of every table in the READMEs and docs has as many cells as its header', () => {
    const files = markdownFiles();
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) expect(tableProblems(readFileSync(join(ROOT, f), 'utf8')), f).toEqual([]);
  });

  it('counts as GitHub does: an unescaped pipe in a code span splits the cell, an escaped one does not', () => {
    const table = (row: string) => `| a | b |\n| --- | --- |\n${row}\n`;
    expect(tableProblems(table('| `--signature` | raw (r||s) or der |'))).toEqual([
      { line: 3, cells: 4, expected: 2, row: '| `--signature` | raw (r||s) or der |' },
    ]);
    expect(tableProblems(table('| `--signature` | raw (r\\|\\|s) or der |'))).toEqual([]);
    expect(tableProblems(table('| `a|b` | c |'))).toHaveLength(1);
    expect(tableProblems(table('| only one |'))).toHaveLength(1);
    // Pipes in fenced code are not tables.
    expect(tableProblems('```\n| a | b |\n| --- | --- |\n| x |\n```\n')).toEqual([]);
  });

  it('the --signature row reads r||s in one cell', () => {
    const row = readFileSync(join(ROOT, 'README.md'), 'utf8')
      .split('\n')
      .find((l) => l.startsWith('| `--signature`'))!;
    expect(cellsOf(row)[4]).toBe('signature encoding: raw (64-byte r\\|\\|s hex, low S) or der');
  });
});
