import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { rpc } from './rpc.js';

export interface LocalChain {
  rpcUrl: string;
  chainId: number;
  /** The chain's unlocked development accounts (eth_sendTransaction works from them). */
  accounts: string[];
  /** The watchdog's process id (anvil runs under it). */
  pid: number;
  stop(): Promise<void>;
}

export interface LocalChainOptions {
  chainId?: number;
  /** How long to wait for the chain to answer JSON-RPC (start-up on a loaded machine). */
  readyTimeoutMs?: number;
  log?: (line: string) => void;
}

export class AnvilMissingError extends Error {}

/**
 * anvil's binary from its npm platform package (an optional dependency: the packages exist for
 * Linux and macOS on x64 and arm64, not for 32-bit ARM, where npm skips them).
 */
export function anvilBinary(): string {
  const pkg = `@foundry-rs/anvil-${process.platform}-${process.arch === 'x64' ? 'amd64' : process.arch}`;
  try {
    return createRequire(import.meta.url).resolve(`${pkg}/bin/anvil`);
  } catch {
    throw new AnvilMissingError(
      `anvil is not installed for ${process.platform}-${process.arch} (npm package ${pkg}): run npm ci on a machine that package exists for (Linux or macOS, x64 or arm64)`,
    );
  }
}

// The watchdog always runs from dist (Node 20 cannot run TypeScript), as the VM threads do.
const WATCHDOG = fileURLToPath(new URL('../../dist/chain/watchdog.js', import.meta.url));

/**
 * Starts anvil (Foundry's local EVM node) on a free loopback port and waits until it answers
 * JSON-RPC, polling: the port is the one anvil itself prints after binding port 0, so no other
 * process can take it in between. anvil runs under a watchdog whose stdin this process holds:
 * when this process ends, however (kill -9 included), the watchdog stops anvil.
 */
export async function startLocalChain(opts: LocalChainOptions = {}): Promise<LocalChain> {
  const chainId = opts.chainId ?? 31337;
  const anvilArgs = ['--host', '127.0.0.1', '--port', '0', '--chain-id', String(chainId), '--accounts', '10'];
  const child = spawn(process.execPath, [WATCHDOG, anvilBinary(), ...anvilArgs], { stdio: ['pipe', 'pipe', 'pipe'] });
  // The pipe is what the watchdog watches; this process never writes to it.
  child.stdin?.on('error', () => undefined);
  const rpcUrl = await new Promise<string>((resolve, reject) => {
    let out = '';
    const deadline = setTimeout(
      () => fail(new Error(`anvil did not start within ${opts.readyTimeoutMs ?? 60_000} ms:\n${out.slice(-2000)}`)),
      opts.readyTimeoutMs ?? 60_000,
    );
    const fail = (err: Error): void => {
      clearTimeout(deadline);
      child.kill('SIGKILL');
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const m = /Listening on (127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(deadline);
        child.stdout?.off('data', onData);
        resolve(`http://${m[1]}`);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => fail(new Error(`anvil exited (${code}) before listening:\n${out.slice(-2000)}`)));
    child.once('error', fail);
  });
  child.stdout?.resume();
  const accounts = await waitForRpc(rpcUrl, opts.readyTimeoutMs ?? 60_000);
  opts.log?.(`local chain ${chainId} at ${rpcUrl}`);
  return { rpcUrl, chainId, accounts, pid: child.pid ?? 0, stop: () => stopChild(child) };
}

async function waitForRpc(url: string, timeoutMs: number): Promise<string[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await rpc<string[]>(url, 'eth_accounts', [], 2_000);
    } catch (err) {
      if (Date.now() > until) throw new Error(`the local chain at ${url} does not answer: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.stdin?.end(); // the watchdog stops anvil and exits
    setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
  });
}
