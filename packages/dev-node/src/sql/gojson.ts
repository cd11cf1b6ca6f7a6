/**
 * The bits of Go's `encoding/json` (Go 1.19, the node's build image `golang:1.19`) and `strconv`
 * that decide the bytes an applet receives: string escaping (HTML characters, U+2028/2029,
 * invalid UTF-8 as \ufffd), float formatting, and map keys sorted byte-wise.
 */
const HEX = '0123456789abcdef';

/** Printable ASCII that Go writes as it is (no quote, backslash or HTML character). */
const PLAIN = /^[\x20-\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e]*$/;

/** goJsonString for a JavaScript string (its UTF-8 bytes). */
export function goJsonText(text: string): string {
  return PLAIN.test(text) ? `"${text}"` : goJsonString(Buffer.from(text, 'utf8'));
}

/** Go's `encodeState.string` with HTML escaping on (json.Marshal's default), over UTF-8 bytes. */
export function goJsonString(bytes: Uint8Array): string {
  let out = '"';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      if (b >= 0x20 && b !== 0x22 && b !== 0x5c && b !== 0x3c && b !== 0x3e && b !== 0x26) out += String.fromCharCode(b);
      else if (b === 0x22) out += '\\"';
      else if (b === 0x5c) out += '\\\\';
      else if (b === 0x0a) out += '\\n';
      else if (b === 0x0d) out += '\\r';
      else if (b === 0x09) out += '\\t';
      // Go 1.19 writes \b and \f (and the other controls, and <, >, &) as \u00XX.
      else out += `\\u00${HEX[b >> 4]}${HEX[b & 15]}`;
      i++;
      continue;
    }
    const [cp, size] = decodeRune(bytes, i);
    if (cp < 0) out += '\\ufffd';
    else if (cp === 0x2028 || cp === 0x2029) out += `\\u202${HEX[cp & 15]}`;
    else out += String.fromCodePoint(cp);
    i += size;
  }
  return `${out}"`;
}

/** One UTF-8 sequence as Go's utf8.DecodeRune reads it: [-1, 1] for an invalid byte. */
function decodeRune(b: Uint8Array, i: number): [number, number] {
  const c0 = b[i]!;
  const cont = (k: number): number => {
    const c = b[i + k];
    return c !== undefined && (c & 0xc0) === 0x80 ? c & 0x3f : -1;
  };
  if (c0 >= 0xc2 && c0 <= 0xdf) {
    const c1 = cont(1);
    return c1 < 0 ? [-1, 1] : [((c0 & 0x1f) << 6) | c1, 2];
  }
  if (c0 >= 0xe0 && c0 <= 0xef) {
    const c1 = cont(1);
    const c2 = cont(2);
    if (c1 < 0 || c2 < 0) return [-1, 1];
    const cp = ((c0 & 0x0f) << 12) | (c1 << 6) | c2;
    if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) return [-1, 1];
    return [cp, 3];
  }
  if (c0 >= 0xf0 && c0 <= 0xf4) {
    const c1 = cont(1);
    const c2 = cont(2);
    const c3 = cont(3);
    if (c1 < 0 || c2 < 0 || c3 < 0) return [-1, 1];
    const cp = ((c0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3;
    if (cp < 0x10000 || cp > 0x10ffff) return [-1, 1];
    return [cp, 4];
  }
  return [-1, 1];
}

export class GoJsonError extends Error {}

/**
 * A float64 as json.Marshal writes it: shortest round-trip digits, exponent form below 1e-6 and
 * from 1e21 (as JavaScript's own), `-0` kept; NaN and ±Inf are an error (`json: unsupported value`).
 */
export function goJsonFloat(x: number): string {
  if (!Number.isFinite(x)) throw new GoJsonError(`json: unsupported value: ${goFormatFloat(x)}`);
  if (Object.is(x, -0)) return '-0';
  return String(x);
}

/** strconv.FormatFloat(x, 'f', -1, 64): shortest round-trip digits, never an exponent. */
export function goFormatFloat(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Number.POSITIVE_INFINITY) return '+Inf';
  if (x === Number.NEGATIVE_INFINITY) return '-Inf';
  if (Object.is(x, -0)) return '-0';
  const text = String(x);
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!m) return text;
  const [, sign, lead, frac = '', expText] = m;
  const digits = lead! + frac;
  const exp = Number(expText);
  // digits = d.ddd × 10^exp: the decimal point sits after (exp + 1) digits.
  const point = exp + 1;
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/**
 * The key order of a Go map[string]… as json.Marshal writes it: sorted by the keys' bytes, the
 * last of duplicate keys winning. Returns, in that order, each key's JSON and the index of the
 * value it takes.
 */
export function goMapOrder(keys: string[]): { json: string; index: number }[] {
  const last = new Map<string, number>();
  keys.forEach((k, i) => {
    last.set(k, i);
  });
  return [...last.keys()]
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((k) => ({ json: goJsonText(k), index: last.get(k)! }));
}

/** A Go map[string]… as json.Marshal writes it (values already JSON). */
export function goJsonObject(entries: [string, string][]): string {
  return `{${goMapOrder(entries.map(([k]) => k))
    .map((o) => `${o.json}:${entries[o.index]![1]}`)
    .join(',')}}`;
}
