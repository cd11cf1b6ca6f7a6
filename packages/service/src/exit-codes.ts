/**
 * Exit statuses of both programs, in one place because systemd acts on them: the units list the
 * statuses a restart cannot fix in `RestartPreventExitStatus=` (`NO_RESTART_STATUSES`), so systemd
 * stops and `systemctl status` shows the message instead of restarting in a loop. The README's
 * table of exit statuses is this table (a test compares them, and the units' lines with it).
 */
export const EXIT = {
  /** Clean stop (SIGTERM, SIGINT). */
  ok: 0,
  /** Anything unexpected, or a component that stopped for good: systemd restarts the program. */
  failure: 1,
  /**
   * An invalid setting (the message names it), or hardware that contradicts a setting (a chip
   * whose ID registers name another chip than `--sensor`; a key token the settings name that
   * cannot be used at a start that has never seen its key: not found, PIN refused, no key under
   * the URI, no secp256k1): a restart cannot fix either. (A token that fails once its key is known
   * is a fault the meter measures through, not an exit.)
   */
  badSettings: 2,
  /** Stored data that cannot be used as is (a damaged outbox, a damaged or exposed key): a restart cannot fix it. */
  corruptData: 3,
  /** The data directory cannot be used (not a directory, missing parent, read-only, no permission): a restart cannot fix it. */
  dataDirUnusable: 4,
} as const;

export type ExitStatus = (typeof EXIT)[keyof typeof EXIT];

export interface ExitStatusInfo {
  status: ExitStatus;
  /** Whether systemd restarts the program after it (`Restart=on-failure`, not in `RestartPreventExitStatus=`). */
  restarted: boolean;
  /** What it means, as the README's table says it. */
  meaning: string;
}

/** The README's exit-status table, row by row. */
export const EXIT_STATUSES: readonly ExitStatusInfo[] = [
  { status: EXIT.ok, restarted: false, meaning: 'stopped (SIGTERM, SIGINT)' },
  {
    status: EXIT.failure,
    restarted: true,
    meaning: 'anything unexpected, or a part that stopped for good: systemd restarts the program',
  },
  {
    status: EXIT.badSettings,
    restarted: false,
    meaning:
      'an invalid setting (the message names it, the value and what is allowed), a chip that is not the one `--sensor` names (the message names the chip that answered), or a key token (`--key-uri`) that cannot be used at a first start (the message says why: not found, PIN refused, no key, no secp256k1)',
  },
  {
    status: EXIT.corruptData,
    restarted: false,
    meaning:
      'stored data that cannot be used as it is: a damaged outbox (`power-meter outbox salvage`), a damaged device key or one other users can read, an unreadable sequence floor',
  },
  {
    status: EXIT.dataDirUnusable,
    restarted: false,
    meaning:
      'the data directory cannot be used: it is a file, its parent is missing, the file system is read-only, or the user running the program may not write it (a full one is status 1: it may pass)',
  },
];

/** The statuses the units list in `RestartPreventExitStatus=`. */
export const NO_RESTART_STATUSES: readonly number[] = EXIT_STATUSES.filter((s) => !s.restarted && s.status !== EXIT.ok).map(
  (s) => s.status,
);
