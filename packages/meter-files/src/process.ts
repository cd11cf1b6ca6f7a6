/**
 * Whether a process with this id exists. Used to tell a temporary file of a writer that is still
 * at work from the leftover of one that was killed: EPERM means it exists but belongs to another
 * user, which still counts as alive (its file must not be touched).
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
