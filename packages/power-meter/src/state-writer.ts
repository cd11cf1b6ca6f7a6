import {
  FILES,
  STATE_SCHEMA,
  legacyFileContents,
  writeFileAtomicSync,
  type LegacyStatus,
  type MeterState,
  type RewardTier,
} from '@power-meter/meter-files';

/**
 * Writes the data directory the display and legacy scripts read: `state.json` plus the
 * original firmware's eight files, each replaced atomically. Files whose content did not change
 * are not rewritten (SD-card wear, docs/design.md complaint 4); bytes written are counted so the
 * daily write volume can be reported.
 */
export class StateWriter {
  private lastContent = new Map<string, string>();
  bytesWritten = 0;
  writes = 0;

  constructor(private readonly dataDir: string) {}

  write(state: MeterState, lastStatus: LegacyStatus | null): void {
    const files: Array<[string, string]> = [[FILES.state, `${JSON.stringify(state)}\n`]];
    const legacy = legacyFileContents(state, lastStatus);
    for (const [name, content] of Object.entries(legacy)) files.push([name, content]);
    for (const [name, content] of files) {
      if (this.lastContent.get(name) === content) continue;
      writeFileAtomicSync(this.dataDir, name, content);
      this.lastContent.set(name, content);
      this.bytesWritten += Buffer.byteLength(content);
      this.writes++;
    }
  }
}

/** What the backend knows; buildState adds the schema and the time stamps and rounds. */
export type StateParts = Omit<MeterState, 'schema' | 'updatedAtMs' | 'updatedAt' | 'rewards'> & {
  nowMs: number;
  /** The backend always writes the configured tiers (optional only for readers of older files). */
  rewards: { tokensPerH: number; total: number; tiers: readonly RewardTier[] };
};

/** Pure: the state.json object from its parts (rounded so the file stays small and stable). */
export function buildState(p: StateParts): MeterState {
  const r = (x: number, digits: number): number => Number(x.toFixed(digits));
  return {
    schema: STATE_SCHEMA,
    updatedAtMs: Math.round(p.nowMs),
    updatedAt: new Date(p.nowMs).toISOString(),
    deviceId: p.deviceId,
    walletAddress: p.walletAddress,
    powerW: p.powerW === null ? null : r(p.powerW, 4),
    lastWindow: p.lastWindow,
    recentAvgPowerW: p.recentAvgPowerW.map((x) => r(x, 3)),
    windowS: p.windowS,
    energyTotalWh: r(p.energyTotalWh, 6),
    rewards: {
      tokensPerH: p.rewards.tokensPerH,
      total: r(p.rewards.total, 6),
      tiers: p.rewards.tiers.map((t) => ({ belowW: t.belowW, tokensPerH: t.tokensPerH })),
    },
    publishing: p.publishing,
    ...(p.rewardBalance === undefined ? {} : { rewardBalance: { ...p.rewardBalance } }),
    sensor: {
      state: p.sensor.state,
      reason: p.sensor.reason,
      busV: p.sensor.busV === null ? null : r(p.sensor.busV, 3),
      currentA: p.sensor.currentA === null ? null : r(p.sensor.currentA, 5),
    },
  };
}
