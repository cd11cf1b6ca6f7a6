import { verifyBody } from '@power-meter/w3bstream';

/**
 * `power-meter verify`, the pure part: one result line per message and the number that failed.
 *
 * Each line names the device address of the signer (derived from the body's public key, or, when
 * `public_key` is an address, proven by recovering the key from the signature), so a
 * body is traced to a device, not only found "valid": any body carrying its own key verifies,
 * so without an expected address or key, "ok" only means "well formed and signed by the key it
 * carries". `expectAddress` / `expectKey` say which device must have signed; they also require a
 * low S in both encodings, because this meter never signs otherwise. Without them, a raw
 * signature must have a low S (raw is this meter's form) and a DER one may have a high S (foreign
 * devices such as the tutorial's simulator send it; the line says `high-S`).
 */
export function verifyLines(text: string, opts: { expectAddress?: string; expectKey?: string } = {}): { lines: string[]; bad: number } {
  const trimmed = text.trim();
  const inputs = trimmed.startsWith('{') && !trimmed.includes('\n') ? [trimmed] : trimmed.split('\n').filter((l) => l.trim() !== '');
  const strict = opts.expectAddress !== undefined || opts.expectKey !== undefined;
  let bad = 0;
  const lines = inputs.map((line, i) => {
    let body = line;
    let eventId: string | null = null;
    try {
      const o = JSON.parse(line) as { body?: unknown; eventId?: unknown };
      if (typeof o.body === 'string') {
        body = o.body; // a dev-receiver record
        if (typeof o.eventId === 'string') eventId = o.eventId;
      }
    } catch {
      // not JSON: verifyBody reports it
    }
    const v = verifyBody(body, { requireLowS: strict ? 'all' : 'raw' });
    let problem = v.ok ? null : v.reason;
    if (problem === null && opts.expectAddress !== undefined && v.deviceId !== opts.expectAddress.toLowerCase())
      problem = `signed by ${v.deviceId}, not the expected ${opts.expectAddress.toLowerCase()}`;
    if (problem === null && opts.expectKey !== undefined && v.publicKeyHex?.toLowerCase() !== opts.expectKey.toLowerCase())
      problem = `carries public key ${v.publicKeyHex?.slice(0, 18)}…, not the expected one`;
    const eventAddress = eventId === null ? null : (/^(0x[0-9a-f]{40})-\d+$/.exec(eventId)?.[1] ?? null);
    if (problem === null && eventAddress !== null && eventAddress !== v.deviceId)
      problem = `eventID ${eventId} names ${eventAddress}, but the body is signed by ${v.deviceId}`;
    if (problem !== null) bad++;
    const device = v.deviceId ?? '-';
    return problem === null
      ? `ok   line ${i + 1} device=${device} curve=${v.curve} encoding=${v.encoding}${v.lowS === false ? ' high-S' : ''} public_key=${v.publicKeyForm}${v.publicKeyForm === 'address' ? ' (key recovered from the signature)' : ''} reading=${v.sensorReading} timestamp=${v.timestamp}`
      : `FAIL line ${i + 1} device=${device}: ${problem}`;
  });
  return { lines, bad };
}
