/**
 * Markdown tables as GitHub renders them (GitHub Flavored Markdown, "Tables" extension): a row
 * is split at every `|` that is not escaped as `\|`, inside code spans too. A row with more cells
 * than the header renders with its text spilled into extra columns (the `--signature` row's
 * `r||s` did that); fewer, with cells missing.
 */
export function cellsOf(row: string): string[] {
  const body = row
    .trim()
    .replace(/^\|/, '')
    .replace(/(?<!\\)\|$/, '');
  return body.split(/(?<!\\)\|/).map((c) => c.trim());
}

export interface TableProblem {
  line: number;
  cells: number;
  expected: number;
  row: string;
}

export function tableProblems(markdown: string): TableProblem[] {
  const lines = markdown.split('\n');
  const problems: TableProblem[] = [];
  let inFence = false;
  for (let i = 0; i < lines.length; i++) {
    if (/^\s*(```|~~~)/.test(lines[i]!)) inFence = !inFence;
    if (inFence) continue;
    const sep = lines[i + 1];
    // A table starts with a header row followed by the delimiter row (|---|:--:|).
    if (!lines[i]!.trim().startsWith('|') || sep === undefined || !/^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/.test(sep)) continue;
    const expected = cellsOf(lines[i]!).length;
    let j = i + 1;
    for (; j < lines.length && lines[j]!.trim().startsWith('|'); j++) {
      const n = cellsOf(lines[j]!).length;
      if (n !== expected) problems.push({ line: j + 1, cells: n, expected, row: lines[j]!.slice(0, 120) });
    }
    i = j;
  }
  return problems;
}
