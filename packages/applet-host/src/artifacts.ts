import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Abi, Hex } from 'viem';

/** The package root (src/ and dist/ are both one level below it). */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BUILD_DIR = join(PACKAGE_ROOT, 'build');

export function appletWasmFile(name: 'energy-meter' | 'abi-probe'): string {
  return join(BUILD_DIR, 'applets', `${name}.wasm`);
}

export interface ContractArtifact {
  contractName: string;
  compiler: string;
  abi: Abi;
  bytecode: Hex;
}

export type ContractName = 'DeviceRegistry' | 'DeviceBinding' | 'RewardToken' | 'ReadingVerifier';

export function loadContract(name: ContractName): ContractArtifact {
  const file = join(BUILD_DIR, 'contracts', `${name}.json`);
  if (!existsSync(file)) throw new Error(`${file} is missing: run npm run build -w @power-meter/applet-host`);
  return JSON.parse(readFileSync(file, 'utf8')) as ContractArtifact;
}

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const f of readdirSync(dir)) newest = Math.max(newest, statSync(join(dir, f)).mtimeMs);
  return newest;
}

/**
 * Builds the applets and contracts (scripts/build-artifacts.mjs: asc and solc-js from npm,
 * offline) when an output is missing or older than its sources. Tests call it in their set-up,
 * so a fresh checkout needs no extra step; it is not part of the root build, which also runs on
 * a Raspberry Pi that never uses this tool.
 */
export function ensureArtifacts(): void {
  const outputs = [
    appletWasmFile('energy-meter'),
    appletWasmFile('abi-probe'),
    ...(['DeviceRegistry', 'DeviceBinding', 'RewardToken', 'ReadingVerifier'] as const).map((n) => join(BUILD_DIR, 'contracts', `${n}.json`)),
  ];
  const sourcesMs = Math.max(newestMtimeMs(join(PACKAGE_ROOT, 'applet')), newestMtimeMs(join(PACKAGE_ROOT, 'contracts')), statSync(join(PACKAGE_ROOT, 'scripts', 'build-artifacts.mjs')).mtimeMs);
  const stale = outputs.some((f) => !existsSync(f) || statSync(f).mtimeMs < sourcesMs);
  if (!stale) return;
  execFileSync(process.execPath, [join(PACKAGE_ROOT, 'scripts', 'build-artifacts.mjs')], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
}
