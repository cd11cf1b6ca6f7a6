/**
 * PKCS#11 URIs (RFC 7512): `pkcs11:token=meter;object=device?module-path=/usr/lib/…`. The path
 * names the token (its label, manufacturer, model, serial), the slot and the object (its label
 * `object`, its `id` as bytes, its `type`); the query names the module. Pure.
 *
 * What this meter accepts, and why:
 * - Values are percent-decoded as UTF-8 (`%20` is a space); a raw character outside the RFC's
 *   allowed set is refused rather than guessed at (a space or a quote pasted from a shell).
 * - An attribute given twice in the path, or one not in RFC 7512, is refused: a URI that selects
 *   something other than what the user meant would sign with another key.
 * - `pin-value` and `pin-source` are refused: the PIN is read from the environment only, so it is
 *   never in a URL that `ps`, a log or a config file shows.
 */
export interface Pkcs11Uri {
  /** Token label (CK_TOKEN_INFO.label, trailing blanks removed). */
  token?: string;
  manufacturer?: string;
  model?: string;
  serial?: string;
  slotId?: number;
  slotDescription?: string;
  slotManufacturer?: string;
  libraryManufacturer?: string;
  libraryDescription?: string;
  libraryVersion?: { major: number; minor: number };
  /** The object's CKA_LABEL. */
  object?: string;
  /** The object's CKA_ID (bytes). */
  id?: Buffer;
  type?: 'public' | 'private' | 'cert' | 'secret-key' | 'data';
  /** Query: the module's file. */
  modulePath?: string;
  /** Query: the module's name (resolved by the platform's module directory; this meter needs a path). */
  moduleName?: string;
}

export class Pkcs11UriError extends Error {
  constructor(
    message: string,
    readonly uri: string,
  ) {
    super(message);
    this.name = 'Pkcs11UriError';
  }
}

// RFC 7512 section 2.3: unreserved characters, and the reserved ones that may stand unencoded.
const UNRESERVED = 'A-Za-z0-9\\-._~';
const P_RES = ":\\[\\]@!$'()*+,=";
const PATH_CHAR = new RegExp(`^(?:[${UNRESERVED}${P_RES}&]|%[0-9A-Fa-f]{2})*$`);
const QUERY_CHAR = new RegExp(`^(?:[${UNRESERVED}${P_RES}/?|]|%[0-9A-Fa-f]{2})*$`);

const PATH_ATTRS = {
  token: 'token',
  manufacturer: 'manufacturer',
  model: 'model',
  serial: 'serial',
  'slot-id': 'slotId',
  'slot-description': 'slotDescription',
  'slot-manufacturer': 'slotManufacturer',
  'library-manufacturer': 'libraryManufacturer',
  'library-description': 'libraryDescription',
  'library-version': 'libraryVersion',
  object: 'object',
  id: 'id',
  type: 'type',
} as const;
const TYPES = ['public', 'private', 'cert', 'secret-key', 'data'] as const;

