import { DEFAULT_HOURLY_REWARD_TIERS, type MeterState, type HourlyRewardTier, type StateProblem } from '@power-meter/meter-files';

/**
 * What the screen shows, as plain data: a pure function of the last good state, the current
 * problem with `state.json` (if any) and the wall clock. Rendering only draws this model, so
 * every decision about wording and colour is tested here without pixels.
 */
export type Tone = 'good' | 'fair' | 'poor' | 'neutral' | 'alert';

export interface ScreenModel {
  /** 'no-data' before the backend ever wrote; 'stale' when it stopped writing; else 'live'. */
  mode: 'no-data' | 'stale' | 'live';
  /** Big figure, e.g. "4.02" (unit drawn separately), or "--". */
  powerText: string;
  powerTone: Tone;
  /** Second line: last window average, e.g. "avg 3.98 W". */
  avgText: string;
  /** Reward rate and total, e.g. "4 ECO/h", "total 1.25". */
  rateText: string;
  /** Colour of the reward rate: the tone of the window average the rate comes from. */
  rateTone: Tone;
  totalText: string;
  /**
   * The owner's reward-token balance read from the chain (`rewardBalance` in state.json), shown
   * beside the local estimate: "chain 40.00"; with its age when stale ("chain 40.00 12min");
   * null when not configured. The local total is an estimate; this is what was actually minted.
   */
  balanceText: string | null;
  /** neutral when fresh, fair (amber) when the figure is old or was never read. */
  balanceTone: Tone;
  /** Status line at the bottom and its tone. */
  statusText: string;
  statusTone: Tone;
  /** Recent window averages for the sparkline, oldest first, and the tone of each. */
  spark: number[];
  sparkTones: Tone[];
  /** Short marker when state.json is currently unreadable (the screen keeps the last good data). */
  problemMarker: string | null;
  /**
   * Which chip measures, top right: "INA228", "INA219 sim" for the emulator; null when the state
   * does not say (a backend from before the field). The problem marker takes the place when shown.
   */
  chipText: string | null;
}

/**
 * Where the colours change, from the reward table: below the first tier's bound (the best rate)
 * is good, below the bound of the last tier that still pays is fair, above it earns nothing and
 * is poor. With the firmware's table: green below 3 W, amber below 5 W, red from 5 W.
 */
export interface ToneBounds {
  goodBelowW: number;
  /** Equal to goodBelowW when no second paying tier exists (no amber then). */
  fairBelowW: number;
}

export function toneBounds(tiers: readonly HourlyRewardTier[] = DEFAULT_HOURLY_REWARD_TIERS): ToneBounds {
  const first = tiers[0];
  if (first === undefined) return toneBounds(DEFAULT_HOURLY_REWARD_TIERS);
  const paying = tiers.filter((t) => t.tokensPerH > 0);
  const lastPaying = paying[paying.length - 1];
  return { goodBelowW: first.belowW, fairBelowW: Math.max(first.belowW, lastPaying?.belowW ?? first.belowW) };
}

/**
 * How old a state is, in measured time: its wall-clock age when the display first saw it (never
 * negative), plus the monotonic time since. A wall clock stepped while the display runs (NTP's
 * first sync, `date -s`) then neither makes a live backend look stale nor a stopped one look live
 * until the clock catches up. Only the first sight depends on the wall clock, so a display started
 * long after the backend stopped still says stale. Pure.
 */
export function measuredAgeMs(sight: { updatedAtMs: number; seenWallMs: number; seenMonoMs: number }, nowMonoMs: number): number {
  return Math.max(0, sight.seenWallMs - sight.updatedAtMs) + Math.max(0, nowMonoMs - sight.seenMonoMs);
}

/** A state is stale when it is older than three windows, and never sooner than 15 s. */
export function staleAfterMs(state: MeterState): number {
  return Math.max(3 * state.windowS * 1000, 15_000);
}

export function toneForPowerW(powerW: number | null, bounds: ToneBounds = toneBounds()): Tone {
  if (powerW === null || !Number.isFinite(powerW)) return 'neutral';
  if (powerW < bounds.goodBelowW) return 'good';
  if (powerW < bounds.fairBelowW) return 'fair';
  return 'poor';
}

