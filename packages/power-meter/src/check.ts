/**
 * One `power-meter doctor` check: what it found and, when something is wrong, how to fix it. Its
 * own module so that the checks kept beside what they check (chain/check.ts, mqtt/check.ts) and
 * doctor.ts, which runs them all, import it without importing each other.
 */
export interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  fix?: string;
}
