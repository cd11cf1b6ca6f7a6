import { lstatSync, mkdirSync, rmdirSync, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CHIPS,
  ChipMismatchError,
  NO_CALIBRATION,
  calibrateReading,
  calibrateWindow,
  createSampler,
  createSensor,
  realSleep,
  systemClock,
  type Calibration,
  type ChipId,
  type LatestReading,
  type MeasuringSampler,
  type Sensor,
  type SensorState,
  type WindowResult,
} from '@power-meter/ina219';
import {
  cleanupTempFiles,
  legacyStatusOf,
  readState,
  type IoIdStatus,
  type RewardBalance,
  type WindowSummary,
} from '@power-meter/meter-files';
import type { Log } from '@power-meter/service';
import {
  Outbox,
  OutboxCorruptError,
  Publisher,
  TaskWatcher,
  isCorruptionError,
  loadOrCreateIdentity,
  timestampFor,
  type AppendResult,
  type SeqGapReason,
} from '@power-meter/w3bstream';
import { activeCalibration, readCalibration } from './calibration/store.js';
import { BalanceReader, safeRpcUrl, type ChainBalance } from './chain/balance.js';
import { IoIdWatcher, ioIdVerdict } from './chain/ioid.js';
import { rewardsForWindow, tokensPerH } from './rewards.js';
import { notifyObservers, type MeterObserver } from './observer.js';
import { sensorChip, type BackendSettings } from './settings.js';
import { publishSettingHint, sensorSettingHint, sensorSystemFix } from './hints.js';
import { resolveRuntimeDir } from './runtime-dir.js';
import { prepareDataDir } from './data-dir.js';
import { StateWriter, buildState } from './state-writer.js';
import { METER_SCHEMA, MeterStore } from './store.js';
import {
  backlogGroups,
  checkBacklogSigner,
  checkTransport,
  identityCurveFor,
  publisherTransport,
  signReadingWith,
  v2Dialect,
} from './transport.js';
import { fileKey, openMeterKey, type MeterKey } from './key/meter-key.js';
import { bootId, bootMonotonicMs, clockTrusted, decideClockSync, probeClock, wallTimeOf, type ClockSync } from './timesync.js';

/** No reading can be older than this release: a clock before it is certainly wrong. */
const RELEASE_FLOOR_MS = Date.UTC(2026, 10, 1);

export function buildFloorMs(): number {
  try {
    // The compiled file's mtime is the build (or install) time.
    return Math.max(RELEASE_FLOOR_MS, statSync(fileURLToPath(import.meta.url)).mtimeMs);
  } catch {
    return RELEASE_FLOOR_MS;
  }
}

export interface MeterOptions {
  settings: BackendSettings;
  log: (line: string) => void;
  /** What the libraries (sampler and driver, publisher, task watcher) log through, each line at its level; default: warnings and errors to `warn`, the rest to `log`. */
  logger?: Log;
  /** Test hook: where /run and /proc are looked up for clock-sync detection. */
  timesyncRoot?: string;
  /** Publisher retry cap, ms (tests shorten it). */
  retryMaxMs?: number;
  /**
   * The outbox became unusable while running (SQLite reports the file damaged): measuring on
   * would only pile readings up in memory, so the program stops (cli.ts: exit status 3).
   */
  onFatal?: (err: OutboxCorruptError) => void;
  /** Lines that mean something is wrong (journald priority warning); default: `log`. */
  warn?: (line: string) => void;
  /**
   * A component stopped for good (the sampler's loop, the publisher's loop): nothing would be
   * measured or sent any more while the process looked healthy. The program exits non-zero so
   * systemd restarts it (cli.ts: exit status 1).
   */
  onStopped?: (reason: string) => void;
  /** Test hook (POWER_METER_TEST_FAULT): make the sampler or the publisher stop for good after the first window. */
  testFault?: 'sampler' | 'publisher';
  /**
   * The chip answering is not the configured one (its ID registers name another): a setting or
   * the wiring must change, a restart cannot help (cli.ts: exit status 2).
   */
  onWrongChip?: (err: ChipMismatchError) => void;
  /** Test hook (POWER_METER_TEST_SIM_EMULATED_CHIP): the simulated sensor emulates this chip instead of --sim-chip. */
  testEmulatedChip?: ChipId;
  /** The PKCS#11 user PIN (POWER_METER_PKCS11_PIN; never logged), for a key in a token (`--key-uri`). */
  pkcs11Pin?: string;
  /** Reconnect delays for a token that went away, ms (tests shorten them; default 2 s doubling to 60 s). */
  tokenRetryMs?: { first: number; max: number };
}

/**
 * A measured window on its way to the outbox: signed in order, one at a time. A key in a token
 * signs off the event loop (tens to hundreds of ms on a TPM), so a window waits here meanwhile;
 * when the key cannot sign (or the clock cannot be trusted) it is held in the database instead,
 * unsigned and counted, and signed when the key is back.
 */
interface PendingReading {
  avgPowerW: number;
  energyWh: number;
  rewards: number;
  /** Wall-clock end, when the clock was trusted at the end of the window; null: re-anchored later. */
  endWallMs: number | null;
  /** Monotonic end (the sampler's clock). */
  endMonoMs: number;
}

/** Where the outbox and the sequence floor live in the data directory. */
export function outboxPaths(dataDir: string): { outbox: string; floor: string; identityDir: string } {
  return {
    outbox: join(dataDir, 'outbox', 'outbox.sqlite'),
    floor: join(dataDir, 'identity', 'sequence-floor.json'),
    identityDir: join(dataDir, 'identity'),
  };
}

/** The outbox's RAM copy in the RAM directory (see runtime-dir.ts); none when RAM is off. */
export function stagingFileFor(s: Pick<BackendSettings, 'runtimeDir' | 'dataDir'>): string | undefined {
  const dir = resolveRuntimeDir(s.runtimeDir, s.dataDir);
  return dir === resolve(s.dataDir) ? undefined : join(dir, 'outbox.sqlite');
}

/**
 * Numbers reserved per write of the sequence floor: each write is a synced rename on the card,
 * and a power cut skips at most the rest of a block (a gap, never a reuse).
 */
