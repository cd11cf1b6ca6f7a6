import { FILES, type MeterState } from './schema.js';

/**
 * The original firmware's eight plain-text files (docs/w3bstream.md section 8), rendered from a state.
 * Pure: the caller decides when to write which. Numbers are plain decimals without units or a
 * trailing newline, as the original wrote them, so scripts that `cat` a file keep working.
 */
export function legacyFileContents(state: MeterState, lastStatus: LegacyStatus | null): Record<string, string> {
  return {
    [FILES.currentPower]: formatW(state.powerW ?? 0),
    [FILES.avgPower]: formatW(state.lastWindow?.avgPowerW ?? 0),
    // The firmware's tier table gives integer rates; configured tiers may not, so keep what it is.
    [FILES.tokensPerH]: formatNumber(state.rewards.tokensPerH),
    [FILES.totalRewards]: formatNumber(round(state.rewards.total, 6)),
    [FILES.lastIntervalTime]: state.lastWindow ? String(Math.floor(state.lastWindow.endMs / 1000)) : '0',
    [FILES.deviceId]: state.deviceId,
    [FILES.walletAddress]: state.walletAddress,
    [FILES.status]: lastStatus ?? '',
  };
}

/** The two words the original `status` file held after each publish attempt. */
export type LegacyStatus = 'Success' | 'Failed to publish';

/** The `status` file's wording for the last publish attempt (null: none yet, the file stays empty). */
export function legacyStatusOf(lastAttemptOk: boolean | null): LegacyStatus | null {
  return lastAttemptOk === null ? null : lastAttemptOk ? 'Success' : 'Failed to publish';
}

/** Watts with three decimals: 1 mW steps, below the INA219's finest power resolution. */
export function formatW(powerW: number): string {
  return powerW.toFixed(3);
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function formatNumber(value: number): string {
  return String(value);
}
