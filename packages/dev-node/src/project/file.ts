import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type ProjectConfig, ProjectConfigError, validateProject } from './config.js';

/** The endpoint that asks `applet-host up` to start a local chain (anvil) with the chain's id. */
export const LOCAL_CHAIN_ENDPOINT = 'anvil';

/** A project file: a ProjectConfig whose token may come from the environment and whose chains may be `anvil`. */
export type ProjectFile = Omit<ProjectConfig, 'publisherToken'> & { publisherToken?: string };

/**
 * Reads a project file (JSON, the node's configuration shapes: see config.ts and the README's
 * example). Applet wasm paths are relative to the file. Throws ProjectConfigError naming the file
 * and what is wrong.
 */
export function readProjectFile(path: string): ProjectFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ProjectConfigError(`project file ${path} cannot be read: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ProjectConfigError(`project file ${path} is not JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new ProjectConfigError(`project file ${path}: a JSON object is expected`);
  const file = doc as ProjectFile;
  const base = dirname(resolve(path));
  return {
    ...file,
    applets: Array.isArray(file.applets)
      ? file.applets.map((a) => ({
          ...a,
          wasmFile: typeof a.wasmFile === 'string' && !isAbsolute(a.wasmFile) ? resolve(base, a.wasmFile) : a.wasmFile,
        }))
      : file.applets,
  };
}

/** The chain ids whose endpoint is `anvil`: the local chains to start before the host. */
export function localChainIds(file: ProjectFile): number[] {
  return (file.chains ?? []).filter((c) => c.endpoint === LOCAL_CHAIN_ENDPOINT).map((c) => c.chainID);
}

export interface ResolveOptions {
  publisherToken: string;
  /** The URLs of the local chains started for `anvil` endpoints. */
  localEndpoints?: Map<number, string>;
  /** Env entries to set or replace (e.g. command-line settings of this project's applet). */
  env?: Record<string, string>;
}

/** A project ready to start: token set, local chains' URLs filled in, env overrides applied, validated. */
export function resolveProject(file: ProjectFile, o: ResolveOptions): ProjectConfig {
  const env = [...(file.envs?.env ?? [])].filter(([k]) => !(o.env && Object.hasOwn(o.env, k)));
  for (const [k, v] of Object.entries(o.env ?? {})) env.push([k, v]);
  const project: ProjectConfig = {
    ...file,
    publisherToken: o.publisherToken,
    envs: { env },
    chains: (file.chains ?? []).map((c) => {
      if (c.endpoint !== LOCAL_CHAIN_ENDPOINT) return c;
      const url = o.localEndpoints?.get(c.chainID);
      if (!url)
        throw new ProjectConfigError(`project chains.${c.chainID}.endpoint: "anvil" needs a local chain, and none was started for it`);
      return { ...c, endpoint: url };
    }),
  };
  return validateProject(project);
}

/** The applets whose wasm file is not there, as ProjectConfigError text (null: all present). */
export function missingWasmFiles(file: ProjectFile): string | null {
  const missing = (file.applets ?? []).filter((a) => typeof a.wasmFile === 'string' && !existsSync(a.wasmFile));
  if (missing.length === 0) return null;
  return missing
    .map(
      (a) =>
        `project applets.${a.appletName}.wasmFile: ${a.wasmFile} does not exist (build the applet, or give its path relative to the project file)`,
    )
    .join('; ');
}