const SEQUENCE_BLOCK = 1000;

/**
 * The backend: sensor -> sampler -> window -> (signed reading in the outbox, totals) -> files,
 * with the publisher draining the outbox. One instance per data directory (the outbox lock).
 */
export class Meter {
  /** The device key (a key file or a PKCS#11 token) and its address. */
  readonly identity: MeterKey;
  readonly outbox: Outbox;
  private readonly store: MeterStore;
  private readonly writer: StateWriter;
  private readonly publisher: Publisher;
  private sensor: Sensor | null = null;
  private sampler: MeasuringSampler | null = null;
  /** The calibration applied to every reading and window (calibration.json), and its id. */
  private readonly calibration: Calibration;
  readonly calibrationId: string | null;
  private sensorState: SensorState = { state: 'ok', reason: null };
  private lastWindow: WindowSummary | null = null;
  private lastTokensPerH = 0;
  private clock: ClockSync = { state: 'unknown', reason: 'not probed yet' };
  private timers: NodeJS.Timeout[] = [];
  private writeError: string | null = null;
  /** Windows measured and not yet stored or held, oldest first (see PendingReading). */
  private pending: PendingReading[] = [];
  private storeError: string | null = null;
  /** The signing loop, while it runs (one at a time). */
  private signing: Promise<void> | null = null;
  private signAgain = false;
  /** Held readings signed since the last "released" line, by what they waited for. */
  private released = { clock: 0, key: 0 };
  /** Set by stop(): a signature that comes back after the pending windows were held is dropped. */
  private signingAbandoned = false;
  private lastShownPower: number | null = null;
  private lastWriteMs = 0;
  /** Monotonic ms (the sampler's clock) of the last live-power check. */
  private lastPowerCheckMs = -Infinity;
  private stopped = false;
  /** A state write was asked for since the running one started (see scheduleWrite). */
  private writeRequested = false;
  private writing: Promise<void> | null = null;
  private syncError: string | null = null;
  /**
   * Strict mode: readings stored while the card could not be written, not yet handed to the
   * outputs (MQTT `reading`): they go out with the sync that puts them on the card.
   */
  private unsyncedReadings: string[] = [];
  /** The RAM directory (runtime-dir.ts); the data directory itself when RAM is off. */
  readonly runtimeDir: string;
  private readonly boot: string;
  private readonly floorMs = buildFloorMs();
  private readonly observers: MeterObserver[] = [];
  /** Reads the owner's reward-token balance; null when not configured. */
  private readonly balance: BalanceReader | null;
  private rewardBalance: ChainBalance | null = null;
  /** Reads the device's ioID registration; null when not configured. */
  private readonly ioid: IoIdWatcher | null;
  private ioidStatus: IoIdStatus | null = null;
  /** The applet's reason when the latest delivered reading was refused (null once one is accepted). */
  private lastRejection: string | null = null;
  /** W3bstream 2 /v1/task: follows the state of the newest delivered task; null when off. */
  private readonly tasks: TaskWatcher | null;
  /** The last timestamp signed, in the unit sent (see distinctTimeMs). */
  private lastSignedTs = 0;

  private constructor(
    private readonly opts: MeterOptions,
    tokenKey?: MeterKey,
  ) {
    const s = opts.settings;
    this.runtimeDir = resolveRuntimeDir(s.runtimeDir, s.dataDir);
    // Group-readable like the data directory (the display reads state.json through the links).
    mkdirSync(this.runtimeDir, { recursive: true, mode: 0o750 });
    checkRuntimeDir(this.runtimeDir);
    try {
      ({ outbox: this.outbox, identity: this.identity, store: this.store } = this.openStores(tokenKey));
    } catch (err) {
      void tokenKey?.close();
      // Nothing runs: a RAM directory this program made and left empty goes (exit 2 or 3 must not
      // leave /dev/shm/power-meter-<id> behind). One holding a RAM copy of the outbox stays.
      this.removeOwnRuntimeDir();
      throw err;
    }
    this.writer = new StateWriter(this.runtimeDir);
    const stored = readCalibration(s.dataDir, { chip: sensorChip(s), simulated: s.sensor === 'sim', fullScaleA: s.maxCurrentA });
    if (stored.state === 'unusable') this.warn(`calibration not applied: ${stored.problem}`);
    ({ calibration: this.calibration, id: this.calibrationId } = activeCalibration(stored));
    this.boot = bootId(opts.timesyncRoot);
    this.publisher = new Publisher({
      outbox: this.outbox,
      url: s.publishUrl,
      transport: publisherTransport(s),
      token: s.publisherToken,
      deviceId: this.identity.deviceId,
      eventType: s.eventType,
      backoff: opts.retryMaxMs === undefined ? undefined : { maxMs: opts.retryMaxMs, configRetryMs: opts.retryMaxMs },
      log: this.libraryLog,
      settingHint: publishSettingHint,
    });
    this.tasks =
      s.transport === 'w3bstream-v2' && v2Dialect(s) === 'task' && s.publishUrl !== '' && s.taskPollIntervalS > 0
        ? new TaskWatcher({
            taskUrl: s.publishUrl,
            intervalMs: s.taskPollIntervalS * 1000,
            log: this.libraryLog,
            onUpdate: () => this.scheduleWrite(),
          })
        : null;
    this.publisher.on('delivered', (e) => {
      if (e.taskId) this.tasks?.track(e.taskId);
      const next = e.rejected ? (e.reason ?? 'refused') : null;
      if (next === this.lastRejection) return;
      this.lastRejection = next;
      this.scheduleWrite();
    });
    this.balance =
      s.rpcUrl === '' || s.rewardToken === '' || s.walletAddress === ''
        ? null
        : new BalanceReader({
            rpcUrl: s.rpcUrl,
            token: s.rewardToken,
            owner: s.walletAddress,
            intervalMs: s.balanceIntervalS * 1000,
            log: opts.log,
            onUpdate: (b) => {
              this.rewardBalance = b;
              this.scheduleWrite();
            },
          });
    this.rewardBalance = this.balance?.current() ?? null;
    this.ioid =
      s.rpcUrl === '' || s.ioidRegistry === ''
        ? null
        : new IoIdWatcher({
            rpcUrl: s.rpcUrl,
            registry: s.ioidRegistry,
            device: this.identity.deviceId,
            did: this.identity.did,
            intervalMs: s.ioidIntervalS * 1000,
            log: opts.log,
            onUpdate: ({ failures: _inProcessOnly, ...st }) => {
              const before = this.ioidStatus;
              this.ioidStatus = st;
              // First read, or a change: one line in the log saying where the device stands.
              const project = s.transport === 'w3bstream-v2' ? s.projectId : '';
              const changed = before?.readAtMs === null || before?.registered !== st.registered || before?.projectId !== st.projectId;
              if (st.error === null && changed) {
                const verdict = ioIdVerdict(st, project);
                opts.log(`ioID ${verdict.text}`);
                // Just registered for this project: readings refused with 403 need not wait out the slow retry.
                if (verdict.ok && before?.readAtMs !== null && this.publisher.state().state === 'failing') this.publisher.retryNow();
              }
              this.scheduleWrite();
            },
          });
    if (this.ioid !== null) {
      const { failures: _inProcessOnly, ...st } = this.ioid.current();
      this.ioidStatus = st;
    }
    this.publisher.on('state', (st) => {
      this.scheduleWrite();
      // The publisher's loop ended on an outbox error: nothing is sent any more.
      if (st.errorKey === 'OutboxError') this.stoppedForGood(`publisher stopped: ${st.advice ?? st.reason ?? 'outbox error'}`);
    });
  }