/** Watts with enough digits for a 0-30 W meter, never wider than five characters. */
export function formatPowerW(powerW: number): string {
  const abs = Math.abs(powerW);
  if (abs < 10) return powerW.toFixed(2);
  if (abs < 100) return powerW.toFixed(1);
  return powerW.toFixed(0);
}

function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m}min`;
  return `${Math.round(m / 60)}h`;
}

function formatTokens(total: number): string {
  if (total >= 10_000_000) return `${(total / 1_000_000).toFixed(1)}M`;
  return total < 1000 ? total.toFixed(2) : total.toFixed(0);
}

/**
 * The balance is stale when it is older than three read intervals (never sooner than 30 s): the
 * RPC is failing or slow. Its age is then shown, and the colour says "old".
 */
export function balanceStaleAfterMs(intervalMs: number): number {
  return Math.max(3 * intervalMs, 30_000);
}

function balanceLine(state: MeterState, nowMs: number): { balanceText: string | null; balanceTone: Tone } {
  const b = state.rewardBalance;
  if (b === undefined) return { balanceText: null, balanceTone: 'neutral' };
  if (b.tokens === null || b.readAtMs === null) return { balanceText: b.error === null ? 'chain …' : 'chain ?', balanceTone: 'fair' };
  const age = nowMs - b.readAtMs;
  const text = `chain ${formatTokens(Number(b.tokens))}`;
  return age > balanceStaleAfterMs(b.intervalMs)
    ? { balanceText: `${text} ${formatAge(age)}`, balanceTone: 'fair' }
    : { balanceText: text, balanceTone: 'neutral' };
}

/**
 * The applet's refusal, short enough for the status bar: its position in the source, the
 * trap's name and addresses are dropped ("applet: abort: device 0x… is not registered at energy-meter.ts:…
 * (wasm trap: unreachable)" -> "device is not registered").
 */
export function refusalText(reason: string): string {
  return reason
    .replace(/^applet:\s*/i, '')
    .replace(/^abort:\s*/i, '')
    .replace(/\s*\(wasm trap[^)]*\)/gi, '')
    .replace(/\s+at\s+\S+:\d+(:\d+)?/g, '')
    .replace(/\s*0x[0-9a-fA-F]{40}\b/g, '')
    .trim();
}

/**
 * What `publishing.reason` says (the node's error key, a network error code, what answered
 * instead of the node), in words that fit the status bar: 160 px in DejaVu Sans Bold 10 px holds
 * about 24 characters, so "retrying: instance not running" or "failing: not a W3bstream answer
 * (text/html)" would be cut. First match wins; a reason not listed is shown as it is (the
 * renderer cuts it to fit). The README's Troubleshooting quotes the lines these make, and the log
 * keeps the full reason (`publish state=… reason="…"`).
 */
export const REASON_WORDS: ReadonlyArray<readonly [RegExp, string]> = [
  [/^(InvalidToken|InvalidClaim)$/, 'bad token'],
  [/^AccessKeyNotFound$/, 'unknown key'],
  [/^AccessKeyExpired$/, 'key expired'],
  [/^PublisherNotFound$/, 'device deleted'],
  [/^InvalidEventChannel$/, 'wrong project'],
  [/^TrafficLimitExceeded$/, 'traffic limit'],
  [/^(InstanceNotRunning|instance not running)$/i, 'applet stopped'],
  [/^wait timeout$/i, 'applet busy'],
  // The node's answer to a malformed token, once it keeps coming (classify.ts, persisting).
  [/^HTTP 500 UnknownError \(token\?\)$/, 'bad token? (500)'],
  [/^not a W3bstream answer\b/, 'not W3bstream'],
  [/^timeout \d+ ms$/, 'no answer'],
  [/^HTTP (\d{3})\b/, 'HTTP $1'],
  [/^ECONNREFUSED$/, 'conn. refused'],
  [/^(ECONNRESET|EPIPE|ECONNABORTED)$/, 'conn. reset'],
  [/^(ENOTFOUND|EAI_NONAME)$/, 'unknown host'],
  [/^EAI_AGAIN$/, 'DNS: no answer'],
  [/^ETIMEDOUT$/, 'no answer'],
  [/^(EHOSTUNREACH|ENETUNREACH|ENETDOWN)$/, 'network down'],
  [/CERT|^ERR_TLS_|^UNABLE_TO_(VERIFY|GET)_/, 'certificate'],
  [/^ERR_SSL_/, 'TLS error'],
  [/^outbox error$/, 'outbox error'],
  // W3bstream 2 /v1/task (classify-v2.ts): the node's 403, its unknown project or version, a taskID it did not compute.
  [/^device not approved for project/, 'not approved'],
  [/^unknown project/, 'unknown project'],
  [/^answer not from the node$/, 'not the node'],
];

export function reasonWords(reason: string): string {
  for (const [pattern, words] of REASON_WORDS) {
    const m = pattern.exec(reason);
    if (m) return words.replace(/\$(\d)/g, (_, i: string) => m[Number(i)] ?? '');
  }
  return reason;
}

/**
 * A sensor fault's reason (ina219's I2cError: "<operation> failed (<errno>): <hint>") by its errno,
 * in words that fit; the log has the full text with the fix.
 */
export const SENSOR_WORDS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\(ENOENT\)/, 'I2C is off'],
  [/\((EACCES|EPERM)\)/, 'no I2C permission'],
  [/\(EBUSY\)/, 'address in use'],
  [/\((ENXIO|EREMOTEIO)\)/, 'no answer'],
  [/\(EIO\)/, 'I2C error'],
  [/\(ETIMEDOUT\)/, 'I2C timeout'],
  [/^sampler stopped/, 'stopped'],
];

export function sensorWords(reason: string): string {
  for (const [pattern, words] of SENSOR_WORDS) if (pattern.test(reason)) return words;
  return reason;
}

/** Applet refusals in words that fit (refusalText first drops the position and addresses). */
const REFUSAL_WORDS: ReadonlyArray<readonly [RegExp, string]> = [
  [/not registered/i, 'not registered'],
  [/signature/i, 'bad signature'],
];

const PROBLEM_MARKERS: Record<StateProblem, string> = {
  missing: 'no file',
  empty: 'empty file',
  garbage: 'bad file',
  schema: 'new format',
  invalid: 'bad file',
  'not-regular': 'not a file',
  'too-big': 'file too big',
  unreadable: 'unreadable',
};

/** `ageMs` (measured, see `measuredAgeMs`) overrides the wall-clock age `nowMs - updatedAtMs`. */
export function buildScreenModel(state: MeterState | null, problem: StateProblem | null, nowMs: number, ageMs?: number): ScreenModel {
  if (state === null) {
    return {
      mode: 'no-data',
      powerText: '--',
      powerTone: 'neutral',
      avgText: 'waiting for meter',
      rateText: '',
      rateTone: 'neutral',
      totalText: '',
      balanceText: null,
      balanceTone: 'neutral',
      statusText: problem === null || problem === 'missing' ? 'no data yet' : `no data (${PROBLEM_MARKERS[problem]})`,
      statusTone: 'neutral',
      spark: [],
      sparkTones: [],
      problemMarker: problem === null || problem === 'missing' ? null : PROBLEM_MARKERS[problem],
      chipText: null,
    };
  }
  const age = ageMs ?? nowMs - state.updatedAtMs;
  const stale = age > staleAfterMs(state);
  const sensorFault = state.sensor.state === 'fault';
  const powerW = stale || sensorFault ? null : state.powerW;
  const avgW = state.lastWindow?.avgPowerW ?? null;
  // The backend's configured tiers; a state.json from before they were written uses the default table.
  const bounds = toneBounds(state.rewards.tiers);
  const spark = state.recentAvgPowerW.slice(-60);

  let statusText: string;
  let statusTone: Tone;
  if (stale) {
    statusText = `stale: no update for ${formatAge(age)}`;
    statusTone = 'alert';
  } else if (sensorFault) {
    statusText = `sensor: ${sensorWords(state.sensor.reason ?? 'fault')}`;
    statusTone = 'alert';
  } else if (state.signing?.state === 'fault') {
    // The key in the token is gone or refuses: measuring goes on, readings wait unsigned.
    statusText = signingFaultText(state.signing.reason, state.signing.unsigned);
    statusTone = 'alert';
  } else {
    ({ statusText, statusTone } = publishingStatus(state));
  }

  return {
    mode: stale ? 'stale' : 'live',
    powerText: powerW === null ? '--' : formatPowerW(powerW),
    powerTone: toneForPowerW(powerW, bounds),
    avgText: avgW === null ? 'avg --' : `avg ${formatPowerW(avgW)} W`,
    rateText: `${state.rewards.tokensPerH} tok/h`,
    rateTone: toneForPowerW(avgW, bounds),
    totalText: `total ${formatTokens(state.rewards.total)}`,
    ...balanceLine(state, nowMs),
    statusText,
    statusTone,
    spark,
    sparkTones: spark.map((w) => toneForPowerW(Math.max(0, w), bounds)),
    problemMarker: problem === null ? null : PROBLEM_MARKERS[problem],
    chipText: state.sensor.chip === undefined ? null : `${state.sensor.chip}${state.sensor.simulated ? ' sim' : ''}`,
  };
}

/** Cut to `max` characters with an ellipsis. */
function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function publishingStatus(state: MeterState): { statusText: string; statusTone: Tone } {
  const p = state.publishing;
  if (p.held > 0) return { statusText: `clock sync: ${p.held} held`, statusTone: 'fair' };
  // The chain says the device has no ioID: the W3bstream node refuses its readings (403) until the
  // owner registers it. Said before the publishing state, which only says "failing".
  if (state.ioid?.registered === false)
    return {
      statusText: p.waiting > 0 ? `no ioID: ${p.waiting} waiting` : 'ioID: not registered',
      statusTone: p.state === 'ok' || p.state === 'disabled' ? 'fair' : 'alert',
    };
  switch (p.state) {
    case 'disabled':
      return { statusText: 'publishing off', statusTone: 'neutral' };
    case 'ok':
      // The node took the reading but the applet refused it (an unregistered device, a bad signature).
      if (p.lastRejection) return { statusText: `refused: ${refusalWords(p.lastRejection)}`, statusTone: 'alert' };
      // W3bstream 2: the node took the reading, and the prover failed the task made of it.
      if (p.task?.state === 'failed') return { statusText: `task failed: ${shorten(p.task.error ?? '?', 12)}`, statusTone: 'alert' };
      // Delivered, but no applet strategy handles the eventType (publisher: NoApplet).
      if (p.reason) return { statusText: 'ok: no applet', statusTone: 'fair' };
      if (p.waiting > 1) return { statusText: `sending: ${p.waiting} waiting`, statusTone: 'fair' };
      // W3bstream 2: the newest followed task's state: packed, assigned, settled (on chain).
      if (p.task && p.task.state !== 'unknown' && p.task.state !== 'error')
        return { statusText: `published, ${p.task.state}`, statusTone: 'good' };
      return { statusText: 'published ok', statusTone: 'good' };
    case 'retrying':
      return { statusText: p.reason ? `retrying: ${reasonWords(p.reason)}` : `retrying: ${p.waiting} waiting`, statusTone: 'fair' };
    case 'failing':
      return { statusText: `failing: ${reasonWords(p.reason ?? 'error')}`, statusTone: 'alert' };
  }
}

/**
 * The token's fault (state.json `signing.reason`, the backend's short words) in words that fit the
 * status bar, with how many readings wait unsigned: "key: wrong PIN, 12 kept".
 */
export const KEY_WORDS: ReadonlyArray<readonly [RegExp, string]> = [
  [/^wrong PIN/, 'wrong PIN'],
  [/^PIN locked/, 'PIN locked'],
  [/^token gone or failing/, 'offline'],
  [/^token not answering/, 'no answer'],
  [/^token not found/, 'no token'],
  [/^key not in token/, 'no key'],
  [/^another key in token/, 'other key'],
  [/^PKCS#11 module/, 'no module'],
  [/^key on another curve/, 'bad curve'],
];

export function signingFaultText(reason: string | null, unsigned: number): string {
  const text = reason ?? 'fault';
  const words = KEY_WORDS.find(([pattern]) => pattern.test(text))?.[1] ?? text;
  return `key: ${words}${unsigned > 0 ? `, ${countWords(unsigned)} kept` : ''}`;
}

/** A count in at most four characters: 999, 17k, 1.0M (a long outage keeps many readings). */
function countWords(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${Math.floor(n / 1000)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

function refusalWords(reason: string): string {
  const text = refusalText(reason);
  for (const [pattern, words] of REFUSAL_WORDS) if (pattern.test(text)) return words;
  return text;
}
