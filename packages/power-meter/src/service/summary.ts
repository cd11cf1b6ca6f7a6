import type { OutboxStats } from '@power-meter/w3bstream';

/** What the summary needs from the meter: the outbox counters (totals since the database was created). */
export interface SummarySource {
  outbox: { stats(): OutboxStats };
}

export const SUMMARY_EVERY_MS = 60_000;

/**
 * One line per minute while running, so `journalctl -f` shows a live meter rather than silence:
 * readings measured (signed and stored) and delivered in that minute, and how many wait. The same
 * text becomes the unit's status line (`systemctl status`).
 */
export function summaryLine(
  before: Pick<OutboxStats, 'appended' | 'delivered' | 'rejected' | 'waiting' | 'dropped'>,
  now: Pick<OutboxStats, 'appended' | 'delivered' | 'rejected' | 'waiting' | 'dropped'>,
  minutes: number,
): string {
  // Readings stored (signed) in that minute: not a difference of sequence numbers, which skip
  // after a power cut.
  const measured = now.appended - before.appended;
  const delivered = now.delivered + now.rejected - (before.delivered + before.rejected);
  return `summary last ${minutes === 1 ? 'minute' : `${minutes} minutes`}: measured ${measured}, delivered ${delivered}, waiting ${now.waiting}${now.dropped > before.dropped ? `, dropped ${now.dropped - before.dropped}` : ''}`;
}

export function startSummary(
  source: SummarySource,
  out: { log: (line: string) => void; status: (text: string) => void },
  everyMs = SUMMARY_EVERY_MS,
): NodeJS.Timeout {
  let before: OutboxStats | null = null;
  const tick = (): void => {
    let now: OutboxStats;
    try {
      now = source.outbox.stats();
    } catch {
      return; // the outbox failed: the publisher reports that, and the program exits
    }
    if (before !== null) {
      const line = summaryLine(before, now, Math.round(everyMs / 60_000) || 1);
      out.log(line);
      out.status(line.replace(/^summary /, ''));
    }
    before = now;
  };
  tick();
  const timer = setInterval(tick, everyMs);
  timer.unref();
  return timer;
}
