/**
 * A JSON string exactly as Go's `encoding/json` writes it (`json.Marshal`, HTML escaping on, Go
 * 1.22 and later), because the W3bstream 2 node re-marshals the request with it and hashes those
 * bytes. Differences from `JSON.stringify`:
 * - `<`, `>`, `&` become `\u003c`, `\u003e`, `\u0026` (Go's default HTML-safe escaping);
 * - U+2028 and U+2029 become `\u2028`, `\u2029` (JSONP safety);
 * - a lone surrogate (not valid UTF-8) becomes U+FFFD: Go's decoder already turns it into U+FFFD,
 *   and re-marshals that character as is.
 * The rest agrees: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t` short forms, other control characters
 * as `\u00XX` with lower-case hex, DEL and everything else unescaped. Pure.
 */
export function goJsonString(text: string): string {
  const wellFormed = text.replace(LONE_SURROGATE, '\ufffd');
  return JSON.stringify(wellFormed).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
