// Types for runtime-tree.mjs, so the tests that import it are type-checked against it.
export const PROGRAM_BINS: readonly string[];
export const BUDGET: { mb: number; files: number };
export const FORBIDDEN: ReadonlyArray<readonly [string, RegExp]>;
export const MARKER: string;
export function workspaceDirs(root: string): string[];
export function programWorkspaces(root: string): string[];
export function resolveDep(packages: Record<string, unknown>, from: string, name: string): string | null;
export function runtimeClosure(root: string): { workspaces: string[]; modules: string[] };
export function isDevFile(rel: string, native: boolean): boolean;
export function prune(root: string): { packages: number; files: number };
export function copyApp(root: string, dest: string): { workspaces: string[]; modules: number };
export function diskUsage(dir: string): { bytes: number; files: number };
export function installedPackages(nm: string): Array<{ key: string; name: string }>;
export function footprint(dir: string): { mb: number; files: number; packages: number; forbidden: string[] };
export function buildTools(root: string, dir: string): string[];
export function sourceHash(root: string): string;
export function needs(root: string, mode: 'runtime' | 'full', abi?: string): '' | 'install' | 'build';
export function mark(root: string, mode: 'runtime' | 'full', abi?: string, built?: boolean): void;
