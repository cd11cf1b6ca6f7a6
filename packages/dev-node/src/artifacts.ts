import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (src/ and dist/ are both one level below it). */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BUILD_DIR = join(PACKAGE_ROOT, 'build');

export type AppletName = 'energy-meter' | 'abi-probe' | 'sql-probe';
export const APPLETS: AppletName[] = ['energy-meter', 'abi-probe', 'sql-probe'];

export function appletWasmFile(name: AppletName): string {
  return join(BUILD_DIR, 'applets', `${name}.wasm`);
}

export interface ContractArtifact {
  contractName: string;
  compiler: string;
  /** The contract's JSON ABI, as solc writes it. */
  abi: unknown[];
  bytecode: `0x${string}`;
}

export type ContractName =
  | 'DeviceRegistry'
  | 'DeviceBinding'
  | 'RewardToken'
  | 'ReadingVerifier'
  | 'IoIdRegistryLocal'
  | 'IoIdLocal'
  | 'IoIdDeviceNFT';

export function loadContract(name: ContractName): ContractArtifact {
  const file = join(BUILD_DIR, 'contracts', `${name}.json`);
  if (!existsSync(file)) throw new Error(`${file} is missing: run npm run build -w @power-meter/dev-node`);
  return JSON.parse(readFileSync(file, 'utf8')) as ContractArtifact;
}

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const f of readdirSync(dir)) newest = Math.max(newest, statSync(join(dir, f)).mtimeMs);
  return newest;
}

function isStale(): boolean {
  const outputs = [
    ...APPLETS.map(appletWasmFile),
    join(BUILD_DIR, 'pglite-template.tgz'),
    ...(
      ['DeviceRegistry', 'DeviceBinding', 'RewardToken', 'ReadingVerifier', 'IoIdRegistryLocal', 'IoIdLocal', 'IoIdDeviceNFT'] as const
    ).map((n) => join(BUILD_DIR, 'contracts', `${n}.json`)),
  ];
  const sourcesMs = Math.max(
    newestMtimeMs(join(PACKAGE_ROOT, 'applet')),
    newestMtimeMs(join(PACKAGE_ROOT, 'contracts')),
    statSync(join(PACKAGE_ROOT, 'scripts', 'build-artifacts.mjs')).mtimeMs,
    statSync(createRequire(import.meta.url).resolve('@electric-sql/pglite')).mtimeMs,
  );
  return outputs.some((f) => !existsSync(f) || statSync(f).mtimeMs < sourcesMs);
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Builds the applets and contracts (scripts/build-artifacts.mjs: asc and solc-js from npm,
 * offline) when an output is missing or older than its sources. Tests call it in their set-up,
 * so a fresh checkout needs no extra step; it is not part of the root build, which also runs on
 * a Raspberry Pi that never uses this tool. Test files run in parallel processes: one builds
 * (holding a lock directory), the others wait for it and find the outputs fresh.
 */
export function ensureArtifacts(timeoutMs = 300_000): void {
  const lock = join(PACKAGE_ROOT, '.build-lock');
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (!isStale()) return;
    try {
      mkdirSync(lock);
    } catch {
      // Someone else is building; a lock older than the timeout is a leftover of a killed build.
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > timeoutMs) rmSync(lock, { recursive: true, force: true });
      if (Date.now() > until)
        throw new Error(`another build of ${BUILD_DIR} did not finish within ${timeoutMs} ms (remove ${lock} if no build is running)`);
      sleepMs(200);
      continue;
    }
    try {
      if (isStale())
        execFileSync(process.execPath, [join(PACKAGE_ROOT, 'scripts', 'build-artifacts.mjs')], {
          stdio: ['ignore', 'ignore', 'pipe'],
          timeout: timeoutMs,
        });
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}
