import type { Logger } from '@power-meter/service';

/**
 * The libraries (sampler, driver, publisher) log through one `(line) => void` callback; their
 * lines that report trouble start with a fixed word, which this maps to a journald priority so
 * `journalctl -p warning` shows them. Everything else is info.
 */
const WARNING = [
  /^publish state=(retrying|failing)\b/,
  /^rejected seq=/,
  /^sensor fault:/,
  /^INA219 .* lost its configuration/,
  /^window incomplete/,
  /^publisher \S+ listener failed/,
];
const ERROR = [/^sampler stopped:/];
const NOTICE = [/^publish state=ok\b/, /^INA219 answers again/, /^INA219 shunt range stepped/];

export function levelOf(line: string): 'error' | 'warning' | 'notice' | 'info' {
  if (ERROR.some((r) => r.test(line))) return 'error';
  if (WARNING.some((r) => r.test(line))) return 'warning';
  if (NOTICE.some((r) => r.test(line))) return 'notice';
  return 'info';
}

export function libraryLog(logger: Logger): (line: string) => void {
  return (line) => logger[levelOf(line)](line);
}
