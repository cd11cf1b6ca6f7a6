import type { Approval, DeviceApprovals } from '@power-meter/w3bstream';

/**
 * The dev apinode's approvals from settings (`--approve 0x…:<project>`, `--approve-all`,
 * `--approve-after <s>`), for tests and development without a chain: one implementation of the
 * node's approval rule (`DeviceApprovals`, w3bstream's apinode.ts). The real node keeps a table of
 * (project, device) filled from the ioID contract's `CreateIoID` events and
 * `DeviceProject(address)` (service/apinode/db/sqlite.go, `IsDeviceApproved`); an implementation
 * that follows the ioID contracts on a chain plugs in the same way (it answers from what it has
 * seen on chain; `close()` stops its watching).
 */

export class ApprovalSyntaxError extends RangeError {
  constructor(text: string) {
    super(`approval ${JSON.stringify(text)} is not <device address 0x + 40 hex>:<project ID, a whole number from 1>`);
    this.name = 'ApprovalSyntaxError';
  }
}

/** Parses `0x<40 hex>:<project ID>` (the `--approve` setting). */
export function parseApproval(text: string): Approval {
  const m = /^(0x[0-9a-fA-F]{40}):([0-9]{1,78})$/.exec(text.trim());
  if (m === null) throw new ApprovalSyntaxError(text);
  const id = BigInt(m[2]!);
  if (id < 1n || id >= 2n ** 256n) throw new ApprovalSyntaxError(text);
  return { address: m[1]!.toLowerCase(), projectId: id.toString() };
}

export interface StaticApprovalOptions {
  /** These pairs are approved (from the start, or `approveAfterMs` after they are first asked about). */
  approve?: readonly Approval[];
  /**
   * Every device for every project (the older node's behaviour: no registration check at all).
   * Both addresses recovered from a 64-byte signature are then approved, and the node takes
   * recovery id 0's: the taskID is keccak256(r||s||0) and the device it records may be the other
   * address. Name the device with `approve` where that matters.
   */
  approveAll?: boolean;
  /**
   * The `approve` pairs become approved this long after the node is first asked about them (an
   * owner registering the device meanwhile); until then they get 403. Undefined: at once. Only
   * named devices: a blanket delay would also approve the second address recovered from a
   * resent signature, which no registry would.
   */
  approveAfterMs?: number;
  /** Monotonic clock, ms (tests). */
  now?: () => number;
}

/** Approvals decided by settings, no chain. `approve(address, project)` approves one at once while running. */
export function staticApprovals(opts: StaticApprovalOptions = {}): DeviceApprovals & {
  approve(address: string, projectId: string): void;
} {
  const now = opts.now ?? (() => performance.now());
  const approved = new Set((opts.approve ?? []).map((a) => key(a.address, a.projectId)));
  /** Approved while running (`approve()`): at once, whatever the delay. */
  const approvedNow = new Set<string>();
  const firstSeen = new Map<string, number>();
  return {
    isApproved(address, projectId) {
      if (opts.approveAll) return true;
      const k = key(address, projectId);
      if (approvedNow.has(k)) return true;
      if (!approved.has(k)) return false;
      if (opts.approveAfterMs === undefined || opts.approveAfterMs <= 0) return true;
      const t = now();
      const first = firstSeen.get(k) ?? t;
      firstSeen.set(k, first);
      return t - first >= opts.approveAfterMs;
    },
    approve(address, projectId) {
      approvedNow.add(key(address, projectId));
    },
  };
}

function key(address: string, projectId: string): string {
  return `${address.toLowerCase()}:${projectId}`;
}
