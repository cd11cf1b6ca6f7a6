import type { HourlyRewardTier } from './settings.js';

/** Reward rate for a window's average power: the first tier whose bound is above it, else 0. */
export function tokensPerH(avgPowerW: number, tiers: readonly HourlyRewardTier[]): number {
  for (const t of tiers) if (avgPowerW < t.belowW) return t.tokensPerH;
  return 0;
}

/** Rewards accrued over a window: rate x duration. Never negative. */
export function rewardsForWindow(avgPowerW: number, durationMs: number, tiers: readonly HourlyRewardTier[]): number {
  return (tokensPerH(avgPowerW, tiers) * Math.max(0, durationMs)) / 3_600_000;
}
