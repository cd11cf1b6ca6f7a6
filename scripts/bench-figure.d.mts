// Types for bench-figure.mjs, which the benchmarks (packages/*/bench) import.
export function reportFigure(name: string, value: number, unit: string, budget?: string, pass?: boolean | null): void;
export function median(xs: readonly number[]): number;
