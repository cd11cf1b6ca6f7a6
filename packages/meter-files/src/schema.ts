/**
 * The data-directory contract shared by `power-meter` (writer) and `power-meter-display`
 * (reader). docs/design.md "The data directory" is the specification; this file is its single
 * source of truth in code. Change the schema only by bumping STATE_SCHEMA.
 */

/** Version of `state.json`. A reader refuses any other version instead of guessing. */
export const STATE_SCHEMA = 1;

/** File names inside the data directory. */
export const FILES = {
  state: 'state.json',
  // The original firmware's plain-text files (docs/w3bstream.md section 8), same names and meaning.
  currentPower: 'current_power_usage',
  avgPower: 'avg_power_usage',
  tokensPerH: 'tokens_per_h',
  totalRewards: 'total_rewards',
  lastIntervalTime: 'last_interval_time',
  deviceId: 'device_id',
  walletAddress: 'wallet_address',
  status: 'status',
} as const;

/** The eight legacy file names, in the order of docs/w3bstream.md section 8. */
export const LEGACY_FILES = [
  FILES.currentPower,
  FILES.avgPower,
  FILES.tokensPerH,
  FILES.totalRewards,
  FILES.lastIntervalTime,
  FILES.deviceId,
  FILES.walletAddress,
  FILES.status,
] as const;

/**
 * One row of the meter's reward table: windows averaging below `belowW` earn at `tokensPerH`
 * (a rate, for the local estimate and the screen's colours). Not the applet's per-reading table
 * (dev-node's PerReadingRewardTier, whole tokens per reading).
 */
export interface HourlyRewardTier {
  belowW: number;
  tokensPerH: number;
}

/**
 * The original firmware's table (docs/w3bstream.md section 6): < 3 W -> 10/h, < 5 W -> 4/h,
 * else 0. The backend's default, and what a reader assumes when `rewards.tiers` is absent
 * (a state.json from before the field existed).
 */
export const DEFAULT_HOURLY_REWARD_TIERS: readonly HourlyRewardTier[] = [
  { belowW: 3, tokensPerH: 10 },
  { belowW: 5, tokensPerH: 4 },
];

export type PublishingStateName = 'disabled' | 'ok' | 'retrying' | 'failing';
export type SensorStateName = 'ok' | 'fault';

/** The last completed averaging window. Times are Unix milliseconds (wall clock). */
export interface WindowSummary {
  avgPowerW: number;
  energyWh: number;
  minPowerW: number;
  maxPowerW: number;
  startMs: number;
  endMs: number;
  samples: number;
  /** Fraction (0..1) of the window covered by ADC conversions. */
  observedFraction: number;
  /** False when the sensor failed during the window: the figures cover less than the window. */
  complete: boolean;
  /**
   * Mean bus voltage (V) and current (A) over the observed parts of the window; null when the
   * chip gave none. Optional in schema 1 (added with it): older writers omit them.
   */
  busV?: number | null;
  currentA?: number | null;
}

/** ERC-20 `balanceOf(owner)` of the reward token, with the time it was read. */
export interface RewardBalance {
  /** Token contract, `0x` + 40 lowercase hex. */
  token: string;
  /** Whose balance: the configured wallet, lowercase. */
  owner: string;
  /** Base units as decimal integer text (a uint256 does not fit a JSON number); null before the first read. */
  raw: string | null;
  decimals: number | null;
  /** `raw` in whole tokens, exact decimal text (`"40"`, `"1.25"`); null before the first read. */
  tokens: string | null;
  /** When `raw` was read, Unix ms (wall clock); null before the first read. */
  readAtMs: number | null;
  /** How often the backend reads it, ms. */
  intervalMs: number;
  /** Why the last attempt failed; null when it succeeded. The figure above is then older. */
  error: string | null;
}

/** The signing key in a PKCS#11 token, as state.json carries it. */
export interface SigningState {
  key: 'pkcs11';
  /** `fault`: the token is gone, refuses or is not answering; readings are measured and kept unsigned. */
  state: 'ok' | 'fault';
  /** Short words for the screen ("wrong PIN (not retried)", "token gone or failing"); null when ok. */
  reason: string | null;
  /** Readings measured and kept unsigned until the key is back (in order; signed then). */
  unsigned: number;
  /** Logins with the configured PIN that the token refused (the meter stops after the first). */
  pinAttempts: number;
  /** Since when the fault lasts, Unix ms; null when ok. */
  sinceMs: number | null;
}

/**
 * The device's ioID registration as read from the chain (`--rpc-url`, `--ioid-registry`): the
 * W3bstream node takes readings only from a device registered through ioID for the task's
 * project. Addresses are `0x` + 40 lowercase hex; big integers are decimal text.
 */
