import { performance } from 'node:perf_hooks';
import { CHIPS, calibrateWindow, type Calibration, type ChipMismatchError, type WindowResult } from '@power-meter/ina219';
import { cleanupTempFiles, legacyStatusOf, readState, type WindowSummary } from '@power-meter/meter-files';
import type { Log } from '@power-meter/service';
import { Publisher, type Outbox, type OutboxCorruptError, type SeqGapReason } from '@power-meter/w3bstream';
import { activeCalibration, readCalibration } from './calibration/store.js';
import { rewardsForWindow, tokensPerH } from './rewards.js';
import { notifyObservers, type MeterObserver } from './observer.js';
import { sensorChip, type BackendSettings } from './settings.js';
import { publishSettingHint } from './hints.js';
import { prepareDataDir } from './data-dir.js';
import { StateWriter, buildState } from './state-writer.js';
import type { MeterStore } from './store.js';
import { identityCurveFor, publisherTransport } from './transport.js';
import { openMeterKey, type MeterKey } from './key/meter-key.js';
import { bootId, bootMonotonicMs, clockTrusted, decideClockSync, probeClock, wallTimeOf, type ClockSync } from './timesync.js';
import { CardSync } from './meter/card-sync.js';
import { buildFloorMs, stagingFileFor } from './meter/paths.js';
import { prepareRuntimeDir, removeOwnRuntimeDir } from './meter/ram-dir.js';
import { SensorRunner, type SamplerFactory, type SensorFactory } from './meter/sensor.js';
import { SigningPipeline, type PendingReading } from './meter/signing.js';
import { StateWrites } from './meter/state-writes.js';
import { openStores, type OpenOutbox } from './meter/stores.js';
import { Watchers } from './meter/watchers.js';

export { buildFloorMs, outboxPaths, stagingFileFor } from './meter/paths.js';
export { RuntimeDirError } from './meter/ram-dir.js';
export type { SamplerFactory, SensorFactory } from './meter/sensor.js';
export type { OpenOutbox } from './meter/stores.js';

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
  /**
   * The chip answering is not the configured one (its ID registers name another): a setting or
   * the wiring must change, a restart cannot help (cli.ts: exit status 2).
   */
  onWrongChip?: (err: ChipMismatchError) => void;
  /** The PKCS#11 user PIN (POWER_METER_PKCS11_PIN; never logged), for a key in a token (`--key-uri`). */
  pkcs11Pin?: string;
  /** Reconnect delays for a token that went away, ms (tests shorten them; default 2 s doubling to 60 s). */
  tokenRetryMs?: { first: number; max: number };
  /**
   * Makes the sensor (default: the library's `createSensor` from the settings). Tests inject
   * another (a simulated chip that is not the configured one) through it.
   */
  createSensor?: SensorFactory;
  /** Makes the sampler (default: the library's `createSampler`). Tests inject one that fails. */
  createSampler?: SamplerFactory;
  /** Opens the outbox (default: `Outbox.open`). Tests inject one that fails while running. */
  openOutbox?: OpenOutbox;
}

/**
 * The backend: sensor -> sampler -> window -> (signed reading in the outbox, totals) -> files,
 * with the publisher draining the outbox. One instance per data directory (the outbox lock).
 *
 * The composition of its parts (meter/): the sensor and its sampler (sensor.ts), the signing
 * pipeline from window to stored or held reading (signing.ts), the sync of the outbox's RAM copy
 * to the card (card-sync.ts), the scheduling of state-file writes (state-writes.ts), the chain and
 * task watchers (watchers.ts), the stores opened at start (stores.ts). What stays here: the order
 * of start and stop, the clock, a window's figures, and what state.json says.
 */
export class Meter {
  /** The device key (a key file or a PKCS#11 token) and its address. */
  readonly identity: MeterKey;
  readonly outbox: Outbox;
  private readonly store: MeterStore;
  private readonly writer: StateWriter;
  private readonly publisher: Publisher;
  /** The calibration applied to every reading and window (calibration.json), and its id. */
  private readonly calibration: Calibration;
  readonly calibrationId: string | null;
  /** The RAM directory (runtime-dir.ts); the data directory itself when RAM is off. */
  readonly runtimeDir: string;
  private readonly stateWrites: StateWrites;
  private readonly watchers: Watchers;
  private readonly cardSync: CardSync;
  private readonly signing: SigningPipeline;
  private readonly sensor: SensorRunner;
  private lastWindow: WindowSummary | null = null;
  private lastTokensPerH = 0;
  private clock: ClockSync = { state: 'unknown', reason: 'not probed yet' };
  private lastClockProbeMs = -Infinity;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private readonly boot: string;
  private readonly floorMs = buildFloorMs();
  private readonly observers: MeterObserver[] = [];

