/**
 * Exit statuses of both programs, in one place because systemd acts on them: the units list the
 * statuses a restart cannot fix in `RestartPreventExitStatus=`, so systemd stops and
 * `systemctl status` shows the message instead of restarting in a loop.
 */
export const EXIT = {
  /** Clean stop (SIGTERM, SIGINT). */
  ok: 0,
  /** Anything unexpected, or a component that stopped for good: systemd restarts the program. */
  failure: 1,
  /**
   * An invalid setting (the message names it), or hardware that contradicts a setting (a chip
   * whose ID registers name another chip than `--sensor`): a restart cannot fix either.
   */
  badSettings: 2,
  /** Stored data that cannot be used as is (corrupt outbox, unusable key): a restart cannot fix it. */
  corruptData: 3,
} as const;