export interface IoIdStatus {
  /** The ioIDRegistry contract asked. */
  registry: string;
  /** The ioID NFT contract (the registry's `ioID()`); null before the first read. */
  ioIdContract: string | null;
  /** This device's address and DID (`did:io:` + the address). */
  device: string;
  did: string;
  /** null before the first successful read. */
  registered: boolean | null;
  /** The ioID token id when registered, else null. */
  ioId: string | null;
  /** The ioID token's owner when registered, else null. */
  owner: string | null;
  /** The ioID project (`deviceProject`) when registered, else null. */
  projectId: string | null;
  /** When the figures above were read, Unix ms; null before the first read. */
  readAtMs: number | null;
  intervalMs: number;
  /** Why the last attempt failed; null when it succeeded. */
  error: string | null;
}

export interface MeterState {
  schema: typeof STATE_SCHEMA;
  /** Wall-clock time of this update, Unix ms. */
  updatedAtMs: number;
  /** Same instant as ISO 8601, for people reading the file. */
  updatedAt: string;
  /** `0x` + 40 hex: the device address (keccak of the public key). */
  deviceId: string;
  /** Owner wallet, if configured; empty string otherwise. */
  walletAddress: string;
  /** Latest instantaneous power. `null` before the first reading or while the sensor is faulty. */
  powerW: number | null;
  lastWindow: WindowSummary | null;
  /** Average power of recent windows, oldest first, for the display's sparkline. */
  recentAvgPowerW: number[];
  /** Seconds per window (the spacing of `recentAvgPowerW`). */
  windowS: number;
  /** Energy measured since the meter was installed. Never decreases. */
  energyTotalWh: number;
  rewards: {
    /** Reward rate from the tier table for the last window's average power. */
    tokensPerH: number;
    /** Accrued rewards. Never decreases. */
    total: number;
    /**
     * The configured reward table, ascending `belowW`, so the display colours power by the
     * tiers that pay (schema 1 since this field was added; optional: older writers omit it and
     * readers then use DEFAULT_HOURLY_REWARD_TIERS).
     */
    tiers?: HourlyRewardTier[];
  };
  publishing: {
    state: PublishingStateName;
    /** Short human reason when retrying/failing (the node's error key where there is one). */
    reason: string | null;
    /** Signed readings stored and not yet delivered. */
    waiting: number;
    /** Readings dropped because the outbox was full (oldest first), since install. */
    dropped: number;
    /** Unix ms of the last successful delivery. */
    lastSuccessMs: number | null;
    /** Readings held because the system clock is not synchronised yet. */
    held: number;
    /**
     * Readings the applet refused (delivered, answered with a non-zero code: an unregistered
     * device, a bad signature), since the outbox was created. Optional: older writers omit it.
     */
    rejected?: number;
    /** The applet's reason when the latest delivered reading was refused; null once one is accepted. */
    lastRejection?: string | null;
    /**
     * Sequence numbers (eventIDs) skipped since the outbox was created: numbers no stored reading
     * carries, because readings were lost (the RAM copy in a power cut, a lost or older outbox)
     * together with the unused rest of the reserved block. A consumer seeing a gap in eventIDs
     * finds it counted here. Optional: older writers omit it.
     */
    skipped?: number;
    /**
     * W3bstream 2 only (absent with v1): the node's taskID for the last delivered reading: `0x` +
     * 64 hex, `""` while the node aggregates readings into a task, null before the first delivery.
     */
    lastTaskId?: string | null;
    /**
     * W3bstream 2 `/v1/task` only, once a task's state was read (`GET <node>/v1/task/<taskID>` at
     * the task poll interval): the newest delivered task the meter followed, its latest state
     * (`packed`, `assigned`, `settled`, `failed`; `error`: the node could not look it up;
     * `unknown`: the node lists no state), the settling transaction, the failure text, and how
     * many followed tasks failed since the meter started.
     */
    task?: {
      id: string;
      state: string;
      stateAtMs: number | null;
      txHash: string | null;
      error: string | null;
      checkedAtMs: number;
      failedCount: number;
    } | null;
  };
  /**
   * The owner's reward-token balance as read from the chain (`--rpc-url`, `--reward-token`,
   * `--wallet-address`); absent when not configured. Optional in schema 1 (added with it).
   */
  rewardBalance?: RewardBalance;
  /**
   * The signing key when it is in a PKCS#11 token (`--key-uri`); absent with the key file (which
   * cannot fail). Optional in schema 1 (added with it).
   */
  signing?: SigningState;
  /**
   * The device's ioID registration (`--rpc-url` with `--ioid-registry`); absent when not
   * configured. Optional in schema 1 (added with it).
   */
  ioid?: IoIdStatus;
  sensor: {
    state: SensorStateName;
    reason: string | null;
    busV: number | null;
    currentA: number | null;
    /**
     * The chip that measures ("INA219", "INA226", "INA260", "INA228"). Optional in schema 1
     * (added with it; older writers measured with an INA219 and omit it).
     */
    chip?: string;
    /** True when the chip is the emulator (`--sensor sim`). Optional, like `chip`. */
    simulated?: boolean;
    /**
     * The calibration applied to the figures (`power-meter calibrate`), e.g. "20260514-3f9a1c2e";
     * null when uncalibrated. Optional, like `chip`.
     */
    calibrationId?: string | null;
  };
}
