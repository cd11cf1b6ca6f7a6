/**
 * The event data the node's monitors and cron deliver, byte for byte (all built with Go's
 * encoding/json; go-ethereum v1.12.0 for the chain objects):
 *
 * - contract log: `types.Log.MarshalJSON` (pkg/modules/blockchain/contract.go);
 * - chain transaction: `types.Transaction.MarshalJSON` of the transaction ethclient read back
 *   (tx.go; go-ethereum core/types/transaction_marshalling.go: fields by the transaction's type);
 * - chain height: `{"HeaderNumber":<head>}` (height.go);
 * - cron: `{"ID":"<cron job id>","Timestamp":"<time.Now() in RFC 3339 with nanoseconds>"}`
 *   (pkg/modules/cronjob/cron_job.go).
 */

/** A log as eth_getLogs returns it. */
export interface RpcLog {
  address: string;
  topics: string[];
  data: string;
  blockNumber: string;
  transactionHash: string;
  transactionIndex: string;
  blockHash: string;
  logIndex: string;
  removed?: boolean;
}

/** hexutil.Uint64 / hexutil.Big / hexutil.Uint: 0x + lower-case hex without leading zeros. */
export function quantity(q: string | number | bigint): string {
  return `0x${BigInt(q).toString(16)}`;
}
const lowerHex = (h: string): string => h.toLowerCase();

export function goLogJson(log: RpcLog): string {
  return JSON.stringify({
    address: lowerHex(log.address),
    topics: log.topics.map(lowerHex),
    data: lowerHex(log.data),
    blockNumber: quantity(log.blockNumber),
    transactionHash: lowerHex(log.transactionHash),
    transactionIndex: quantity(log.transactionIndex),
    blockHash: lowerHex(log.blockHash),
    logIndex: quantity(log.logIndex),
    removed: log.removed ?? false,
  });
}

/** A transaction as eth_getTransactionByHash returns it (the fields go-ethereum reads). */
export interface RpcTransaction {
  type?: string;
  chainId?: string;
  nonce: string;
  to: string | null;
  gas: string;
  gasPrice?: string;
  maxPriorityFeePerGas?: string;
  maxFeePerGas?: string;
  maxFeePerBlobGas?: string;
  value: string;
  input: string;
  accessList?: { address: string; storageKeys: string[] }[];
  blobVersionedHashes?: string[];
  v: string;
  r: string;
  s: string;
  hash: string;
  blockNumber?: string | null;
}

export class UnsupportedTransactionError extends Error {}

/** go-ethereum v1.12.0's txJSON for the types it knows (0 legacy, 1 access list, 2 dynamic fee, 3 blob). */
export function goTransactionJson(tx: RpcTransaction): string {
  const type = Number(BigInt(tx.type ?? '0x0'));
  if (type > 3) throw new UnsupportedTransactionError(`transaction type not supported (${type})`);
  const q = (v: string | undefined): string | null => (v === undefined || v === null ? null : quantity(v));
  const accessList = (tx.accessList ?? []).map((e) => ({ address: lowerHex(e.address), storageKeys: e.storageKeys.map(lowerHex) }));
  const enc: Record<string, unknown> = { type: quantity(type) };
  if (type !== 0) enc.chainId = q(tx.chainId);
  enc.nonce = q(tx.nonce);
  enc.to = tx.to ? lowerHex(tx.to) : null;
  enc.gas = q(tx.gas);
  enc.gasPrice = type <= 1 ? q(tx.gasPrice) : null;
  enc.maxPriorityFeePerGas = type >= 2 ? q(tx.maxPriorityFeePerGas) : null;
  enc.maxFeePerGas = type >= 2 ? q(tx.maxFeePerGas) : null;
  if (type === 3) enc.maxFeePerDataGas = q(tx.maxFeePerBlobGas);
  enc.value = q(tx.value);
  enc.input = lowerHex(tx.input);
  if (type !== 0) enc.accessList = accessList;
  if (type === 3 && (tx.blobVersionedHashes ?? []).length > 0) enc.blobVersionedHashes = tx.blobVersionedHashes!.map(lowerHex);
  enc.v = q(tx.v);
  enc.r = q(tx.r);
  enc.s = q(tx.s);
  enc.hash = lowerHex(tx.hash);
  return JSON.stringify(enc);
}

export function chainHeightJson(head: number | bigint): string {
  return `{"HeaderNumber":${BigInt(head).toString()}}`;
}

/** Go's time.Now() marshalled: RFC 3339 with up to nine fraction digits, trailing zeros dropped, UTC as Z. */
export function goNowJson(epochNs: bigint): string {
  const ms = epochNs / 1_000_000n;
  const iso = new Date(Number(ms)).toISOString(); // …T04:10:00.123Z
  const frac = (epochNs % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${iso.slice(0, 19)}${frac ? `.${frac}` : ''}Z`;
}

export function cronPayload(cronJobId: string, epochNs: bigint): string {
  return `{"ID":"${cronJobId}","Timestamp":"${goNowJson(epochNs)}"}`;
}
