import { Command } from 'commander';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type * as DevNodeReceiverModule from '@power-meter/dev-node/receiver';
import {
  DEV_NODE_MISSING,
  addDevReceiverCommand,
  isDevNodeMissing,
  loadDevNodeReceiver,
  type DevNodeReceiver,
} from '../src/dev-receiver.js';

/** A fail() that stops the parse the way process.exit would, and says how. */
class Failed extends Error {
  constructor(
    message: string,
    readonly code: number | undefined,
  ) {
    super(message);
  }
}
const io = {
  log: (_line: string): void => {},
  fail: (message: string, code?: number): never => {
    throw new Failed(message, code);
  },
};

describe('power-meter dev-receiver: the development package, loaded only when the subcommand runs', () => {
  it('the package offers what the backend uses of it, and defines the options on the command the backend names', async () => {
    // A type error here fails `npm run typecheck`: the backend's copy of the seam drifted from the package.
    expectTypeOf<typeof DevNodeReceiverModule>().toExtend<DevNodeReceiver>();
    const dev = await loadDevNodeReceiver();
    expect(dev).not.toBeNull();
    const cmd = dev!.defineDevReceiverCommand(new Command('dev-receiver'), {
      ...io,
      chainApprovals: async () => ({ isApproved: () => true }),
    });
    const flags = cmd.options.map((o) => o.long);
    expect(flags).toEqual(expect.arrayContaining(['--port', '--transport', '--answer', '--ioid-contract', '--approve', '--task-step']));
  });

  it('a package that is not installed is null, not a crash; any other failure is thrown', async () => {
    expect(await loadDevNodeReceiver('@power-meter/not-installed/receiver')).toBeNull();
    const missingDependency = Object.assign(
      new Error("Cannot find package 'commander' imported from /opt/x/packages/dev-node/dist/receiver/command.js"),
      {
        code: 'ERR_MODULE_NOT_FOUND',
      },
    );
    expect(isDevNodeMissing(missingDependency)).toBe(true);
    const elsewhere = Object.assign(new Error("Cannot find package 'mqtt' imported from /opt/x/packages/power-meter/dist/mqtt/output.js"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    expect(isDevNodeMissing(elsewhere)).toBe(false);
    expect(isDevNodeMissing(new SyntaxError('Unexpected token'))).toBe(false);
  });

  it('without the package the subcommand says what to do (exit 1); the other subcommands never load it', async () => {
    let loads = 0;
    const program = new Command('power-meter').exitOverride();
    let ran = false;
    program.command('other').action(() => {
      ran = true;
    });
    addDevReceiverCommand(program, io, async () => {
      loads += 1;
      return null;
    });
    await program.parseAsync(['other'], { from: 'user' });
    expect(ran).toBe(true);
    expect(loads).toBe(0);
    const err = await program.parseAsync(['dev-receiver', '--port', '0'], { from: 'user' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Failed);
    expect((err as Failed).message).toBe(DEV_NODE_MISSING);
    expect((err as Failed).code).toBeUndefined(); // the program's default: exit status 1
    expect(loads).toBe(1);
    expect(DEV_NODE_MISSING).toMatch(/development package.*not have.*install-requirements/);
  });
});
