import { STATE_SCHEMA, type MeterState, type RewardBalance, type IoIdStatus } from './schema.js';

/**
 * A complete, valid state for tests, demos and screenshots. Fields can be overridden; nested
 * objects are replaced whole, so pass complete `publishing`/`sensor` objects when overriding them.
 */
export function exampleState(overrides: Partial<MeterState> = {}): MeterState {
  const updatedAtMs = overrides.updatedAtMs ?? 1_764_000_000_000;
  return {
    schema: STATE_SCHEMA,
    updatedAtMs,
    updatedAt: new Date(updatedAtMs).toISOString(),
    deviceId: '0x5c0ffee0000000000000000000000000000000aa',
    walletAddress: '',
    powerW: 4.02,
    lastWindow: {
      avgPowerW: 3.98,
      energyWh: (3.98 * 5) / 3600,
      minPowerW: 3.9,
      maxPowerW: 4.05,
      startMs: updatedAtMs - 5000,
      endMs: updatedAtMs,
      samples: 36,
      observedFraction: 0.99,
      complete: true,
      busV: 11.9,
      currentA: 0.334,
    },
    recentAvgPowerW: [0, 4, 4, 8, 8, 12, 8, 4, 4, 3.98],
    windowS: 5,
    energyTotalWh: 12.5,
    rewards: {
      tokensPerH: 4,
      total: 1.25,
      tiers: [
        { belowW: 3, tokensPerH: 10 },
        { belowW: 5, tokensPerH: 4 },
      ],
    },
    publishing: { state: 'ok', reason: null, waiting: 0, dropped: 0, lastSuccessMs: updatedAtMs, held: 0 },
    sensor: { state: 'ok', reason: null, busV: 11.9, currentA: 0.338 },
    ...overrides,
  };
}

/** A valid `rewardBalance` (40 tokens of 18 decimals, read at 1_764_000_000_000, every minute). */
export function exampleRewardBalance(overrides: Partial<RewardBalance> = {}): RewardBalance {
  return {
    token: `0x${'ab'.repeat(20)}`,
    owner: `0x${'cd'.repeat(20)}`,
    raw: '40000000000000000000',
    decimals: 18,
    tokens: '40',
    readAtMs: 1_764_000_000_000,
    intervalMs: 60_000,
    error: null,
    ...overrides,
  };
}

/** A valid `ioid` status: registered as ioID 1 for project 42, read at 1_764_000_000_000, every minute. */
export function exampleIoIdStatus(overrides: Partial<IoIdStatus> = {}): IoIdStatus {
  return {
    registry: `0x${'12'.repeat(20)}`,
    ioIdContract: `0x${'34'.repeat(20)}`,
    device: '0x5c0ffee0000000000000000000000000000000aa',
    did: 'did:io:0x5c0ffee0000000000000000000000000000000aa',
    registered: true,
    ioId: '1',
    owner: `0x${'cd'.repeat(20)}`,
    projectId: '42',
    readAtMs: 1_764_000_000_000,
    intervalMs: 60_000,
    error: null,
    ...overrides,
  };
}
