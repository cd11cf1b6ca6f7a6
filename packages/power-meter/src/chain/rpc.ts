import fetch, { type Response } from 'node-fetch';

/**
 * The meter's Ethereum JSON-RPC client: `node-fetch` (Node's `http`: the service runs Node with
 * `--jitless`, which takes away the WebAssembly that Node's built-in `fetch` needs), one request at a time, a timeout per
 * request, and errors worded for the user without the URL's path (hosted RPC URLs carry an API
 * key there). The reward balance and the ioID status both read the chain through it; an Ethereum
 * library would be thousands of files on the Pi for a handful of `eth_call`s.
 */
/** A URL as it may be logged: origin only (hosted RPC URLs carry an API key in the path). */
export function safeRpcUrl(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

/** The node answered with a JSON-RPC error (a revert, an unknown method): the chain was reached. */
export class RpcAnswerError extends Error {
  constructor(
    message: string,
    readonly code: number | undefined,
  ) {
    super(message);
    this.name = 'RpcAnswerError';
  }
}

export class JsonRpc {
  private requestId = 0;
  private controller: AbortController | null = null;

  constructor(
    readonly url: string,
    private readonly timeoutMs = 10_000,
  ) {}

  /** Cancels the request in flight (a stopping reader must not wait for a slow RPC). */
  abort(): void {
    this.controller?.abort();
  }

  async request<T = unknown>(method: string, params: unknown[]): Promise<T> {
    const controller = new AbortController();
    this.controller = controller;
    const timeout = setTimeout(() => controller.abort(), this.timeoutMs);
    try {
      let res: Response;
      try {
        res = await fetch(this.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ jsonrpc: '2.0', id: ++this.requestId, method, params }),
          signal: controller.signal,
          redirect: 'error',
        });
      } catch (err) {
        const e = err as { code?: string; cause?: { code?: string; message?: string }; message?: string };
        const why = controller.signal.aborted ? 'no answer in time' : (e.code ?? e.cause?.code ?? e.cause?.message ?? e.message);
        throw new Error(`RPC ${safeRpcUrl(this.url)} unreachable (${why})`);
      }
      const text = await res.text();
      if (!res.ok) throw new Error(`RPC answered HTTP ${res.status}`);
      let body: { result?: unknown; error?: { message?: unknown; code?: unknown } };
      try {
        body = JSON.parse(text) as typeof body;
      } catch {
        throw new Error(`RPC answered something that is not JSON (${res.headers.get('content-type') ?? 'no content type'})`);
      }
      if (body.error !== undefined)
        throw new RpcAnswerError(
          `RPC error: ${String(body.error?.message ?? JSON.stringify(body.error)).slice(0, 120)}`,
          typeof body.error?.code === 'number' ? body.error.code : undefined,
        );
      return body.result as T;
    } finally {
      clearTimeout(timeout);
      if (this.controller === controller) this.controller = null;
    }
  }

  /** `eth_call` at the latest block. */
  ethCall(to: string, data: string): Promise<unknown> {
    return this.request('eth_call', [{ to, data }, 'latest']);
  }
}
