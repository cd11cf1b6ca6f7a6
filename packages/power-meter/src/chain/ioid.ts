import type { IoIdStatus } from '@power-meter/meter-files';
import { ChainPoller } from './poller.js';
import { JsonRpc, RpcAnswerError, safeRpcUrl } from './rpc.js';

/**
 * The device's ioID as the chain sees it, read with `eth_call`s (no Ethereum library). The
 * functions and their selectors (first 4 bytes of keccak256 of the signature; tests recompute
 * them) are those of `iotexproject/ioID-contracts`:
 * - ioIDRegistry: `nonces(address)`, `exists(address)`, `deviceTokenId(address)` (reverts
 *   "device not exists" for an unknown device), `ioID()` (the ioID NFT contract);
 * - ioID: `deviceProject(address)` (a public mapping: 0 for an unknown device), `ownerOf(uint256)`
 *   (ERC-721).
 * The W3bstream node asks the same `deviceProject` when it sees a `CreateIoID` event, and takes
 * readings only from devices whose project is the task's project.
 */
export const IOID_SELECTORS = {
  nonces: '0x7ecebe00',
  exists: '0xf6a3d24e',
  deviceTokenId: '0x4965c7e1',
  ioID: '0xc3b3135e',
  deviceProject: '0x7ba0ef27',
  ownerOf: '0x6352211e',
} as const;

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

export function addressArg(address: string): string {
  if (!ADDRESS.test(address)) throw new Error(`${JSON.stringify(address)} is not 0x + 40 hex digits`);
  return address.slice(2).toLowerCase().padStart(64, '0');
}

function uintArg(v: bigint): string {
  return v.toString(16).padStart(64, '0');
}

/** One 32-byte return word; `0x` (no code at the address) gets its own message. */
export function returnWord(result: unknown, what: string, contract: string): bigint {
  if (typeof result !== 'string' || !/^0x[0-9a-fA-F]{64,}$/.test(result))
    throw new Error(
      result === '0x'
        ? `${what} returned nothing: there is no contract at ${contract} on this chain (wrong address or --rpc-url?)`
        : `${what} returned ${JSON.stringify(String(result).slice(0, 80))}, not a 32-byte word: is ${contract} the right contract?`,
    );
  return BigInt(result.slice(0, 66));
}

function wordAddress(w: bigint): string {
  return `0x${w.toString(16).padStart(40, '0')}`;
}

/** The registry's `nonces(device)`: the nonce the next permit must carry. */
export async function readIoIdNonce(rpc: JsonRpc, registry: string, device: string): Promise<bigint> {
  return returnWord(await rpc.ethCall(registry, `${IOID_SELECTORS.nonces}${addressArg(device)}`), 'nonces(device)', registry);
}

/** What `ioid status` prints and state.json carries, without the bookkeeping of the poller. */
export type IoIdReading = Pick<IoIdStatus, 'registered' | 'ioIdContract' | 'ioId' | 'owner' | 'projectId'>;

/** One complete read: registered or not, and when it is, its ioID token, owner and project. */
export async function readIoIdStatus(rpc: JsonRpc, registry: string, device: string, ioIdContract?: string): Promise<IoIdReading> {
  const ioid = ioIdContract ?? wordAddress(returnWord(await rpc.ethCall(registry, IOID_SELECTORS.ioID), 'ioID()', registry));
  const exists = returnWord(await rpc.ethCall(registry, `${IOID_SELECTORS.exists}${addressArg(device)}`), 'exists(device)', registry);
  if (exists === 0n) return { registered: false, ioIdContract: ioid, ioId: null, owner: null, projectId: null };
  const id = returnWord(
    await rpc.ethCall(registry, `${IOID_SELECTORS.deviceTokenId}${addressArg(device)}`),
    'deviceTokenId(device)',
    registry,
  );
  const project = returnWord(
    await rpc.ethCall(ioid, `${IOID_SELECTORS.deviceProject}${addressArg(device)}`),
    'deviceProject(device)',
    ioid,
  );
  let owner: string | null = null;
  try {
    owner = wordAddress(returnWord(await rpc.ethCall(ioid, `${IOID_SELECTORS.ownerOf}${uintArg(id)}`), 'ownerOf(id)', ioid));
  } catch (err) {
    // A burnt or migrated token reverts in ownerOf: the registration is still a fact.
    if (!(err instanceof RpcAnswerError)) throw err;
  }
  return { registered: true, ioIdContract: ioid, ioId: id.toString(), owner, projectId: project.toString() };
}

