import { CHIP_IDS, CHIPS, parseSimLoad, type ChipId } from '@power-meter/ina219';
import { DEFAULT_HOURLY_REWARD_TIERS, type HourlyRewardTier } from '@power-meter/meter-files';
import { LOG_LEVELS, parseLogLevel, parsers, type LogLevel, type SettingSource, type SettingSpec } from '@power-meter/service';
import {
  SIGNED_KEY_NAME,
  TRANSPORT_NAMES,
  type TransportName,
  parsePkcs11Uri,
  parsePublishUrl,
  parseTaskProjectId,
} from '@power-meter/w3bstream';

/**
 * Every backend setting, once (docs/design.md "Commands"): flag, environment variable
 * (POWER_METER_<FLAG>), config key, default, validation. The publisher token has no flag on
 * purpose: `ps` would show it.
 */
const s = <T>(spec: SettingSpec<T>): SettingSpec<T> => spec;

/** What --sensor accepts: a chip on the bus, or the emulator of one. */
export const SENSOR_NAMES = [...CHIP_IDS, 'sim'] as const;
export type SensorSetting = (typeof SENSOR_NAMES)[number];

/** "INA219 0.1, INA226 0.1, INA260 (inside), INA228 0.015": the per-chip defaults for --help and the README. */
function chipDefaults(key: 'shuntOhms' | 'maxCurrentA'): string {
  return CHIP_IDS.map(
    (id) => `${CHIPS[id].name} ${key === 'shuntOhms' && CHIPS[id].internalShuntOhms !== null ? '(inside)' : CHIPS[id].defaults[key]}`,
  ).join(', ');
}

// The reward table's type and default belong to the data-directory contract (state.json carries the tiers).
export { DEFAULT_HOURLY_REWARD_TIERS, type HourlyRewardTier };

/**
 * Bounds of a reward tier. The rates feed totals that are stored for ever, so they must stay
 * finite however long the meter runs: 1e6 tokens per hour for a century is about 1e12, far from
 * any floating-point limit (an unbounded 1e308 made the stored total Infinity at the first window).
 */
export const TIER_LIMITS = { maxBelowW: 100_000, maxTokensPerH: 1_000_000, maxTiers: 32 } as const;

function parseTiers(raw: unknown): HourlyRewardTier[] {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > TIER_LIMITS.maxTiers) throw new Error('not a list');
  let last = -Infinity;
  return raw.map((t: unknown) => {
    const o = t as { belowW?: unknown; tokensPerH?: unknown };
    if (typeof o !== 'object' || o === null || typeof o.belowW !== 'number' || typeof o.tokensPerH !== 'number')
      throw new Error('bad tier');
    if (!Number.isFinite(o.belowW) || o.belowW <= 0 || o.belowW > TIER_LIMITS.maxBelowW) throw new Error('belowW out of range');
    if (!Number.isFinite(o.tokensPerH) || o.tokensPerH < 0 || o.tokensPerH > TIER_LIMITS.maxTokensPerH)
      throw new Error('tokensPerH out of range');
    if (!(o.belowW > last)) throw new Error('not ascending');
    last = o.belowW;
    return { belowW: o.belowW, tokensPerH: o.tokensPerH };
  });
}

/**
 * The publisher token goes into an HTTP header as is: a control character or white space (a CR/LF
 * pasted with it, a space inside) cannot be sent (Node refuses the header at the first request)
 * or is not the token, so it is refused at start instead of retried for ever.
 */
function parseToken(raw: unknown): string {
  const v = parsers.string(raw);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
  if (/[\u0000-\u0020\u007f-\u00a0\u2028\u2029\ufeff]/.test(v)) throw new Error('control character or white space');
  if (/[^\u0021-\u007e]/.test(v)) throw new Error('not printable ASCII');
  return v;
}

