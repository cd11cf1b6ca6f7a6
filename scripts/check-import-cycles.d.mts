// Types for check-import-cycles.mjs, so the tests that import it are type-checked against it.
export interface ImportCycle {
  /** Every module (or package) of the circle, sorted. */
  members: string[];
  /** One circle through them: a -> b -> … -> a. */
  path: string[];
}
export function workspaces(root: string): Map<string, string>;
export function cycles(graph: Map<string, Set<string>>): ImportCycle[];
export function importCycles(root: string): {
  packages: number;
  modules: number;
  packageCycles: ImportCycle[];
  moduleCycles: ImportCycle[];
  packageGraph: Map<string, Set<string>>;
};
