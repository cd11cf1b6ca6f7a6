/**
 * What the benchmarks (each package's bench/) share. How a benchmark hands a figure to
 * scripts/bench.mjs: one line on stdout,
 *   BENCH {"name": ..., "value": ..., "unit": ..., "budget": ..., "pass": true|false|null}
 * with the value rounded to four significant digits. Every package's bench/ reports through this
 * one function; bench.mjs reads the lines back and prints the summary table.
 *
 * @param {string} name what was measured
 * @param {number} value the figure
 * @param {string} unit its unit
 * @param {string} [budget] the budget from docs/design.md, '' when none applies
 * @param {boolean | null} [pass] whether the figure is within the budget, null when there is none
 */
export function reportFigure(name, value, unit, budget = '', pass = null) {
  console.log(`BENCH ${JSON.stringify({ name, value: Number(value.toPrecision(4)), unit, budget, pass })}`);
}

/**
 * The median of `xs` (the mean of the two middle values for an even count); NaN for none.
 *
 * @param {readonly number[]} xs
 * @returns {number}
 */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