  private constructor(
    private readonly opts: MeterOptions,
    tokenKey?: MeterKey,
  ) {
    const s = opts.settings;
    this.runtimeDir = prepareRuntimeDir(s);
    ({ outbox: this.outbox, identity: this.identity, store: this.store } = this.openStores(tokenKey));
    this.writer = new StateWriter(this.runtimeDir);
    ({ calibration: this.calibration, id: this.calibrationId } = this.loadCalibration());
    this.boot = bootId(opts.timesyncRoot);
    const changed = (): void => this.scheduleWrite();
    this.stateWrites = new StateWrites({
      write: () => this.writeState(),
      warn: this.warn,
      runtimeDir: this.runtimeDir,
      stopped: () => this.stopped,
    });
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
    this.watchers = new Watchers({
      settings: s,
      log: opts.log,
      libraryLog: this.libraryLog,
      identity: this.identity,
      publisher: this.publisher,
      changed,
    });
    this.publisher.on('state', (st) => {
      this.scheduleWrite();
      // The publisher's loop ended on an outbox error: nothing is sent any more.
      if (st.errorKey === 'OutboxError') this.stoppedForGood(`publisher stopped: ${st.advice ?? st.reason ?? 'outbox error'}`);
    });
    this.cardSync = new CardSync({
      settings: s,
      log: opts.log,
      warn: this.warn,
      onFatal: opts.onFatal,
      outbox: this.outbox,
      runtimeDir: this.runtimeDir,
      toOutputs: (body) => notifyObservers(this.observers, (o) => o.onReading?.(body), this.opts.log),
      changed,
    });
    this.signing = new SigningPipeline({
      settings: s,
      log: opts.log,
      warn: this.warn,
      onFatal: opts.onFatal,
      identity: this.identity,
      outbox: this.outbox,
      store: this.store,
      boot: this.boot,
      calibrationId: this.calibrationId,
      canTimestamp: () => this.canTimestamp(),
      clockReason: () => this.clock.reason,
      stopped: () => this.stopped,
      stored: (stored) => this.cardSync.readingStored(stored),
      sync: () => this.cardSync.sync(),
      changed,
    });
    this.sensor = new SensorRunner({
      settings: s,
      log: opts.log,
      libraryLog: this.libraryLog,
      warn: this.warn,
      calibration: this.calibration,
      createSensor: opts.createSensor,
      createSampler: opts.createSampler,
      onWindow: (w) => this.onWindow(w),
      onPowerCheck: () => this.refreshPower(),
      changed,
      onStopped: (reason) => this.stoppedForGood(reason),
      onWrongChip: opts.onWrongChip === undefined ? undefined : (err) => opts.onWrongChip?.(err),
      stopped: () => this.stopped,
    });
  }

  /** The stores (see meter/stores.ts); if they cannot be opened, nothing runs and the RAM directory this program made goes. */
  private openStores(tokenKey?: MeterKey): ReturnType<typeof openStores> {
    try {
      return openStores(this.opts.settings, tokenKey, this.opts.openOutbox);
    } catch (err) {
      void tokenKey?.close();
      // Nothing runs: a RAM directory this program made and left empty goes (exit 2 or 3 must not
      // leave /dev/shm/power-meter-<id> behind). One holding a RAM copy of the outbox stays.
      removeOwnRuntimeDir(this.opts.settings, this.runtimeDir);
      throw err;
    }
  }