/**
 * http(s) URL or empty, checked by the publisher's own parser (a user:password in it would be
 * sent to the node and logged by proxies); a token in the query string is refused as well. The
 * setting is marked secret: a refused URL may carry a password, so the message never repeats it.
 */
function publishUrl(raw: unknown): string {
  const v = parsers.string(raw);
  if (v === '') return '';
  if (parsePublishUrl(v).searchParams.has('authorization')) throw new Error('token in the URL');
  return v;
}

/** The W3bstream 2 project ID as its canonical decimal (a uint256 on chain), or empty. */
function projectId(raw: unknown): string {
  if (raw === '') return '';
  return parseTaskProjectId(raw);
}

/** The project config's signed keys: names of the payload's members, comma-separated (or a list in the config file). */
function signedKeys(raw: unknown): string[] {
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : null;
  if (list === null) throw new Error('not a list');
  const names = list.map((k) => (typeof k === 'string' ? k.trim().replace(/:uint64$/, '') : '')).filter((k) => k !== '');
  for (const k of names) if (!SIGNED_KEY_NAME.test(k) || !['timestamp', 'sensor_reading'].includes(k)) throw new Error('bad key');
  if (new Set(names).size !== names.length) throw new Error('repeated');
  return names;
}

/** Any non-empty text is a version to the node; control characters are a paste accident. */
function projectVersion(raw: unknown): string {
  const v = parsers.string(raw);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
  if (v.length > 64 || /[\u0000-\u001f\u007f]/.test(v)) throw new Error('bad');
  return v;
}

/** Checked by the sensor library's own parser, so a value accepted here also starts the sensor. */
function simLoad(raw: unknown): string {
  const v = parsers.nonEmptyString(raw).trim();
  parseSimLoad(v);
  return v;
}

const address = (raw: unknown): string => {
  if (typeof raw !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(raw)) {
    if (raw === '') return '';
    throw new Error('bad address');
  }
  return raw;
};

/**
 * A JSON-RPC endpoint: http(s) with a host, or empty. Marked secret where declared: hosted RPC
 * URLs carry an API key in the path, so neither messages nor logs repeat it (logs show the origin).
 */
function parseRpcUrl(raw: unknown): string {
  const v = parsers.string(raw);
  if (v === '') return '';
  const u = new URL(v);
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '' || u.username !== '' || u.password !== '')
    throw new Error('bad');
  return v;
}

