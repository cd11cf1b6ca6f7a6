#!/usr/bin/env node
/**
 * `applet-host up`: your own W3bstream project on this machine. Starts a local chain, deploys
 * this project's contracts, runs the energy-meter applet behind the node's event route, registers
 * and binds the devices given, and prints one line per event and the owner's balance.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Address } from './chain/contracts.js';
import { DEFAULT_PER_READING_REWARD_TIERS, type PerReadingRewardTier, startLocalDepin } from './depin.js';

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

function address(value: string): Address {
  if (!ADDRESS.test(value))
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not an address (0x + 40 hex; power-meter identity prints the device's)`);
  return value as Address;
}

interface DemoOptions {
  port: number;
  device?: Address[];
  owner?: Address;
  tiers: PerReadingRewardTier[];
  signatureCheck: 'secp256k1' | 'off';
}

function tiers(value: string): PerReadingRewardTier[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not JSON; e.g. [{"belowW":3,"tokens":10},{"belowW":5,"tokens":4}]`);
  }
  const ok = Array.isArray(parsed) && parsed.every((t) => typeof t?.belowW === 'number' && Number.isInteger(t?.tokens) && t.tokens >= 0);
  if (!ok) throw new InvalidArgumentError(`${JSON.stringify(value)}: a JSON array of {"belowW": watts, "tokens": whole tokens >= 0}`);
  return parsed as PerReadingRewardTier[];
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a port (0-65535)`);
  return n;
}

const program = new Command('applet-host')
  .description('A local W3bstream v1 project (development tool): chain, contracts, and the energy-meter applet behind the event route')
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

program
  .command('up')
  .description('start everything and run until Ctrl-C')
  .option('--port <n>', 'event route port on 127.0.0.1 (0 = any free port)', port, 8888)
  .option(
    '--device <address...>',
    'device address(es) to register and bind to the owner (power-meter identity)',
    (v: string, prev: Address[] = []) => [...prev, address(v)],
  )
  .option('--owner <address>', "owner wallet that receives the rewards (default: the chain's third account)", address)
  .option('--tiers <json>', 'reward tiers, whole tokens per reading', tiers, DEFAULT_PER_READING_REWARD_TIERS)
  .addOption(
    new Option('--signature-check <mode>', 'check each reading’s signature against the registered address (secp256k1 devices only)')
      .choices(['secp256k1', 'off'])
      .default('secp256k1'),
  )
  .action(async (o: DemoOptions) => {
    const token = process.env.W3BSTREAM_PUBLISHER_TOKEN ?? '';
    if (token === '') {
      console.error(
        'W3BSTREAM_PUBLISHER_TOKEN is not set: set it to the token the meter uses (any string for this local project), e.g. in both shells',
      );
      process.exit(2);
    }
    const depin = await startLocalDepin({
      publisherToken: token,
      port: o.port,
      tiers: o.tiers,
      signatureCheck: o.signatureCheck,
      log: (line) => console.log(line),
    });
    const owner = o.owner ?? depin.owner;
    for (const d of o.device ?? []) await depin.registerAndBind(d, owner);
    console.log(`chain ${depin.chain.chainId} at ${depin.chain.rpcUrl}`);
    console.log(`contracts: ${JSON.stringify(depin.rewards.contracts)}`);
    console.log(`owner ${owner}, devices ${(o.device ?? []).join(', ') || '(none: pass --device)'}`);
    console.log(`publish URL ${depin.host.url} (token: W3BSTREAM_PUBLISHER_TOKEN)`);
    let last = -1n;
    const timer = setInterval(() => {
      void depin.rewards.balanceOf(owner).then((b) => {
        if (b !== last) console.log(`owner balance ${b / 10n ** 18n} ECO`);
        last = b;
      });
    }, 2_000);
    const stop = (): void => {
      clearInterval(timer);
      void depin.close().then(() => process.exit(0));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

await program.parseAsync(process.argv);