export interface IoIdWatcherOptions {
  rpcUrl: string;
  registry: string;
  device: string;
  did: string;
  intervalMs: number;
  timeoutMs?: number;
  maxBackoffMs?: number;
  onUpdate: (s: IoIdStatus & { failures: number }) => void;
  log?: (line: string) => void;
  now?: () => number;
  random?: () => number;
}

/**
 * Reads the device's ioID status every `intervalMs` (default a minute: a registration is a rare
 * event, and five `eth_call`s a minute cost the backend nothing measurable), with the reward
 * balance's backoff after failures. Beside measurement and delivery, sharing nothing with them.
 */
export class IoIdWatcher {
  private state: IoIdStatus & { failures: number };
  private readonly rpc: JsonRpc;
  private readonly poller: ChainPoller;
  private readonly now: () => number;

  constructor(private readonly opts: IoIdWatcherOptions) {
    this.now = opts.now ?? Date.now;
    this.rpc = new JsonRpc(opts.rpcUrl, opts.timeoutMs ?? 10_000);
    this.poller = new ChainPoller(this.rpc, opts, () => this.round());
    this.state = {
      registry: opts.registry.toLowerCase(),
      ioIdContract: null,
      device: opts.device.toLowerCase(),
      did: opts.did,
      registered: null,
      ioId: null,
      owner: null,
      projectId: null,
      readAtMs: null,
      intervalMs: opts.intervalMs,
      error: null,
      failures: 0,
    };
  }

  current(): IoIdStatus & { failures: number } {
    return { ...this.state };
  }

  start(): void {
    this.poller.start();
  }

  stop(): void {
    this.poller.stop();
  }

  async readOnce(): Promise<IoIdStatus & { failures: number }> {
    try {
      const r = await readIoIdStatus(this.rpc, this.opts.registry, this.opts.device, this.state.ioIdContract ?? undefined);
      this.state = { ...this.state, ...r, readAtMs: this.now(), error: null, failures: 0 };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      if (error !== this.state.error)
        this.opts.log?.(`ioID status not read from ${safeRpcUrl(this.opts.rpcUrl)}: ${error} (measurement and delivery go on)`);
      this.state = { ...this.state, error, failures: this.state.failures + 1 };
    }
    return this.current();
  }

  private async round(): Promise<number> {
    await this.readOnce();
    if (!this.poller.stopped) this.opts.onUpdate(this.current());
    return this.state.failures;
  }
}

/**
 * The one-line verdict `doctor`, the log and the screen share. `projectId` is the meter's
 * W3bstream 2 project (empty with v1): a device registered for another project is not approved
 * for this one.
 */
export function ioIdVerdict(
  s: Pick<IoIdStatus, 'registered' | 'projectId' | 'ioId' | 'owner' | 'error'>,
  projectId: string,
): { ok: boolean; text: string } {
  if (s.registered === null) return { ok: false, text: s.error === null ? 'not read yet' : `not read: ${s.error}` };
  if (!s.registered) return { ok: false, text: projectId ? `not registered for project ${projectId}` : 'not registered' };
  const what = `registered: ioID ${s.ioId}, owner ${s.owner ?? '(unknown)'}, project ${s.projectId}`;
  if (projectId && s.projectId !== projectId) return { ok: false, text: `${what}, not project ${projectId}` };
  return { ok: true, text: what };
}