  /**
   * The outbox (locked first: a second instance must fail before touching anything), the key (the
   * token's, opened before by `start`, or the key file's), the checks of the backlog against both,
   * the totals.
   */
  private openStores(tokenKey?: MeterKey): { outbox: Outbox; identity: MeterKey; store: MeterStore } {
    const s = this.opts.settings;
    const paths = outboxPaths(s.dataDir);
    const outbox = Outbox.open(paths.outbox, {
      maxCount: s.outboxMaxCount,
      maxAgeMs: s.outboxMaxAgeDays * 86_400_000,
      sequenceFloorFile: paths.floor,
      sequenceBlock: SEQUENCE_BLOCK,
      schemas: [METER_SCHEMA],
      // No RAM directory: every commit goes to the card. Strict mode (0): the RAM copy is synced
      // at every reading, so each is on the card before it is sent.
      stagingFile: stagingFileFor(s),
      syncEveryAppend: s.syncIntervalS === 0,
    });
    try {
      const identity = tokenKey ?? fileKey(loadOrCreateIdentity(paths.identityDir, { curve: identityCurveFor(s) }));
      checkTransport(s, identity, backlogGroups(outbox));
      checkBacklogSigner(identity, outbox.peek(1)[0], outbox.waiting());
      return { outbox, identity, store: new MeterStore(outbox) };
    } catch (err) {
      outbox.close();
      // Damage that the open-time check did not see, met when reading the totals.
      throw isCorruptionError(err) ? new OutboxCorruptError(paths.outbox, (err as Error).message) : err;
    }
  }

  /** The RAM directory goes when this program chose it (not systemd, not the user) and it is empty. */
  private removeOwnRuntimeDir(): void {
    const s = this.opts.settings;
    if (s.runtimeDir === '' && !process.env.RUNTIME_DIRECTORY && this.runtimeDir !== resolve(s.dataDir)) rmdirIfEmpty(this.runtimeDir);
  }

  /** Adds an output (MQTT, metrics): see observer.ts. */
  observe(o: MeterObserver): void {
    this.observers.push(o);
  }

  private stoppedForGood(reason: string): void {
    if (this.stopped) return;
    (this.opts.onStopped ?? this.warn)(reason);
  }

  private readonly warn = (line: string): void => (this.opts.warn ?? this.opts.log)(line);
  private get libraryLog(): Log {
    return this.opts.logger ?? { error: this.warn, warning: this.warn, notice: this.opts.log, info: this.opts.log, debug: this.opts.log };
  }

  static async start(opts: MeterOptions): Promise<Meter> {
    const s = opts.settings;
    // The data directory is checked (exit 4) before anything is written into it, the token's
    // remembered public key and PIN guard (identity/) included.
    prepareDataDir(s.dataDir);
    // A key in a token is opened first (asynchronously); a token that cannot be used now is a fault
    // the meter measures through, unless this meter has never seen its key (no device address yet).
    const tokenKey =
      s.keyUri === ''
        ? undefined
        : await openMeterKey(s, {
            log: opts.log,
            warn: opts.warn ?? opts.log,
            pin: opts.pkcs11Pin ?? '',
            curve: identityCurveFor(s),
            retryMs: opts.tokenRetryMs,
          });
    const m = new Meter(opts, tokenKey);
    m.identity.onStatus((st) => {
      m.scheduleWrite();
      if (st.state === 'ok') m.kickSigning();
    });
    await m.begin();
    return m;
  }

