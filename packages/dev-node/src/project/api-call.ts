/**
 * ws_api_call: the node's in-process HTTP API for applets (pkg/modules/vm/wasmapi: server.go,
 * handler/*.go, async/processor.go). The applet sends Go's `HttpRequest` as JSON
 * (`{"Method","Url","Header":{"Key":["v"]},"Body":"<base64>"}`; the SDK prefixes the URL with
 * `w3bstream://w3bstream.com`) and gets Go's `HttpResponse` back (`{"Status","StatusCode","Proto",
 * "Header","Body"}`). The routes answer at once and finish their work asynchronously; the
 * asynchronous answer comes back to the project as an event of the request's `Eventtype` header,
 * whose data is that answer's HttpResponse JSON:
 *
 * - `GET /system/hello` (header `Name`): `"{\"message\": \"hello <name>\"}"`, later an event with
 *   `"{\"async message\": \"hello <name>\"}"`;
 * - `GET /system/read_tx` (`{"chainName","hash"}`): an empty 200, later an event with
 *   `{"transaction": …}`;
 * - `POST /system/send_tx` (`{"chainName","to","value","data","operatorName"}`):
 *   `{"transactionID":"<id>"}`, the transaction is sent by the operator (default `default`), and
 *   once it is mined an event with `{"transactionID","state":"CONFIRMED"|"FAILED"}`.
 *
 * Every request needs a non-empty `Eventtype` header (the node's ParamValidate middleware reads it
 * with Header.Get, i.e. under that canonical spelling); without one the answer is an empty 200.
 * Other routes (gen_zk_proof needs the node's risc0 service) answer 404 `404 page not found`.
 */
import { goJsonString } from '../sql/gojson.js';

export interface ApiResponse {
  Status: string;
  StatusCode: number;
  Proto: string;
  Header: Record<string, string[]> | null;
  Body: Uint8Array | null;
}

export interface ApiServices {
  /** eth_getTransactionByHash on a chain named in the project (null: no such chain). */
  readTx(chainName: string, hash: string): Promise<unknown>;
  /** Sends as the named operator; the hash, or throws. */
  sendTx(chainName: string, operatorName: string, tx: { to: string; value: string; data: string }): Promise<string>;
  /** Polls the receipt: true mined ok, false reverted. */
  txSucceeded(chainName: string, hash: string): Promise<boolean>;
  hasChain(chainName: string): boolean;
  /** Delivers an asynchronous answer as an event. */
  deliver(eventType: string, payload: Uint8Array): void;
  log(message: string): void;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  204: 'No Content',
  400: 'Bad Request',
  404: 'Not Found',
  500: 'Internal Server Error',
};
const status = (code: number): string => `${code} ${STATUS_TEXT[code] ?? ''}`;
const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

/** Go's json.Marshal of an HttpResponse (fields in struct order, Header keys sorted, Body base64). */
export function encodeApiResponse(r: ApiResponse): Uint8Array {
  const header =
    r.Header === null
      ? 'null'
      : `{${Object.keys(r.Header)
          .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
          .map(
            (k) =>
              `${goJsonString(utf8(k))}:${r.Header![k] === null ? 'null' : `[${r.Header![k]!.map((v) => goJsonString(utf8(v))).join(',')}]`}`,
          )
          .join(',')}}`;
  const body = r.Body === null ? 'null' : `"${Buffer.from(r.Body).toString('base64')}"`;
  return utf8(
    `{"Status":${goJsonString(utf8(r.Status))},"StatusCode":${r.StatusCode},"Proto":${goJsonString(utf8(r.Proto))},"Header":${header},"Body":${body}}`,
  );
}

interface ApiRequest {
  method: string;
  path: string;
  header: Record<string, string[]>;
  body: Uint8Array;
}

/** encoding/json into HttpRequest: field names match case-insensitively; Body is base64. */
function decodeRequest(bytes: Uint8Array): ApiRequest | null {
  let doc: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
    doc = parsed as Record<string, unknown>;
  } catch {
    return null;
  }
  const field = (name: string): unknown => {
    const key = Object.keys(doc).find((k) => k.toLowerCase() === name.toLowerCase());
    return key === undefined ? undefined : doc[key];
  };
  const method = field('Method') ?? '';
  const url = field('Url') ?? '';
  const header = field('Header') ?? {};
  const body = field('Body') ?? null;
  if (typeof method !== 'string' || typeof url !== 'string' || typeof header !== 'object') return null;
  if (body !== null && (typeof body !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0)) return null;
  let path: string;
  try {
    path = new URL(url, 'w3bstream://w3bstream.com').pathname;
  } catch {
    return null;
  }
  const h: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(header ?? {})) {
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) return null;
    h[k] = v as string[];
  }
  return {
    method: method === '' ? 'GET' : method,
    path,
    header: h,
    body: body ? new Uint8Array(Buffer.from(body, 'base64')) : new Uint8Array(0),
  };
}