  /** calibration.json, when it fits this sensor; an unusable one is said and not applied. */
  private loadCalibration(): ReturnType<typeof activeCalibration> {
    const s = this.opts.settings;
    const stored = readCalibration(s.dataDir, { chip: sensorChip(s), simulated: s.sensor === 'sim', fullScaleA: s.maxCurrentA });
    if (stored.state === 'unusable') this.warn(`calibration not applied: ${stored.problem}`);
    return activeCalibration(stored);
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
      if (st.state === 'ok') m.signing.kick();
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
    await this.stateWrites.settled();
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
      this.timers.push(setInterval(() => this.cardSync.sync(), s.syncIntervalS * 1000));
    }
    this.cardSync.logStaging();
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
    this.watchers.start();
    await this.sensor.open();
    // Live power is refreshed from the sampler's own wake-ups (onReading), not from a timer of
    // its own: every wake-up of an idle Node costs ~0.2 ms of CPU (backend CPU budget). This
    // 5 s timer checks the clock sync and keeps the heartbeat going when no readings come.
    this.timers.push(
      setInterval(() => {
        // Every 5 s while readings wait for it, every minute once trusted: with chrony or ntpd
        // a probe runs timedatectl, a process per probe.
        if (!this.canTimestamp() || performance.now() - this.lastClockProbeMs >= 60_000) void this.refreshClock();
        // Strict mode syncs with each reading; after a failed one, try again even without readings.
        if (s.syncIntervalS === 0 && this.cardSync.failing) this.cardSync.sync();
        this.refreshPower();
      }, 5000),
    );
    this.scheduleWrite();
  }

  private async refreshClock(): Promise<void> {
    this.lastClockProbeMs = performance.now();
    const before = this.clock.state;
    this.clock = decideClockSync(await probeClock({ floorMs: this.floorMs, root: this.opts.timesyncRoot }));
    if (before !== this.clock.state) this.opts.log(`clock ${this.clock.state}: ${this.clock.reason}`);
    if (this.canTimestamp()) this.signing.kick();
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
    const r = this.prepareWindow(w);
    if (r !== null) this.signing.add(r);
    this.signing.kick();
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

  /** Live power for the screen: written when the figure shown changed or the heartbeat is due (state-writes.ts). */
  private refreshPower(): void {
    this.stateWrites.refreshPower(this.sensor.latestReading()?.powerW ?? null);
  }

  /** Asks for a write of the state files; returns at once (see StateWrites.request). */
  private scheduleWrite(): void {
    this.stateWrites.request();
  }

  private writeState(): void {
    const s = this.opts.settings;
    const latest = this.sensor.latestReading();
    const sensorState = this.sensor.state;
    const totals = this.store.totals();
    // Published totals are the ones on the card: after a power cut they are where they were.
    const synced = this.outbox.staged ? this.store.syncedTotals() : totals;
    const pub = this.publisher.state();
    const held = this.store.heldCounts();
    const key = this.identity.status();
    const watched = this.watchers.state();
    const state = buildState({
      nowMs: Date.now(),
      deviceId: this.identity.deviceId,
      walletAddress: s.walletAddress,
      powerW: sensorState.state === 'ok' && latest ? latest.powerW : null,
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
        lastRejection: watched.lastRejection,
        skipped: this.outbox.stats().skipped,
        ...(s.transport === 'w3bstream-v2' ? { lastTaskId: pub.lastTaskId } : {}),
        ...(watched.task === undefined ? {} : { task: watched.task }),
      },
      rewardBalance: watched.rewardBalance,
      ioid: watched.ioid,
      signing:
        key.source === 'file'
          ? undefined
          : {
              key: 'pkcs11',
              state: key.state,
              reason: key.reason,
              unsigned: held.key + (key.state === 'ok' ? 0 : this.signing.waiting),
              pinAttempts: key.pinAttempts,
              sinceMs: key.sinceMs,
            },
      sensor: {
        state: sensorState.state,
        reason: sensorState.reason,
        busV: latest?.busV ?? null,
        currentA: latest?.currentA ?? null,
        chip: CHIPS[sensorChip(s)].name,
        simulated: s.sensor === 'sim',
        calibrationId: this.calibrationId,
      },
    });
    notifyObservers(this.observers, (o) => o.onState?.(state), this.opts.log);
    this.writer.write(state, legacyStatusOf(pub.lastAttemptOk));
    this.stateWrites.written(state.powerW);
  }

  /** Bytes written to the data directory so far (state files only). */
  get bytesWritten(): number {
    return this.writer.bytesWritten;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.watchers.stop();
    await this.sensor.stopSampling();
    await this.signing.stop();
    await this.publisher.stop();
    // The last state (with the totals of the final sync) goes out before the files leave RAM.
    this.cardSync.sync();
    await this.stateWrites.settled();
    this.stopped = true;
    await this.sensor.close();
    this.outbox.close();
    await this.identity.close();
    // A stopped meter leaves real files in the data directory, and nothing in RAM.
    const s = this.opts.settings;
    try {
      this.writer.materialize(s.dataDir);
      // The directory this program chose (not systemd's, not the user's) goes too, when empty.
      removeOwnRuntimeDir(s, this.runtimeDir);
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