  private async begin(): Promise<void> {
    const { settings: s, log } = this.opts;
    const removed = [...(await cleanupTempFiles(s.dataDir)), ...(await cleanupTempFiles(this.runtimeDir))];
    if (removed.length > 0) log(`removed ${removed.length} leftover temporary file(s) from an earlier run`);
    const report = this.outbox.openReport;
    if (report.created) log(`outbox ${this.outbox.file} is new (first start, or it was deleted or emptied)`);
    if (report.seqRaised) {
      const { from, to, reason } = report.seqRaised;
      this.warn(
        `sequence numbers ${from} to ${to - 1} skipped (${to - from}; counted in state.json publishing.skipped): ${GAP_REASONS[reason]}; numbering continues at ${to}, so no eventID names two readings`,
      );
    }
    for (const r of this.store.repairs) log(`outbox repaired: ${r.field} set to ${r.to}: ${r.why}`);
    // Totals never go back: the last published state is the floor for them.
    const last = await readState(s.dataDir);
    if (last.ok) {
      for (const r of this.store.raiseTotals({ energyWh: last.state.energyTotalWh, rewardsTotal: last.state.rewards.total }))
        log(
          `totals recovered: ${r.field} ${r.from} -> ${r.to} from the last state.json (the outbox held less: it was deleted, emptied or replaced)`,
        );
    }
    // Repairs and raised totals reach the card before any total is published.
    this.outbox.sync();
    // The files in the RAM directory first, then the links to them (none ever points at nothing).
    this.scheduleWrite();
    await this.writing;
    try {
      this.writer.linkInto(s.dataDir);
    } catch (err) {
      this.warn(`cannot link the state files into ${s.dataDir}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (stagingFileFor(s) === undefined) log(`no RAM directory: every reading reaches ${s.dataDir} before it is sent`);
    else if (s.syncIntervalS === 0) log(`strict: every reading reaches ${s.dataDir} before it is sent; state files in ${this.runtimeDir}`);
    else {
      log(
        `outbox and totals reach ${s.dataDir} every ${s.syncIntervalS} s (a power cut loses at most that much); state files in ${this.runtimeDir}`,
      );
      this.timers.push(setInterval(() => this.sync(), s.syncIntervalS * 1000));
    }
    this.logStaging();
    const t = this.store.totals();
    log(
      `identity device_id=${this.identity.deviceId} curve=${this.identity.curve} key=${this.identity.source === 'file' ? this.identity.where : `pkcs11 ${this.identity.where}`}`,
    );
    const ks = this.identity.status();
    if (ks.state === 'fault')
      this.warn(`signing key fault at start: ${ks.reason}: ${ks.advice}; measuring goes on, readings are kept unsigned`);
    log(
      this.calibrationId === null
        ? 'calibration none (power-meter calibrate measures one against a reference meter)'
        : `calibration ${this.calibrationId} applied: voltage gain ${this.calibration.voltageGain}, current gain ${this.calibration.currentGain}, offset ${this.calibration.currentOffsetA} A`,
    );
    log(
      `totals energy_wh=${t.energyWh.toFixed(6)} rewards=${t.rewardsTotal.toFixed(6)} windows=${t.windows} waiting=${this.outbox.stats().waiting} held=${this.store.heldCount()}`,
    );
    await this.refreshClock();
    this.publisher.start();
    if (this.tasks !== null) {
      log(`task state of the newest delivered task read every ${s.taskPollIntervalS} s from ${s.publishUrl.replace(/\?.*$/, '')}/<taskID>`);
      this.tasks.start();
    }
    if (this.balance !== null) {
      log(`reward balance of ${s.walletAddress} in token ${s.rewardToken} read from ${safeRpcUrl(s.rpcUrl)} every ${s.balanceIntervalS} s`);
      this.balance.start();
    }
    if (this.ioid !== null) {
      log(
        `ioID registration of ${this.identity.did} read from registry ${s.ioidRegistry} at ${safeRpcUrl(s.rpcUrl)} every ${s.ioidIntervalS} s`,
      );
      this.ioid.start();
    }
    await this.openSensor();
    // Live power is refreshed from the sampler's own wake-ups (onReading), not from a timer of
    // its own: every wake-up of an idle Node costs ~0.2 ms of CPU (backend CPU budget). This
    // 5 s timer checks the clock sync and keeps the heartbeat going when no readings come.
    this.timers.push(
      setInterval(() => {
        // Every 5 s while readings wait for it, every minute once trusted: with chrony or ntpd
        // a probe runs timedatectl, a process per probe.
        if (!this.canTimestamp() || performance.now() - this.lastClockProbeMs >= 60_000) void this.refreshClock();
        // Strict mode syncs with each reading; after a failed one, try again even without readings.
        if (s.syncIntervalS === 0 && this.syncError !== null) this.sync();
        this.refreshPower();
      }, 5000),
    );
    this.scheduleWrite();
  }

  private loggedStaged: boolean | null = null;
  /** Says when the outbox leaves RAM for a long backlog, and when it comes back. */
  private logStaging(): void {
    if (stagingFileFor(this.opts.settings) === undefined || this.loggedStaged === this.outbox.staged) return;
    if (this.loggedStaged !== null || !this.outbox.staged)
      this.opts.log(
        this.outbox.staged
          ? 'backlog drained: the outbox works in RAM again'
          : `backlog of ${this.outbox.waiting()} readings: the outbox works on ${this.opts.settings.dataDir} directly until it drains (RAM stays small)`,
      );
    this.loggedStaged = this.outbox.staged;
  }

  /** The sync point: the outbox's RAM copy to the card. A failure is retried at the next one. */
  private sync(): void {
    let error: unknown = null;
    try {
      this.outbox.sync();
      this.logStaging();
    } catch (err) {
      error = err;
    }
    this.syncDone(error);
    // The totals shown are the synced ones (they never go back, even after a power cut).
    this.scheduleWrite();
  }

  /** After a sync (the timer's, or strict mode's after each reading): one line per new problem, one when it is over. */
  private syncDone(err: unknown): void {
    if (err === null) {
      if (this.syncError !== null) this.opts.log(`the outbox reaches ${this.opts.settings.dataDir} again`);
      this.syncError = null;
      // Strict mode: readings now on the card go to the outputs, in order.
      for (const body of this.unsyncedReadings.splice(0)) notifyObservers(this.observers, (o) => o.onReading?.(body), this.opts.log);
      return;
    }
    if (isCorruptionError(err)) {
      this.opts.onFatal?.(new OutboxCorruptError(this.outbox.file, (err as Error).message));
      return;
    }
    const msg = err instanceof Error ? err.message : String(err);
    if (msg !== this.syncError)
      this.warn(
        this.opts.settings.syncIntervalS === 0
          ? `cannot write the outbox to ${this.opts.settings.dataDir} (${msg}): readings are stored in ${this.runtimeDir}, counted once, and sent once they are on the card (strict mode); free disk space there`
          : `cannot write the outbox to ${this.opts.settings.dataDir} (${msg}): readings are kept in ${this.runtimeDir} and written at the next sync; free disk space there`,
      );
    this.syncError = msg;
  }

  private async openSensor(): Promise<void> {
    const { settings: s, log } = this.opts;
    try {
      this.sensor = await createSensor({
        kind: s.sensor,
        simChip: s.simChip,
        simEmulatedChip: this.opts.testEmulatedChip,
        i2cBus: s.i2cBus,
        settings: { address: s.i2cAddress, shuntOhms: s.shuntOhms, maxCurrentA: s.maxCurrentA },
        simLoad: s.simLoad,
        log: this.libraryLog,
      });
    } catch (err) {
      // A missing bus or permission problem: show it (state.json -> the screen) and retry.
      const reason = `${err instanceof Error ? err.message : String(err)}${sensorSystemFix(err)}`;
      if (this.sensorState.reason !== reason) this.warn(`sensor fault: ${reason}${sensorSettingHint(err)}`);
      this.sensorState = { state: 'fault', reason };
      this.scheduleWrite();
      if (!this.stopped) this.timers.push(setTimeout(() => void this.openSensor(), 10_000));
      return;
    }
    this.sampler = createSampler({
      driver: this.sensor.driver,
      clock: systemClock,
      sleep: realSleep,
      windowMs: s.window * 1000,
      onWindow: (w) => this.onWindow(w),
      onReading: (r) => {
        // The reading's own monotonic time: no extra clock call per conversion.
        if (r.atMs - this.lastPowerCheckMs < s.powerIntervalMs) return;
        this.lastPowerCheckMs = r.atMs;
        this.refreshPower();
      },
      onState: (st) => {
        this.sensorState = st;
        this.scheduleWrite();
      },
      onStopped: (err) => {
        if (err instanceof ChipMismatchError && this.opts.onWrongChip && !this.stopped) return this.opts.onWrongChip(err);
        this.stoppedForGood(`sampler stopped: ${err instanceof Error ? err.message : String(err)}`);
      },
      log: this.libraryLog,
      reasonHint: sensorSystemFix,
      faultHint: sensorSettingHint,
    });
    this.sensorState = { state: 'ok', reason: null };
    this.sampler.start();
    const chip = this.sensor.chip;
    log(
      `sensor ${s.sensor}${s.sensor === 'sim' ? ` chip=${s.simChip} load=${s.simLoad}` : ` bus=/dev/i2c-${s.i2cBus} address=0x${s.i2cAddress.toString(16)}`} ${chip.name} shunt_ohms=${this.sensor.driver.chip.internalShuntOhms ?? s.shuntOhms} max_current_a=${s.maxCurrentA} ${chip.energyAccumulator ? "energy from the chip's accumulator" : `a result every ${this.sensor.driver.cycleMs.toFixed(1)} ms`} window_s=${s.window}`,
    );
  }

  private lastClockProbeMs = -Infinity;
  private async refreshClock(): Promise<void> {
    this.lastClockProbeMs = performance.now();
    const before = this.clock.state;
    this.clock = decideClockSync(await probeClock({ floorMs: this.floorMs, root: this.opts.timesyncRoot }));
    if (before !== this.clock.state) this.opts.log(`clock ${this.clock.state}: ${this.clock.reason}`);
    if (this.canTimestamp()) this.kickSigning();
  }

  private canTimestamp(): boolean {
    return !this.opts.settings.holdUnsyncedClock || clockTrusted(this.clock);
  }

  /**
   * A window becomes a pending reading; the signing loop stores it (or holds it). A window that
   * could not be stored (disk full, I/O error) stays pending and is retried with the next window;
   * an exception here must never end the sampler (measurement would stop while the files still
   * looked alive).
   */
  private onWindow(w: WindowResult): void {
    if (this.stopped) return;
    if (this.opts.testFault === 'sampler') throw new Error('test fault (POWER_METER_TEST_FAULT=sampler): the sampler stops');
    if (this.opts.testFault === 'publisher' && this.lastWindow !== null) {
      this.outbox.close();
      this.publisher.notify();
    }
    const r = this.prepareWindow(w);
    if (r !== null) {
      this.pending.push(r);
      if (this.pending.length > 10_000) this.pending.shift();
    }
    this.kickSigning();
    this.scheduleWrite();
  }

  /** The window's figures for the screen, and what will be signed; null when it had no readings. */
  private prepareWindow(raw: WindowResult): PendingReading | null {
    let w = raw;
    const { settings: s, log } = this.opts;
    if (w.avgPowerW === null) {
      log(`window without readings (sensor fault: ${w.faultReason ?? 'unknown'}): nothing to sign`);
      return null;
    }
    w = calibrateWindow(w, this.calibration);
    if (w.avgPowerW === null) return null;
    const durationMs = w.endMs - w.startMs;
    const rewards = rewardsForWindow(w.avgPowerW, durationMs, s.rewardTiers);
    this.lastTokensPerH = tokensPerH(w.avgPowerW, s.rewardTiers);
    const anchor = { wallMs: Date.now(), monoMs: bootMonotonicMs() };
    const endWall = wallTimeOf(w.endMs, anchor);
    this.lastWindow = {
      avgPowerW: Number(w.avgPowerW.toFixed(4)),
      energyWh: w.energyWh,
      minPowerW: Number((w.minPowerW ?? 0).toFixed(4)),
      maxPowerW: Number((w.maxPowerW ?? 0).toFixed(4)),
      startMs: Math.round(endWall - durationMs),
      endMs: Math.round(endWall),
      samples: w.readings,
      observedFraction: Number(w.observedFraction.toFixed(4)),
      complete: w.complete,
      busV: w.busV === null ? null : Number(w.busV.toFixed(4)),
      currentA: w.currentA === null ? null : Number(w.currentA.toFixed(6)),
    };
    if (!w.complete)
      this.warn(`window incomplete: ${w.faultReason ?? 'readings missing'}; observed ${(w.observedFraction * 100).toFixed(1)} %`);
    return {
      avgPowerW: w.avgPowerW,
      energyWh: w.energyWh,
      rewards,
      endWallMs: this.canTimestamp() ? endWall : null,
      endMonoMs: w.endMs,
    };
  }

  /** Runs the signing loop, or asks the running one to look again. */
  private kickSigning(): void {
    if (this.stopped || this.signingAbandoned) return;
    if (this.signing !== null) {
      this.signAgain = true;
      return;
    }
    this.signing = this.signLoop().finally(() => {
      this.signing = null;
      if (this.signAgain) {
        this.signAgain = false;
        this.kickSigning();
      }
    });
  }

  /**
   * In order: readings held earlier (for the clock or the key) are signed first, then the pending
   * windows. While the key cannot sign or the clock is not trusted, pending windows are held in
   * the database (unsigned, counted, bounded), so the order is kept and a restart loses nothing.
   *
   * Each step is one commit (Outbox.append, or the hold): up to it, a failure (disk full, SQLite
   * busy, I/O error) rolls everything back and the window stays where it was, tried again with the
   * next window; after it, the window has left the queue (or the held table) for good, and what
   * follows (drops, strict mode's sync result, outputs, logs) runs on its own and can never put
   * it back, so no window is stored or counted twice.
   */
  private async signLoop(): Promise<void> {
    const s = this.opts.settings;
    for (;;) {
      if (this.stopped || this.signingAbandoned) return;
      const canSign = this.identity.ready() && this.canTimestamp();
      let committed: (() => void) | null = null;
      try {
        if (canSign) {
          const held = this.store.held(1)[0];
          if (held !== undefined) {
            if (held.endWallMs === null && held.bootId !== this.boot) {
              this.store.dropHeld(held.id);
              this.opts.log(
                'dropped a held reading from an earlier boot: its time cannot be known (the clock never synced before that reboot)',
              );
              continue;
            }
            const wallMs = held.endWallMs ?? wallTimeOf(held.endMonoMs, { wallMs: Date.now(), monoMs: bootMonotonicMs() });
            const reading = { powerW: held.avgPowerW, timestampMs: this.distinctTimeMs(wallMs) };
            const body = await this.sign(reading);
            if (body === null) continue; // the key failed: the next turn holds
            if (this.signingAbandoned) return;
            const stored = this.store.release(held.id, body);
            // Stored: only now does the timestamp count as taken (a failed store is signed again with it).
            this.signedAt(reading.timestampMs);
            committed = () => this.afterRelease(held.endWallMs === null ? 'clock' : 'key', stored);
          }
        }
        if (committed === null) {
          const r = this.pending[0];
          if (r === undefined) return;
          if (!canSign) {
            const held = this.store.holdReading(
              { bootId: this.boot, endMonoMs: r.endMonoMs, avgPowerW: r.avgPowerW, endWallMs: r.endWallMs },
              { energyWh: r.energyWh, rewards: r.rewards },
              s.outboxMaxCount,
            );
            this.pending.shift();
            committed = () => this.afterHold(r, held);
          } else {
            const wallMs = r.endWallMs ?? wallTimeOf(r.endMonoMs, { wallMs: Date.now(), monoMs: bootMonotonicMs() });
            const reading = { powerW: r.avgPowerW, timestampMs: this.distinctTimeMs(wallMs) };
            const body = await this.sign(reading);
            if (body === null) continue;
            if (this.signingAbandoned) return;
            const stored = this.store.storeReading(body, { energyWh: r.energyWh, rewards: r.rewards, avgPowerW: r.avgPowerW });
            this.pending.shift();
            this.signedAt(reading.timestampMs);
            committed = () => {
              if (!stored.counted)
                this.opts.log(
                  `window energy ${r.energyWh} Wh / rewards ${r.rewards} is not a finite amount: counted as 0 (totals stay finite)`,
                );
              this.afterAppend(stored);
            };
          }
        }
        this.storeError = null;
      } catch (err) {
        // Nothing of this step was committed (the transaction rolled back): it is tried again.
        if (isCorruptionError(err)) {
          this.opts.onFatal?.(new OutboxCorruptError(this.outbox.file, (err as Error).message));
          return;
        }
        const msg = err instanceof Error ? err.message : String(err);
        if (msg !== this.storeError)
          this.warn(
            `cannot store a reading (${msg}): ${this.pending.length} window(s) kept in memory and retried with the next window; free disk space in ${s.dataDir}`,
          );
        this.storeError = msg;
        return;
      }
      try {
        committed();
      } catch (err) {
        this.warn(`after storing a reading: ${err instanceof Error ? err.message : String(err)}`);
      }
      this.scheduleWrite();
    }
  }

  /** Signs through the key; null when the key failed (it is then in its fault state and says so). */
  private async sign(reading: { powerW: number; timestampMs: number }): Promise<string | ((seq: number) => string) | null> {
    try {
      return await signReadingWith(
        this.opts.settings,
        this.identity,
        reading,
        this.readingExtras(),
        () => this.outbox.stats().nextSeq,
        // The extended reading's energy total: the one on the card, which never goes back.
        this.signedEnergyWh(),
      );
    } catch (err) {
      if (this.identity.source === 'file') throw err;
      return null;
    }
  }

  /** A held reading was signed and stored: as a new one, plus the "released" line once none is left. */
  private afterRelease(waitedFor: 'clock' | 'key', stored: AppendResult): void {
    this.afterAppend(stored);
    this.released[waitedFor]++;
    if (this.store.held(1).length === 0) {
      const { clock, key } = this.released;
      this.opts.log(
        `released ${clock + key} held reading(s)${clock > 0 ? ' with re-anchored timestamps' : ''}${key > 0 ? `, ${key} kept unsigned while the signing key could not sign` : ''}`,
      );
      this.released = { clock: 0, key: 0 };
    }
  }

  /**
   * A window kept unsigned in the database (its energy and rewards counted, once), bounded by
   * `--outbox-max-count`: past it the oldest held reading was dropped and counted
   * (publishing.dropped) in the same transaction (MeterStore.holdReading).
   */
  private afterHold(r: PendingReading, held: { counted: boolean; droppedOldest: boolean }): void {
    if (held.droppedOldest)
      this.warn(
        `more than ${this.opts.settings.outboxMaxCount} readings held unsigned (--outbox-max-count): dropped the oldest (counted in publishing.dropped)`,
      );
    if (!held.counted)
      this.opts.log(`window energy ${r.energyWh} Wh / rewards ${r.rewards} is not a finite amount: counted as 0 (totals stay finite)`);
    const counts = this.store.heldCounts();
    if (r.endWallMs === null) this.opts.log(`reading held until the clock is synchronised (${this.clock.reason}); held=${counts.clock}`);
    else
      this.opts.log(
        `reading held unsigned until the signing key is back (${this.identity.status().reason ?? 'key not ready'}); unsigned=${counts.key}`,
      );
    // Strict mode: the held window's energy reaches the card now, as a stored reading's does.
    if (this.opts.settings.syncIntervalS === 0) this.sync();
  }

  /** A reading is in the outbox: drops, strict mode's sync result, the outputs. */
  private afterAppend(stored: AppendResult): void {
    this.reportDrops(stored.dropped);
    if (this.opts.settings.syncIntervalS === 0) {
      this.syncDone(stored.syncError);
      // Not on the card yet: the outputs get it with the sync that puts it there.
      if (stored.syncError !== null) {
        this.unsyncedReadings.push(stored.body);
        return;
      }
    }
    notifyObservers(this.observers, (o) => o.onReading?.(stored.body), this.opts.log);
  }

  /** The energy total an extended reading signs: the card's (the last sync), so it never decreases. */
  private signedEnergyWh(): number {
    return this.opts.settings.signedFields === 'extended'
      ? (this.outbox.staged ? this.store.syncedTotals() : this.store.totals()).energyWh
      : 0;
  }

  /** What the wire profile adds to the signed data: the calibration id with --reading-calibration-id. */
  private readingExtras(): ReadonlyArray<readonly [string, string]> {
    return this.opts.settings.readingCalibrationId ? [['calibration_id', this.calibrationId ?? 'none']] : [];
  }

  /** The sampler's latest reading with the calibration applied. */
  private latestReading(): LatestReading | null {
    const latest = this.sampler?.latest() ?? null;
    return latest === null || this.calibration === NO_CALIBRATION ? latest : calibrateReading(latest, this.calibration);
  }

  /**
   * Every reading is told apart on the wire by its body, not only by its eventID or nonce: with
   * `--window 1` and second timestamps, two windows can end within the same second (window
   * lengths vary by a few ms), and the same power then gave a byte-identical body (deterministic
   * signatures) that an applet could not tell from a resend. So the timestamp sent, in its unit,
   * always goes up: a reading whose second (or ms) was taken by the previous one gets the next
   * one. The shift is under one unit, within the timestamp's own rounding (docs/w3bstream.md
   * section 2, "Decision"). Only a stored reading takes its timestamp (`signedAt`): a window that
   * could not be stored and is tried again must not push the ones behind it into the future.
   */
  private distinctTimeMs(wallMs: number): number {
    const unit = this.opts.settings.timestampUnit;
    const perUnit = unit === 's' ? 1000 : 1;
    let ts = timestampFor(wallMs, unit);
    if (ts <= this.lastSignedTs) ts = this.lastSignedTs + 1;
    return Math.max(wallMs, ts * perUnit);
  }

  /** A reading with this time (from `distinctTimeMs`) was stored: the next one must be later. */
  private signedAt(timestampMs: number): void {
    this.lastSignedTs = Math.max(this.lastSignedTs, timestampFor(timestampMs, this.opts.settings.timestampUnit));
  }

  /** The outbox is bounded: dropping the oldest is counted (state.json) and logged, never silent. */
  private reportDrops(dropped: number): void {
    if (dropped > 0)
      this.warn(
        `outbox full or too old: dropped ${dropped} oldest undelivered reading(s); ${this.outbox.stats().dropped} dropped since install (raise --outbox-max-count / --outbox-max-age)`,
      );
  }

  /**
   * The live-power refresh rewrites state.json only when the figure the screen shows (two
   * decimals) changed, or every 5 s as a heartbeat so the display can tell a live backend from a
   * stale one. A steady load then costs 2 small writes per window instead of 10 (SD-card wear,
   * docs/design.md "What users of other meters complain about", item 4).
   */
  private refreshPower(): void {
    const latest = this.latestReading();
    const shown = latest === null ? null : Math.round(latest.powerW * 100);
    // Measured time: with the wall clock, a step back (NTP after a boot without a real-time
    // clock, `date -s`) would stop the heartbeat until the clock caught up, and the display would
    // call a live backend stale.
    // 4.5 s, not 5: the 5 s timer then always writes the heartbeat when readings stop.
    if (shown === this.lastShownPower && performance.now() - this.lastWriteMs < 4500) return;
    this.scheduleWrite();
  }

  /**
   * Asks for a write of the state files; returns at once (the sampling loop never waits for the
   * disk). Requests coalesce: one write runs at a time, and every request made meanwhile becomes
   * one more write after it, whose state is built when it starts. So writes never reorder: a
   * later state can never be overwritten by an earlier one.
   */
  private scheduleWrite(): void {
    if (this.stopped) return;
    this.writeRequested = true;
    this.writing ??= this.drainWrites();
  }

  private async drainWrites(): Promise<void> {
    try {
      while (this.writeRequested && !this.stopped) {
        // Everything asked for in this turn of the event loop becomes one write.
        await new Promise<void>((r) => setImmediate(r));
        this.writeRequested = false;
        try {
          this.writeState();
          this.writeError = null;
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          // One line per distinct problem (a full disk would otherwise log twice a second).
          if (msg !== this.writeError) this.warn(`cannot write the state files in ${this.runtimeDir}: ${msg}`);
          this.writeError = msg;
        }
      }
    } finally {
      this.writing = null;
    }
  }

  private writeState(): void {
    const s = this.opts.settings;
    const latest = this.latestReading();
    const totals = this.store.totals();
    // Published totals are the ones on the card: after a power cut they are where they were.
    const synced = this.outbox.staged ? this.store.syncedTotals() : totals;
    const pub = this.publisher.state();
    const held = this.store.heldCounts();
    const key = this.identity.status();
    const state = buildState({
      nowMs: Date.now(),
      deviceId: this.identity.deviceId,
      walletAddress: s.walletAddress,
      powerW: this.sensorState.state === 'ok' && latest ? latest.powerW : null,
      lastWindow: this.lastWindow,
      recentAvgPowerW: totals.recentAvgPowerW,
      windowS: s.window,
      energyTotalWh: synced.energyWh,
      rewards: { tokensPerH: this.lastTokensPerH, total: synced.rewardsTotal, tiers: s.rewardTiers },
      publishing: {
        state: pub.state,
        reason: pub.reason,
        waiting: pub.waiting,
        dropped: pub.dropped + totals.heldDropped,
        lastSuccessMs: pub.lastSuccessMs,
        held: held.clock,
        rejected: pub.rejected,
        lastRejection: this.lastRejection,
        skipped: this.outbox.stats().skipped,
        ...(s.transport === 'w3bstream-v2' ? { lastTaskId: pub.lastTaskId } : {}),
        ...(this.tasks === null ? {} : { task: this.taskState() }),
      },
      rewardBalance: this.rewardBalance === null ? undefined : stateBalance(this.rewardBalance),
      ioid: this.ioidStatus ?? undefined,
      signing:
        key.source === 'file'
          ? undefined
          : {
              key: 'pkcs11',
              state: key.state,
              reason: key.reason,
              unsigned: held.key + (key.state === 'ok' ? 0 : this.pending.length),
              pinAttempts: key.pinAttempts,
              sinceMs: key.sinceMs,
            },
      sensor: {
        state: this.sensorState.state,
        reason: this.sensorState.reason,
        busV: latest?.busV ?? null,
        currentA: latest?.currentA ?? null,
        chip: CHIPS[sensorChip(s)].name,
        simulated: s.sensor === 'sim',
        calibrationId: this.calibrationId,
      },
    });
    notifyObservers(this.observers, (o) => o.onState?.(state), this.opts.log);
    this.writer.write(state, legacyStatusOf(pub.lastAttemptOk));
    this.lastShownPower = state.powerW === null ? null : Math.round(state.powerW * 100);
    this.lastWriteMs = performance.now();
  }

  /** The followed task as state.json carries it (null before its state was first read). */
  private taskState(): NonNullable<import('@power-meter/meter-files').MeterState['publishing']['task']> | null {
    const t = this.tasks?.current() ?? null;
    if (t === null) return null;
    return {
      id: t.taskId,
      state: t.state,
      stateAtMs: t.stateAtMs,
      txHash: t.txHash,
      error: t.error,
      checkedAtMs: t.checkedAtMs,
      failedCount: this.tasks!.failedCount(),
    };
  }

  /**
   * A signature still in the token gets up to a second to come back; whatever is still pending
   * then is held in the database (unsigned, counted), so a stop loses no measured window.
   */
  private async stopSigning(): Promise<void> {
    if (this.signing !== null) await Promise.race([this.signing, new Promise((r) => setTimeout(r, 1000))]);
    this.signingAbandoned = true;
    for (const r of this.pending.splice(0)) {
      let held: { counted: boolean; droppedOldest: boolean };
      try {
        held = this.store.holdReading(
          { bootId: this.boot, endMonoMs: r.endMonoMs, avgPowerW: r.avgPowerW, endWallMs: r.endWallMs },
          { energyWh: r.energyWh, rewards: r.rewards },
          this.opts.settings.outboxMaxCount,
        );
      } catch (err) {
        this.warn(`cannot keep a window at stop (${err instanceof Error ? err.message : String(err)}): it is lost`);
        continue;
      }
      try {
        this.afterHold(r, held);
      } catch (err) {
        this.warn(`after keeping a window at stop: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** Bytes written to the data directory so far (state files only). */
  get bytesWritten(): number {
    return this.writer.bytesWritten;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.balance?.stop();
    this.ioid?.stop();
    this.tasks?.stop();
    await this.sampler?.stop();
    await this.stopSigning();
    await this.publisher.stop();
    // The last state (with the totals of the final sync) goes out before the files leave RAM.
    this.sync();
    await this.writing;
    this.stopped = true;
    await this.sensor?.close();
    this.outbox.close();
    await this.identity.close();
    // A stopped meter leaves real files in the data directory, and nothing in RAM.
    const s = this.opts.settings;
    try {
      this.writer.materialize(s.dataDir);
      // The directory this program chose (not systemd's, not the user's) goes too, when empty.
      this.removeOwnRuntimeDir();
    } catch (err) {
      this.warn(`cannot move the state files back into ${s.dataDir}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/** The log's words for a gap in the numbering (Outbox openReport.seqRaised). */
const GAP_REASONS: Record<SeqGapReason, string> = {
  'ram-copy-lost':
    'the RAM copy of the outbox was lost (a power cut, or the machine stopped without stopping the meter): the readings it stored after the last sync to the card are lost with their numbers, and the rest of the reserved block was never used',
  'outbox-new': 'the outbox is new (deleted or emptied) while the key stayed: its readings are lost',
  'outbox-older': 'the outbox is older than the numbers used before the last stop (an older copy): the readings of the newer one are lost',
  'unclean-stop':
    'the meter did not stop cleanly and the outbox cannot show that it holds the last number used (an older copy, or a start stopped while opening the outbox)',
};

function rmdirIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Not empty (a RAM copy whose last sync failed is kept there) or already gone.
  }
}

/** The reader's state as state.json carries it (the failure count stays in the process). */
function stateBalance(b: ChainBalance): RewardBalance {
  const { failures: _inProcessOnly, ...balance } = b;
  return balance;
}

/** The RAM directory cannot be used (cli.ts: exit status 2, a setting to change). */
export class RuntimeDirError extends Error {
  override name = 'RuntimeDirError';
}

/**
 * The RAM directory holds the outbox between syncs: one made by someone else (its name under
 * /dev/shm can be guessed) could hand the meter readings it never measured. It must be a real
 * directory of this user that nobody else can write.
 */
function checkRuntimeDir(dir: string): void {
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0)
    throw new RuntimeDirError(
      `RAM directory ${dir} is ${st.isDirectory() ? `owned by uid ${st.uid} with mode ${(st.mode & 0o777).toString(8)}` : 'not a directory'}: it must be this user's and writable by nobody else; remove it, or choose another with --runtime-dir`,
    );
}
