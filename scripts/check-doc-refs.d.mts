// Types for check-doc-refs.mjs, so the tests that import it are type-checked against it.
export interface DocRefFinding {
  line: number;
  ref: string;
  why: string;
}
export const SPEC_NAMES: ReadonlySet<string>;
export function headingsOf(markdown: string): string[];
export function findOutsideRefs(
  file: string,
  text: string,
  exists: (pathFromRoot: string) => boolean,
  specNames?: ReadonlySet<string>,
  headings?: (pathFromRoot: string) => string[] | null,
): DocRefFinding[];
