/** A minimal Ethereum JSON-RPC client over HTTP (fetch): what the host functions need, no more. */
export class RpcError extends Error {
  constructor(
    message: string,
    readonly code?: number,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

let nextId = 1;

export async function rpc<T = unknown>(url: string, method: string, params: unknown[] = [], timeoutMs = 10_000): Promise<T> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = (await res.json()) as { result?: T; error?: { code: number; message: string; data?: unknown } };
  if (body.error) throw new RpcError(`${method}: ${body.error.message}`, body.error.code, body.error.data);
  if (!res.ok) throw new RpcError(`${method}: HTTP ${res.status}`);
  return body.result as T;
}

/** A decimal amount (what the SDK's SendTx passes as value) as a JSON-RPC quantity. */
export function toQuantity(decimal: string): string {
  const text = decimal.trim() === '' ? '0' : decimal.trim();
  if (!/^\d+$/.test(text)) throw new RpcError(`value ${JSON.stringify(decimal)} is not a decimal number of wei`);
  return `0x${BigInt(text).toString(16)}`;
}

export function hexToBytes(hex: string): Uint8Array {
  const h = hex.startsWith('0x') ? hex.slice(2) : hex;
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) throw new RpcError(`not hex: ${hex.slice(0, 20)}`);
  return Uint8Array.from(Buffer.from(h, 'hex'));
}