/** gin's c.JSON: Go's json.Marshal with the JSON content type. */
function jsonAnswer(code: number, json: string): { code: number; header: Record<string, string[]>; body: Uint8Array } {
  return { code, header: { 'Content-Type': ['application/json; charset=utf-8'] }, body: utf8(json) };
}
const errorAnswer = (code: number, message: string) => jsonAnswer(code, `{"error":${goJsonString(utf8(message))}}`);

/** ConvHttpResponse: the request's headers are copied over the answer's, except Content-Type. */
function respond(req: ApiRequest, a: { code: number; header: Record<string, string[]>; body: Uint8Array }): ApiResponse {
  const header: Record<string, string[]> = { ...a.header };
  for (const [k, v] of Object.entries(req.header)) if (k !== 'Content-Type') header[k] = v;
  return { Status: status(a.code), StatusCode: a.code, Proto: 'HTTP/1.1', Header: header, Body: a.body };
}

let nextTransactionId = BigInt(Date.now()) * 1000n;

export class ApiCallServer {
  constructor(
    private readonly services: ApiServices,
    /** The node checks a sent transaction's state 10 s after sending, then every 10 s. */
    private readonly stateCheckMs = 10_000,
  ) {}

  call(requestBytes: Uint8Array): ApiResponse {
    const req = decodeRequest(requestBytes);
    if (!req) return { Status: '', StatusCode: 400, Proto: '', Header: null, Body: null };
    const eventType = req.header.Eventtype?.[0] ?? '';
    const route = `${req.method} ${req.path}`;
    const known = ['GET /system/hello', 'GET /system/read_tx', 'POST /system/send_tx'];
    if (!known.includes(route))
      return respond(req, { code: 404, header: { 'Content-Type': ['text/plain'] }, body: utf8('404 page not found') });
    if (eventType === '') return respond(req, { code: 200, header: {}, body: new Uint8Array(0) });
    switch (route) {
      case 'GET /system/hello': {
        const name = req.header.Name?.[0] ?? '';
        this.later(req, eventType, async () => jsonAnswer(200, goJsonString(utf8(`{"async message": "hello ${name}"}`))));
        return respond(req, jsonAnswer(200, goJsonString(utf8(`{"message": "hello ${name}"}`))));
      }
      case 'GET /system/read_tx': {
        const body = this.body(req);
        const chainName = typeof body?.chainName === 'string' ? body.chainName : '';
        const hash = typeof body?.hash === 'string' ? body.hash : '';
        if (!chainName || !hash) return respond(req, errorAnswer(400, 'chainName and hash are required'));
        if (!this.services.hasChain(chainName)) return respond(req, errorAnswer(400, 'blockchain not exist'));
        this.later(req, eventType, async () => {
          try {
            const tx = await this.services.readTx(chainName, hash);
            return jsonAnswer(200, `{"transaction":${JSON.stringify(tx)}}`);
          } catch (err) {
            return errorAnswer(500, (err as Error).message);
          }
        });
        return respond(req, { code: 200, header: {}, body: new Uint8Array(0) });
      }
      default: {
        const body = this.body(req);
        const chainName = typeof body?.chainName === 'string' ? body.chainName : '';
        const data = typeof body?.data === 'string' ? body.data : '';
        if (!chainName || !data) return respond(req, errorAnswer(400, 'chainName and data are required'));
        if (!this.services.hasChain(chainName)) return respond(req, errorAnswer(400, 'blockchain not exist'));
        const id = String(nextTransactionId++);
        const operator = typeof body?.operatorName === 'string' && body.operatorName !== '' ? body.operatorName : 'default';
        const tx = { to: String(body?.to ?? ''), value: String(body?.value ?? ''), data };
        this.later(req, eventType, async () => {
          let hash: string;
          try {
            hash = await this.services.sendTx(chainName, operator, tx);
          } catch (err) {
            this.services.log(`send tx with operator failed: ${(err as Error).message}`);
            return jsonAnswer(200, `{"transactionID":"${id}","state":"FAILED"}`);
          }
          for (;;) {
            await new Promise((r) => setTimeout(r, this.stateCheckMs).unref());
            try {
              const ok = await this.services.txSucceeded(chainName, hash);
              return jsonAnswer(200, `{"transactionID":"${id}","state":"${ok ? 'CONFIRMED' : 'FAILED'}"}`);
            } catch {
              // not mined yet: the node checks again 10 s later
            }
          }
        });
        return respond(req, jsonAnswer(200, `{"transactionID":"${id}"}`));
      }
    }
  }

  private body(req: ApiRequest): Record<string, unknown> | null {
    try {
      const v: unknown = JSON.parse(Buffer.from(req.body).toString('utf8'));
      return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  }

  /** The asynchronous half: its answer, unless 204, comes back as an event of the request's type. */
  private later(
    req: ApiRequest,
    eventType: string,
    work: () => Promise<{ code: number; header: Record<string, string[]>; body: Uint8Array }>,
  ): void {
    setImmediate(() => {
      void work().then((a) => {
        if (a.code === 204) return;
        this.services.deliver(eventType, encodeApiResponse(respond(req, a)));
      });
    });
  }
}