/** Parses a `pkcs11:` URI; throws `Pkcs11UriError` naming what is wrong. */
export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  const fail = (why: string): never => {
    throw new Pkcs11UriError(`not a usable PKCS#11 URI (RFC 7512): ${why}`, uri);
  };
  if (!/^pkcs11:/i.test(uri)) fail('it must start with "pkcs11:"');
  const rest = uri.slice('pkcs11:'.length);
  const q = rest.indexOf('?');
  const path = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? '' : rest.slice(q + 1);
  const out: Pkcs11Uri = {};
  const seen = new Set<string>();
  const decode = (raw: string, name: string): Buffer => {
    const bytes: number[] = [];
    for (let i = 0; i < raw.length; i++) {
      if (raw[i] === '%') {
        bytes.push(Number.parseInt(raw.slice(i + 1, i + 3), 16));
        i += 2;
      } else bytes.push(raw.charCodeAt(i));
    }
    if (bytes.some((b) => Number.isNaN(b))) fail(`attribute ${name} has a broken %-escape`);
    return Buffer.from(bytes);
  };
  const text = (raw: string, name: string): string => {
    const b = decode(raw, name);
    const t = b.toString('utf8');
    if (!Buffer.from(t, 'utf8').equals(b)) fail(`attribute ${name} is not UTF-8 text`);
    return t;
  };
  if (path !== '') {
    for (const part of path.split(';')) {
      const eq = part.indexOf('=');
      if (eq <= 0) fail(`"${part}" is not name=value`);
      const name = part.slice(0, eq).toLowerCase();
      const raw = part.slice(eq + 1);
      if (!PATH_CHAR.test(raw)) fail(`attribute ${name} has a character that must be %-encoded (space, quote, /, ?, #, % …)`);
      if (!(name in PATH_ATTRS)) fail(`unknown attribute "${name}" (known: ${Object.keys(PATH_ATTRS).join(', ')})`);
      if (seen.has(name)) fail(`attribute ${name} appears more than once`);
      seen.add(name);
      switch (name) {
        case 'slot-id':
          if (!/^[0-9]{1,10}$/.test(raw)) fail('slot-id must be a decimal number');
          out.slotId = Number(raw);
          break;
        case 'library-version': {
          const m = /^([0-9]{1,3})(?:\.([0-9]{1,3}))?$/.exec(raw);
          if (m === null) fail('library-version must be M or M.N');
          out.libraryVersion = { major: Number(m![1]), minor: Number(m![2] ?? 0) };
          break;
        }
        case 'id':
          out.id = decode(raw, name);
          if (out.id.length === 0) fail('id is empty');
          break;
        case 'type': {
          const t = text(raw, name);
          if (!(TYPES as readonly string[]).includes(t)) fail(`type must be one of ${TYPES.join(', ')}`);
          out.type = t as Pkcs11Uri['type'];
          break;
        }
        default:
          (out as Record<string, unknown>)[PATH_ATTRS[name as keyof typeof PATH_ATTRS]] = text(raw, name);
      }
    }
  }
  if (query !== '') {
    const qseen = new Set<string>();
    for (const part of query.split('&')) {
      const eq = part.indexOf('=');
      if (eq <= 0) fail(`"${part}" is not name=value`);
      const name = part.slice(0, eq).toLowerCase();
      const raw = part.slice(eq + 1);
      if (!QUERY_CHAR.test(raw)) fail(`query attribute ${name} has a character that must be %-encoded`);
      if (name === 'pin-value' || name === 'pin-source')
        fail(`${name} is not accepted: the PIN is read from the environment only (never in a URI that ps, logs or files show)`);
      if (name !== 'module-path' && name !== 'module-name') fail(`unknown query attribute "${name}" (known: module-path, module-name)`);
      if (qseen.has(name)) fail(`query attribute ${name} appears more than once`);
      qseen.add(name);
      if (name === 'module-path') out.modulePath = text(raw, name);
      else out.moduleName = text(raw, name);
    }
  }
  if (out.type !== undefined && out.type !== 'private' && out.type !== 'public')
    fail(`type=${out.type} names no key pair: the device key is a private key (type=private, or leave type out)`);
  if (out.object === undefined && out.id === undefined)
    fail('it names no key: add object=<label> or id=<%-encoded bytes> (e.g. pkcs11:token=meter;object=device-key)');
  return out;
}

/** The URI written back canonically (for logs and messages: it holds no secret). */
export function formatPkcs11Uri(u: Pkcs11Uri): string {
  const enc = (v: string | Buffer): string =>
    typeof v === 'string'
      ? [...Buffer.from(v, 'utf8')]
          .map((b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`))
          .join('')
      : [...v].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  const parts: string[] = [];
  if (u.token !== undefined) parts.push(`token=${enc(u.token)}`);
  if (u.manufacturer !== undefined) parts.push(`manufacturer=${enc(u.manufacturer)}`);
  if (u.model !== undefined) parts.push(`model=${enc(u.model)}`);
  if (u.serial !== undefined) parts.push(`serial=${enc(u.serial)}`);
  if (u.slotId !== undefined) parts.push(`slot-id=${u.slotId}`);
  if (u.object !== undefined) parts.push(`object=${enc(u.object)}`);
  if (u.id !== undefined) parts.push(`id=${enc(u.id)}`);
  if (u.type !== undefined) parts.push(`type=${u.type}`);
  return `pkcs11:${parts.join(';')}`;
}