/** An MQTT broker URL. Credentials go in the environment file, never in a URL that `ps` shows. */
function parseMqttUrl(raw: unknown): string {
  if (typeof raw !== 'string') throw new Error('not a string');
  if (raw === '') return '';
  const u = new URL(raw);
  if ((u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') || u.hostname === '' || u.username !== '' || u.password !== '')
    throw new Error('bad');
  return raw;
}

/** MQTT topic levels to prefix: no wildcards, no empty level. */
function parseTopicPrefix(raw: unknown): string {
  const v = parsers.nonEmptyString(raw);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: MQTT topics may not contain NUL, which is what this refuses
  if (/[+#\u0000]/.test(v) || v.split('/').some((level) => level === '')) throw new Error('bad');
  return v;
}

/** A PEM file for mqtts://: an absolute path (the service's working directory is /), or empty. */
function parsePemPath(raw: unknown): string {
  if (typeof raw !== 'string') throw new Error('not a string');
  if (raw !== '' && !raw.startsWith('/')) throw new Error('bad');
  return raw;
}

/** A Home Assistant area name: one line of printable text. */
function parseArea(raw: unknown): string {
  const v = parsers.string(raw).trim();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
  if (v.length > 64 || /[\u0000-\u001f\u007f]/.test(v)) throw new Error('bad');
  return v;
}

/** node_exporter's textfile collector reads only `*.prom` files. */
function parsePromFile(raw: unknown): string {
  if (typeof raw !== 'string') throw new Error('not a string');
  if (raw !== '' && !(raw.startsWith('/') && raw.endsWith('.prom'))) throw new Error('bad');
  return raw;
}

/** A `pkcs11:` URI that names a key (RFC 7512, `parsePkcs11Uri`), or empty for the key file. */
function keyUri(raw: unknown): string {
  const v = parsers.string(raw).trim();
  if (v === '') return '';
  parsePkcs11Uri(v);
  return v;
}

/** The PKCS#11 module: an absolute path to a shared library, or empty. */
function modulePath(raw: unknown): string {
  const v = parsers.string(raw).trim();
  if (v !== '' && !v.startsWith('/')) throw new Error('not absolute');
  return v;
}

export const BACKEND_SETTINGS = {
  dataDir: s({
    flag: 'data-dir',
    env: 'POWER_METER_DATA_DIR',
    default: '/home/pi/data/power-meter',
    describe: 'data directory (state files for the display, identity, outbox)',
    parse: parsers.nonEmptyString,
    allowed: 'a directory path',
  }),
  publishUrl: s({
    flag: 'publish-url',
    env: 'POWER_METER_PUBLISH_URL',
    default: '',
    describe:
      'where readings go: W3bstream v1 event URL (https://<host>/srv-applet-mgr/v0/event/<project>), or with --transport w3bstream-v2 the node URL ending in /v1/task (current nodes) or /message (nodes before v0.17); empty = publishing disabled',
    parse: publishUrl,
    allowed:
      'an http(s) URL without a user or password and without ?authorization= (a token does not belong in the URL: put it in W3BSTREAM_PUBLISHER_TOKEN), or empty',
    secret: true,
  }),
  publisherToken: s({
    flag: null,
    env: 'W3BSTREAM_PUBLISHER_TOKEN',
    default: '',
    describe: 'W3bstream publisher token (environment or config file only, never a flag)',
    parse: parseToken,
    allowed: 'the token as copied from W3bstream Studio: printable characters, no spaces, line breaks or other control characters',
    secret: true,
  }),
  eventType: s({
    flag: 'event-type',
    env: 'POWER_METER_EVENT_TYPE',
    default: 'DEFAULT',
    describe: 'W3bstream eventType (applet routing key)',
    parse: (r) => {
      const v = parsers.nonEmptyString(r);
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(v)) throw new Error('bad');
      return v;
    },
    allowed: '1-64 letters, digits, _ . -',
  }),
  transport: s({
    flag: 'transport',
    env: 'POWER_METER_TRANSPORT',
    default: 'w3bstream-v1' as TransportName,
    describe:
      'w3bstream-v1 (applet event API, publisher token) or w3bstream-v2 (the IoTeX apinode: POST /v1/task, or /message on older nodes; the device is identified by its secp256k1 signature and registered through ioID)',
    parse: parsers.oneOf(TRANSPORT_NAMES),
    allowed: TRANSPORT_NAMES.join(' or '),
  }),
  projectId: s({
    flag: 'project-id',
    env: 'POWER_METER_PROJECT_ID',
    default: '',
    describe: 'W3bstream 2 project ID (required with --transport w3bstream-v2)',
    parse: projectId,
    allowed:
      'a whole number from 1 to 2^256-1 (at most 18446744073709551615 for a /message node; write it as a string in the config file above 2^53), or empty',
    json: ['string', 'number'],
  }),
  projectVersion: s({
    flag: 'project-version',
    env: 'POWER_METER_PROJECT_VERSION',
    default: '',
    describe:
      "W3bstream 2 project version, e.g. 0.1 (a /v1/task node takes the project's default version when empty; required for a /message node)",
    parse: projectVersion,
    allowed: 'the version text of the project (1-64 characters, no control characters), or empty',
  }),
  signedKeys: s({
    flag: 'signed-keys',
    env: 'POWER_METER_SIGNED_KEYS',
    default: [] as string[],
    describe:
      "W3bstream 2 /v1/task: the payload members the project's config signs as uint64 (its signedKeys; Pebble projects: timestamp), comma-separated; empty for most projects",
    parse: signedKeys,
    allowed: 'empty, timestamp, sensor_reading, or both comma-separated (each optionally with :uint64), as the project config lists them',
    // The config file may list them, or write them comma-separated as on the command line.
    json: ['array', 'string'],
  }),
  taskPollIntervalS: s({
    flag: 'task-poll-interval',
    env: 'POWER_METER_TASK_POLL_INTERVAL',
    default: 60,
    describe:
      'W3bstream 2 /v1/task: how often the state of the last delivered task is asked (GET <node>/v1/task/<taskID>), seconds; 0 = never',
    parse: parsers.number(0, 86_400),
    allowed: 'seconds, 0-86400 (0 = off)',
  }),
  sensor: s({
    flag: 'sensor',
    env: 'POWER_METER_SENSOR',
    default: 'ina219' as SensorSetting,
    describe:
      'the chip over I2C: ina219, ina226, ina260 or ina228 (its energy accumulator is read once per window); or sim (a chip emulator behind the same driver, --sim-chip)',
    parse: parsers.oneOf(SENSOR_NAMES),
    allowed: SENSOR_NAMES.join(', '),
  }),
  simChip: s({
    flag: 'sim-chip',
    env: 'POWER_METER_SIM_CHIP',
    default: 'ina219' as ChipId,
    describe: 'the chip the simulated sensor emulates (with --sensor sim)',
    parse: parsers.oneOf(CHIP_IDS),
    allowed: CHIP_IDS.join(', '),
  }),
  simLoad: s({
    flag: 'sim-load',
    env: 'POWER_METER_SIM_LOAD',
    default: 'demo',
    describe: 'simulated load: demo (random switches), watts (e.g. 8), or pwm:<W>:<duty>:<hz>',
    parse: simLoad,
    allowed: 'demo, a number of watts (0-50), or pwm:<watts 0-50>:<duty 0-1>:<hz, above 0 and at most 100000>',
  }),
  window: s({
    flag: 'window',
    env: 'POWER_METER_WINDOW',
    default: 5,
    describe: 'averaging window, seconds (one signed reading per window)',
    parse: parsers.number(1, 3600),
    allowed: 'seconds, 1-3600',
  }),
  powerIntervalMs: s({
    flag: 'power-interval',
    env: 'POWER_METER_POWER_INTERVAL',
    default: 500,
    describe: 'how often current power is refreshed in the data directory, ms',
    parse: parsers.integer(100, 60_000),
    allowed: 'milliseconds, 100-60000',
  }),
  i2cBus: s({
    flag: 'i2c-bus',
    env: 'POWER_METER_I2C_BUS',
    default: 1,
    describe: 'I2C bus number (/dev/i2c-N)',
    parse: parsers.integer(0, 255),
    allowed: 'an integer 0-255',
  }),
  i2cAddress: s({
    flag: 'i2c-address',
    env: 'POWER_METER_I2C_ADDRESS',
    default: 0x40,
    describe: "the chip's I2C address (A0/A1 straps)",
    parse: parsers.integer(0x40, 0x4f, { hex: true }),
    allowed: '64-79 or 0x40-0x4f',
    // The hex form is text: "0x41".
    json: ['number', 'string'],
  }),
  shuntOhms: s({
    flag: 'shunt-ohms',
    env: 'POWER_METER_SHUNT_OHMS',
    default: 0.1,
    describe: `shunt resistance, ohms; unset: the chip's common breakout (${chipDefaults('shuntOhms')}; the default shown is the INA219's); the INA260 has its own and refuses this setting`,
    parse: parsers.number(0.0001, 10),
    allowed: 'ohms, 0.0001-10',
  }),
  maxCurrentA: s({
    flag: 'max-current',
    env: 'POWER_METER_MAX_CURRENT',
    default: 3.2,
    describe: `largest expected current, A, at most the chip's full-scale shunt voltage / shunt ohms; unset: the chip's breakout (${chipDefaults('maxCurrentA')}; the default shown is the INA219's)`,
    parse: parsers.number(0.001, 100),
    allowed: 'amperes, 0.001-100',
  }),
  curve: s({
    flag: 'curve',
    env: 'POWER_METER_CURVE',
    default: 'p256' as 'p256' | 'secp256k1',
    describe: 'key curve, used only when the identity is first created',
    parse: parsers.oneOf(['p256', 'secp256k1'] as const),
    allowed: 'p256 or secp256k1',
  }),
  keyUri: s({
    flag: 'key-uri',
    env: 'POWER_METER_KEY_URI',
    default: '',
    describe:
      'the device key in a PKCS#11 token (TPM 2.0, secure element, SoftHSM) as an RFC 7512 URI, e.g. pkcs11:token=meter;object=device-key; empty = the key file identity/device-key.pem; the PIN goes in POWER_METER_PKCS11_PIN (environment file)',
    parse: keyUri,
    allowed:
      'a pkcs11: URI naming the token (token=, serial= or slot-id=) and the key (object= and/or id=), %-encoded, without pin-value or pin-source (the PIN goes in POWER_METER_PKCS11_PIN), or empty',
  }),
  pkcs11Module: s({
    flag: 'pkcs11-module',
    env: 'POWER_METER_PKCS11_MODULE',
    default: '',
    describe:
      "the token's PKCS#11 library, e.g. /usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so (TPM 2.0) or /usr/lib/softhsm/libsofthsm2.so; required with --key-uri unless the URI has module-path",
    parse: modulePath,
    allowed: 'an absolute path to the module (.so), or empty',
  }),
  signature: s({
    flag: 'signature',
    env: 'POWER_METER_SIGNATURE',
    default: 'raw' as 'raw' | 'der',
    describe: 'signature encoding: raw (64-byte r||s hex, low S) or der',
    parse: parsers.oneOf(['raw', 'der'] as const),
    allowed: 'raw or der',
  }),
  timestampUnit: s({
    flag: 'timestamp-unit',
    env: 'POWER_METER_TIMESTAMP_UNIT',
    default: 's' as 's' | 'ms',
    describe: 'unit of data.timestamp',
    parse: parsers.oneOf(['s', 'ms'] as const),
    allowed: 's or ms',
  }),
  outboxMaxCount: s({
    flag: 'outbox-max-count',
    env: 'POWER_METER_OUTBOX_MAX_COUNT',
    default: 1_000_000,
    describe: 'most undelivered readings kept (oldest dropped beyond, counted)',
    parse: parsers.integer(10, 100_000_000),
    allowed: 'an integer 10-100000000',
  }),
  outboxMaxAgeDays: s({
    flag: 'outbox-max-age',
    env: 'POWER_METER_OUTBOX_MAX_AGE',
    default: 30,
    describe: 'undelivered readings older than this many days are dropped (counted)',
    parse: parsers.number(0.001, 3650),
    allowed: 'days, 0.001-3650',
  }),
  syncIntervalS: s({
    flag: 'sync-interval',
    env: 'POWER_METER_SYNC_INTERVAL',
    default: 60,
    describe:
      'seconds between writes of the outbox and totals to the data directory (the SD card); a power cut loses at most this much; 0 = strict: every reading is on the card before it is sent',
    parse: parsers.number(0, 3600),
    allowed: 'seconds, 0-3600 (0 = strict, a sync per reading)',
  }),
  runtimeDir: s({
    flag: 'runtime-dir',
    env: 'POWER_METER_RUNTIME_DIR',
    default: '',
    describe:
      'RAM directory (tmpfs) for state.json, the eight legacy files (linked from the data directory) and the outbox between syncs; empty = $RUNTIME_DIRECTORY (systemd), else $XDG_RUNTIME_DIR or /dev/shm; the data directory itself = no RAM directory',
    parse: parsers.string,
    allowed: 'a directory path, or empty for the default',
  }),
  holdUnsyncedClock: s({
    flag: 'hold-unsynced-clock',
    env: 'POWER_METER_HOLD_UNSYNCED_CLOCK',
    default: true,
    describe: 'hold readings while the system clock is not synchronised, release them with corrected timestamps',
    parse: parsers.boolean,
    allowed: 'true or false',
  }),
  readingCalibrationId: s({
    flag: 'reading-calibration-id',
    env: 'POWER_METER_READING_CALIBRATION_ID',
    default: false,
    describe:
      'wire profile: sign the calibration id into each reading (data gets "calibration_id":"<id>", or "none" when uncalibrated) so a consumer can tell which calibration produced it; off: the original two-member data',
    parse: parsers.boolean,
    allowed: 'true or false',
  }),
  publicKeyField: s({
    flag: 'public-key-field',
    env: 'POWER_METER_PUBLIC_KEY_FIELD',
    default: 'address' as 'address' | 'key',
    describe:
      "what the body's public_key carries: address (the device address 0x + 40 hex, as the original firmware sends and the smart-grid applet needs) or key (04 + X + Y); stored readings keep the form they were signed with",
    parse: parsers.oneOf(['address', 'key'] as const),
    allowed: 'address or key',
  }),
  signedFields: s({
    flag: 'signed-fields',
    env: 'POWER_METER_SIGNED_FIELDS',
    default: 'basic' as 'basic' | 'extended',
    describe:
      "what the signed data carries: basic (sensor_reading and timestamp, the tutorial applets' fields) or extended (also seq, the eventID's sequence number, and energy_wh, the meter's energy total, which never decreases); stored readings keep the form they were signed with",
    parse: parsers.oneOf(['basic', 'extended'] as const),
    allowed: 'basic or extended',
  }),
  rpcUrl: s({
    flag: 'rpc-url',
    env: 'POWER_METER_RPC_URL',
    default: '',
    describe:
      "JSON-RPC URL of the chain the reward token lives on, e.g. https://babel-api.testnet.iotex.io; with --reward-token and --wallet-address the owner's balance is read and shown; empty = off",
    parse: parseRpcUrl,
    allowed: 'an http(s) URL without a user or password, or empty (the value is not repeated: hosted RPC URLs carry an API key)',
    secret: true,
  }),
  rewardToken: s({
    flag: 'reward-token',
    env: 'POWER_METER_REWARD_TOKEN',
    default: '',
    describe: "the reward token's ERC-20 contract address; its balanceOf(--wallet-address) is shown beside the local estimate",
    parse: address,
    allowed: '0x + 40 hex digits, or empty',
  }),
  balanceIntervalS: s({
    flag: 'balance-interval',
    env: 'POWER_METER_BALANCE_INTERVAL',
    default: 60,
    describe: 'how often the reward balance is read from the chain, seconds (after failures: 5 s doubling up to 10 min)',
    parse: parsers.integer(2, 86_400),
    allowed: 'seconds, 2-86400',
  }),
  ioidRegistry: s({
    flag: 'ioid-registry',
    env: 'POWER_METER_IOID_REGISTRY',
    default: '',
    describe:
      "the ioIDRegistry contract (IoTeX's, or your own deployment); with --rpc-url the device's ioID registration (registered or not, its ioID, owner and project) is read and shown; empty = off",
    parse: address,
    allowed: '0x + 40 hex digits, or empty',
  }),
  ioidIntervalS: s({
    flag: 'ioid-interval',
    env: 'POWER_METER_IOID_INTERVAL',
    default: 60,
    describe: 'how often the ioID registration is read from the chain, seconds (after failures: 5 s doubling up to 10 min)',
    parse: parsers.integer(2, 86_400),
    allowed: 'seconds, 2-86400',
  }),
  walletAddress: s({
    flag: 'wallet-address',
    env: 'POWER_METER_WALLET_ADDRESS',
    default: '',
    describe: 'owner wallet shown in wallet_address; with --rpc-url and --reward-token, whose reward balance is read',
    parse: address,
    allowed: '0x + 40 hex digits, or empty',
  }),
  mqttUrl: s({
    flag: 'mqtt-url',
    env: 'POWER_METER_MQTT_URL',
    default: '',
    describe:
      'MQTT broker for Home Assistant and other consumers, e.g. mqtt://homeassistant.local:1883 or mqtts://host:8883; empty = MQTT off; the login goes in POWER_METER_MQTT_USER / POWER_METER_MQTT_PASSWORD (environment file)',
    parse: parseMqttUrl,
    allowed:
      'an mqtt:// or mqtts:// URL, or empty; no user or password in it (they go in POWER_METER_MQTT_USER / POWER_METER_MQTT_PASSWORD in the environment file), so the value is not shown',
    secret: true,
  }),
  mqttUser: s({
    flag: null,
    env: 'POWER_METER_MQTT_USER',
    default: '',
    describe: 'MQTT user name (environment or config file only, never a flag)',
    parse: parsers.string,
    allowed: 'a string',
    secret: true,
  }),
  mqttPassword: s({
    flag: null,
    env: 'POWER_METER_MQTT_PASSWORD',
    default: '',
    describe: 'MQTT password (environment or config file only, never a flag)',
    parse: parsers.string,
    allowed: 'a string',
    secret: true,
  }),
  mqttTopicPrefix: s({
    flag: 'mqtt-topic-prefix',
    env: 'POWER_METER_MQTT_TOPIC_PREFIX',
    default: 'power-meter',
    describe: 'first level of the state topics: <prefix>/<device address>/...',
    parse: parseTopicPrefix,
    allowed: 'topic levels without + # or a leading/trailing /',
  }),
  mqttDiscoveryPrefix: s({
    flag: 'mqtt-discovery-prefix',
    env: 'POWER_METER_MQTT_DISCOVERY_PREFIX',
    default: 'homeassistant',
    describe: "Home Assistant's discovery prefix (its MQTT integration setting)",
    parse: parseTopicPrefix,
    allowed: 'topic levels without + # or a leading/trailing /',
  }),
  mqttPowerIntervalMs: s({
    flag: 'mqtt-power-interval',
    env: 'POWER_METER_MQTT_POWER_INTERVAL',
    default: 5000,
    describe: 'live power is published at most this often, ms (window figures go out with every window)',
    parse: parsers.integer(500, 3_600_000),
    allowed: 'milliseconds, 500-3600000',
  }),
  mqttReadings: s({
    flag: 'mqtt-readings',
    env: 'POWER_METER_MQTT_READINGS',
    default: false,
    describe: 'also publish each signed reading on <prefix>/<device address>/reading (verifiable without W3bstream)',
    parse: parsers.boolean,
    allowed: 'true or false',
  }),
  mqttCa: s({
    flag: 'mqtt-ca',
    env: 'POWER_METER_MQTT_CA',
    default: '',
    describe:
      "PEM file of the CA that signed the broker's certificate (mqtts:// only), for a broker with a private or self-signed certificate; empty = the system's CAs",
    parse: parsePemPath,
    allowed: 'an absolute path to a PEM file readable by the service user, or empty',
  }),
  mqttCert: s({
    flag: 'mqtt-cert',
    env: 'POWER_METER_MQTT_CERT',
    default: '',
    describe: 'PEM client certificate for a broker that requires one (mqtts:// only; with --mqtt-key); empty = none',
    parse: parsePemPath,
    allowed: 'an absolute path to a PEM file readable by the service user, or empty',
  }),
  mqttKey: s({
    flag: 'mqtt-key',
    env: 'POWER_METER_MQTT_KEY',
    default: '',
    describe: 'PEM private key of --mqtt-cert (mqtts:// only; keep it mode 600, owned by the service user); empty = none',
    parse: parsePemPath,
    allowed: 'an absolute path to a PEM file readable by the service user, or empty',
  }),
  mqttArea: s({
    flag: 'mqtt-area',
    env: 'POWER_METER_MQTT_AREA',
    default: '',
    describe: 'Home Assistant area suggested for the meter when it is first discovered, e.g. Garage; empty = none',
    parse: parseArea,
    allowed: 'an area name of at most 64 characters on one line, or empty',
  }),
  metricsFile: s({
    flag: 'metrics-file',
    env: 'POWER_METER_METRICS_FILE',
    default: '',
    describe:
      "Prometheus metrics for node_exporter's textfile collector, replaced atomically, e.g. /var/lib/prometheus/node-exporter/power_meter.prom; empty = off",
    parse: parsePromFile,
    allowed: 'an absolute path ending in .prom, or empty',
  }),
  metricsFileIntervalS: s({
    flag: 'metrics-file-interval',
    env: 'POWER_METER_METRICS_FILE_INTERVAL',
    default: 60,
    describe: 'how often the metrics file is rewritten, seconds (SD-card wear)',
    parse: parsers.integer(1, 3600),
    allowed: 'seconds, 1-3600',
  }),
  metricsPort: s({
    flag: 'metrics-port',
    env: 'POWER_METER_METRICS_PORT',
    default: 0,
    describe: 'serve Prometheus metrics on http://127.0.0.1:<port>/metrics (loopback only); 0 = off',
    parse: parsers.integer(0, 65535),
    allowed: 'a TCP port 1-65535, or 0 for off',
  }),
  logLevel: s({
    flag: 'log-level',
    env: 'POWER_METER_LOG_LEVEL',
    default: 'info' as LogLevel,
    describe: 'least important log lines kept: error, warning, notice, info (default; one summary a minute) or debug',
    parse: parseLogLevel,
    allowed: LOG_LEVELS.join(', '),
  }),
  rewardTiers: s({
    flag: null,
    env: null,
    default: DEFAULT_HOURLY_REWARD_TIERS as HourlyRewardTier[],
    describe: 'reward tiers, config file only: [{"belowW":3,"tokensPerH":10},{"belowW":5,"tokensPerH":4}]',
    parse: parseTiers,
    allowed: `a list of 1-${TIER_LIMITS.maxTiers} {belowW, tokensPerH} with ascending belowW in (0, ${TIER_LIMITS.maxBelowW}] and tokensPerH in [0, ${TIER_LIMITS.maxTokensPerH}]`,
  }),
};

export type BackendSettings = {
  [K in keyof typeof BACKEND_SETTINGS]: (typeof BACKEND_SETTINGS)[K] extends SettingSpec<infer T> ? T : never;
};

/** The chip that measures: the one on the bus, or the one the simulated sensor emulates. */
export function sensorChip(s: Pick<BackendSettings, 'sensor' | 'simChip'>): ChipId {
  return s.sensor === 'sim' ? s.simChip : s.sensor;
}

/**
 * The shunt and expected current default to the chip's common breakout (chips/table.ts in the
 * sensor library): settings left at their built-in default take the chosen chip's. Explicit
 * values are kept (and checked against the chip by the loader's check).
 */
export function applyChipDefaults<T extends Pick<BackendSettings, 'sensor' | 'simChip' | 'shuntOhms' | 'maxCurrentA'>>(
  values: T,
  sources: Partial<Record<keyof BackendSettings, SettingSource>>,
): T {
  const chip = CHIPS[sensorChip(values)];
  return {
    ...values,
    shuntOhms: sources.shuntOhms === 'default' || sources.shuntOhms === undefined ? chip.defaults.shuntOhms : values.shuntOhms,
    maxCurrentA: sources.maxCurrentA === 'default' || sources.maxCurrentA === undefined ? chip.defaults.maxCurrentA : values.maxCurrentA,
  };
}
