import type { Command } from 'commander';
import type { DeviceApprovals } from '@power-meter/w3bstream';

/**
 * `power-meter dev-receiver`: a local stand-in for a W3bstream node. Its options, checks and
 * servers are in the development package (`packages/dev-node`), which is not a dependency of the
 * backend: a Pi (install.sh, a runtime-only set-up) never gets it. So the package is imported by
 * name, only when this subcommand runs (or shows its help), and its absence is a message with
 * exit status 1, not a crash; the daemon and the other subcommands never load it.
 */
export const DEV_NODE_RECEIVER = '@power-meter/dev-node/receiver';

/**
 * What the backend uses of the development package. Written here because the backend's build must
 * not need that package; test/dev-receiver.test.ts holds it to the package's own types (npm run
 * typecheck) and loads the real module.
 */
export interface DevNodeReceiver {
  // A property, not a method: its parameters are then checked strictly (a method's would be bivariant).
  defineDevReceiverCommand: (
    cmd: Command,
    io: {
      log(line: string): void;
      fail(message: string, code?: number): never;
      chainApprovals(options: {
        rpcUrl: string;
        ioIdContract: string;
        fromBlock: number;
        log: (line: string) => void;
      }): Promise<DeviceApprovals>;
    },
  ) => Command;
}

export const DEV_NODE_MISSING =
  'dev-receiver is a development tool: it comes with the development package (@power-meter/dev-node), which this installation does not have (an installed meter and the runtime set-up have the programs only). Run it from a checkout with the full set-up: ./install-requirements.sh --full';

/** Whether an import failed because the development package, or a module it needs, is not installed or not built. */
export function isDevNodeMissing(err: unknown, specifier: string = DEV_NODE_RECEIVER): boolean {
  const e = err as { code?: string; message?: string } | null;
  if (e?.code !== 'ERR_MODULE_NOT_FOUND') return false;
  const pkg = specifier.split('/').slice(0, 2).join('/'); // @scope/name
  const message = e.message ?? '';
  return message.includes(`'${pkg}'`) || message.includes(`/${pkg.split('/')[1]}/`);
}

/** The dev receivers, or null when this installation has no (built) development package. */
export async function loadDevNodeReceiver(specifier: string = DEV_NODE_RECEIVER): Promise<DevNodeReceiver | null> {
  try {
    return (await import(specifier)) as DevNodeReceiver;
  } catch (err) {
    if (isDevNodeMissing(err, specifier)) return null;
    throw err;
  }
}

/**
 * Names the subcommand in `program` and, when it is the one that runs, loads the development
 * package and lets it define the options and the action. `chainApprovals` (`--ioid-contract`)
 * is the backend's: it follows the ioID contract with the backend's own chain reader.
 */
export function addDevReceiverCommand(
  program: Command,
  io: { log(line: string): void; fail(message: string, code?: number): never },
  load: () => Promise<DevNodeReceiver | null> = () => loadDevNodeReceiver(),
): Command {
  const cmd = program
    .command('dev-receiver')
    .description('local stand-in for a W3bstream node, for development and tests (verifies every message)');
  // `power-meter help dev-receiver` shows the help without running the subcommand: its options are not defined then.
  cmd.addHelpText('after', () =>
    cmd.options.length === 0 ? '\nIts options come with the development package: power-meter dev-receiver --help' : '',
  );
  program.hook('preSubcommand', async (_program, sub) => {
    if (sub !== cmd) return;
    const dev = await load();
    if (dev === null) return io.fail(DEV_NODE_MISSING);
    dev.defineDevReceiverCommand(cmd, {
      ...io,
      chainApprovals: async (options) => (await import('./chain/ioid-approvals.js')).startChainApprovals(options),
    });
  });
  return cmd;
}
