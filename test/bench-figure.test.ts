import { afterEach, describe, expect, it, vi } from 'vitest';
import { median, reportFigure } from '../scripts/bench-figure.mjs';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('the benchmarks’ figure reporter (scripts/bench-figure.mjs)', () => {
  it('prints one BENCH line scripts/bench.mjs parses: four significant digits, budget and verdict', () => {
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
    reportFigure('deliver a 24 h backlog', 14.23456, 's', '< 30 s', true);
    reportFigure('messages per full frame', 15, 'count');
    expect(lines).toEqual([
      'BENCH {"name":"deliver a 24 h backlog","value":14.23,"unit":"s","budget":"< 30 s","pass":true}',
      'BENCH {"name":"messages per full frame","value":15,"unit":"count","budget":"","pass":null}',
    ]);
    // What bench.mjs does with such a line: the JSON after "BENCH ".
    expect(JSON.parse(lines[0]!.slice(6))).toMatchObject({ value: 14.23, pass: true });
  });

  it('median: the middle value, or the mean of the two middle ones; the input stays unsorted', () => {
    const xs = [5, 1, 3];
    expect(median(xs)).toBe(3);
    expect(xs).toEqual([5, 1, 3]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});
