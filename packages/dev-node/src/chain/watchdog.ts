/**
 * Runs a command (the local chain) for as long as the process that started this watchdog lives.
 * The parent holds this process's stdin: when the parent exits, however it dies (kill -9
 * included), the pipe closes, stdin ends, and the command is stopped (SIGTERM, then SIGKILL).
 * Usage: node watchdog.js <command> [args…]; the command's output is passed through.
 */
import { spawn } from 'node:child_process';

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write('watchdog: no command\n');
  process.exit(2);
}
const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  child.kill('SIGTERM');
  setTimeout(() => child.kill('SIGKILL'), 3_000).unref();
};
child.once('exit', (code, signal) => process.exit(stopping ? 0 : (code ?? (signal ? 1 : 0))));
child.once('error', (err) => {
  process.stderr.write(`watchdog: ${err.message}\n`);
  process.exit(1);
});
process.stdin.on('data', () => undefined);
process.stdin.once('end', stop);
process.stdin.once('close', stop);
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
