/**
 * The one way the tests wait for a condition: `cond` is checked every `everyMs` until it holds,
 * and the test fails naming `what` once `timeoutMs` has passed. The deadline is generous on
 * purpose (a loaded two-core machine must pass); a fixed sleep standing in for "ready" is not
 * used anywhere. Checks that run a command (in a container) pass a larger `everyMs`.
 *
 * No side effects on import, so any test (a package's unit tests too) can use it.
 */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 15_000, what = 'condition', everyMs = 25): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
