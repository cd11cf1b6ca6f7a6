#!/usr/bin/env node
/**
 * `applet-host up`: a W3bstream project on this machine.
 *
 * - `up --project <file>`: any project in the node's configuration shapes (applets, database,
 *   env, strategies, chains, operators, monitors, cron jobs); chains whose endpoint is `anvil`
 *   are started here.
 * - `up` alone: this project's own: a local chain, this project's contracts, the energy-meter
 *   applet from projects/energy-meter.json, the devices given registered and bound, and the
 *   owner's balance printed.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { ensureArtifacts } from './artifacts.js';
import { type LocalChain, startLocalChain } from './chain/anvil.js';
import type { Address } from './chain/contracts.js';
import { DEFAULT_PER_READING_REWARD_TIERS, type PerReadingRewardTier, startLocalDepin } from './depin.js';
import { AppletHost } from './host.js';
import { ProjectConfigError } from './project/config.js';
import { localChainIds, missingWasmFiles, readProjectFile, resolveProject } from './project/file.js';

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

function address(value: string): Address {
  if (!ADDRESS.test(value))
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not an address (0x + 40 hex; power-meter identity prints the device's)`);
  return value as Address;
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

function integer(min: number, max: number, what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${JSON.stringify(value)} is not ${what} (${min}-${max})`);
    return n;
  };
}

interface UpOptions {
  project?: string;
  port: number;
  dataDir?: string;
  timeoutMs: number;
  vmThreads: number;
  monitorInterval: number;
  device?: Address[];
  owner?: Address;
  tiers: PerReadingRewardTier[];
  signatureCheck: 'secp256k1' | 'off';
}

const program = new Command('applet-host')
  .description(
    'A local W3bstream v1 project (development tool): applets on the node’s host ABI, Postgres semantics, monitors, cron, a local chain',
  )
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

program
  .command('up')
  .description('start everything and run until Ctrl-C')
  .option(
    '--project <file>',
    'a project file (JSON, the node’s configuration shapes); without it: this project’s energy-meter applet and contracts',
  )
  .option('--port <n>', 'event route port on 127.0.0.1 (0 = any free port)', integer(0, 65535, 'a port'), 8888)
  .option('--data-dir <dir>', 'keep the project database in this directory (default: in memory, gone at exit)')
  .option(
    '--timeout-ms <ms>',
    'answer `wait timeout` and stop a handler after this long (the node: 5000)',
    integer(100, 600_000, 'milliseconds'),
    5000,
  )
  .option('--vm-threads <n>', 'VM threads kept ready per applet; more start while all are busy', integer(1, 64, 'a thread count'), 4)
  .option('--monitor-interval <ms>', 'chain monitors’ round interval (the node: 3000)', integer(100, 600_000, 'milliseconds'), 3000)
  .option(
    '--device <address...>',
    'energy-meter project: device address(es) to register and bind to the owner (power-meter identity)',
    (v: string, prev: Address[] = []) => [...prev, address(v)],
  )
  .option('--owner <address>', "energy-meter project: owner wallet that receives the rewards (default: the chain's third account)", address)
  .option('--tiers <json>', 'energy-meter project: reward tiers, whole tokens per reading', tiers, DEFAULT_PER_READING_REWARD_TIERS)
  .addOption(
    new Option(
      '--signature-check <mode>',
      'energy-meter project: check each reading’s signature against the registered address (secp256k1 devices only)',
    )
      .choices(['secp256k1', 'off'])
      .default('secp256k1'),
  )
  .action(async (o: UpOptions) => {
    const token = process.env.W3BSTREAM_PUBLISHER_TOKEN ?? '';
    if (token === '') {
      console.error(
        'W3BSTREAM_PUBLISHER_TOKEN is not set: set it to the token the meter uses (any string for this local project), e.g. in both shells',
      );
      process.exit(2);
    }
    if (o.project) await upProject(o, o.project, token);
    else await upEnergyMeter(o, token);
  });

const hostOptions = (o: UpOptions) => ({
  port: o.port,
  dataDir: o.dataDir,
  timeoutMs: o.timeoutMs,
  vmThreads: o.vmThreads,
  chainPollMs: o.monitorInterval,
  watchChain: true,
  log: (line: string) => console.log(line),
});

async function upProject(o: UpOptions, path: string, token: string): Promise<void> {
  if (o.device || o.owner) {
    console.error('--device and --owner register devices on this project’s own contracts: use them without --project');
    process.exit(2);
  }
  let file: ReturnType<typeof readProjectFile>;
  try {
    file = readProjectFile(path);
    resolveProject(file, { publisherToken: token, localEndpoints: new Map(localChainIds(file).map((id) => [id, 'http://127.0.0.1:1'])) });
    const missing = missingWasmFiles(file);
    if (missing) throw new ProjectConfigError(missing);
  } catch (err) {
    if (!(err instanceof ProjectConfigError)) throw err;
    console.error(`${err.message}: fix the project file`);
    process.exit(2);
  }
  const chains: LocalChain[] = [];
  const stopChains = () => Promise.all(chains.map((c) => c.stop()));
  let host: AppletHost;
  try {
    for (const id of localChainIds(file)) chains.push(await startLocalChain({ chainId: id }));
    const project = resolveProject(file, { publisherToken: token, localEndpoints: new Map(chains.map((c) => [c.chainId, c.rpcUrl])) });
    host = await AppletHost.start(project, hostOptions(o));
  } catch (err) {
    await stopChains();
    console.error(`applet-host: ${(err as Error).message}`);
    process.exit(1);
  }
  for (const c of chains) console.log(`chain ${c.chainId} at ${c.rpcUrl} (unlocked accounts: ${c.accounts.join(', ')})`);
  console.log(`project ${host.project.name}: applets ${host.project.applets.map((a) => a.appletName).join(', ')}`);
  console.log(`publish URL ${host.url} (token: W3BSTREAM_PUBLISHER_TOKEN)`);
  const stop = (): void => {
    void host
      .close()
      .then(stopChains)
      .then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

async function upEnergyMeter(o: UpOptions, token: string): Promise<void> {
  ensureArtifacts();
  const depin = await startLocalDepin({
    publisherToken: token,
    ...hostOptions(o),
    tiers: o.tiers,
    signatureCheck: o.signatureCheck,
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
}

await program.parseAsync(process.argv);
