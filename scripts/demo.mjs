#!/usr/bin/env node
// `npm run demo`: the whole system in simulation, as real processes.
//   dev receiver  <-HTTP-  power-meter (simulated INA219, demo board)  -files->  power-meter-display (png panel)
// `npm run demo -- --chain`: the dev receiver is replaced by the tutorial's whole DePIN loop on this
// machine (packages/dev-node): a local chain (anvil) with this project's contracts, the device
// registered and bound to a demo owner, and this project's applet behind the event route; the meter
// reads the owner's reward balance back from the chain and the screen shows it.
// `npm run demo -- --chain --transport w3bstream-v2`: the dev apinode approves devices from the ioID
// events of this project's own registry on anvil; the meter starts unregistered (403, readings kept)
// and the owner registers it with its permit after --register-after seconds.
// Prints one line per delivered reading (with --chain: the applet's result and the owner's balance),
// where the screen image is, and (on a terminal) a live preview of the screen in coloured block
// characters. Ctrl-C stops everything within 2 s.
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BACKEND = path.join(root, 'packages/power-meter/dist/cli.js');
const DISPLAY = path.join(root, 'packages/power-meter-display/dist/cli.js');

const opts = new Command('npm run demo --')
  .description('Run receiver, power-meter (simulated sensor) and power-meter-display (png panel) together')
  .option('--dir <dir>', 'working directory for data, screen and logs (default: a new temporary directory)')
  .option('--load <spec>', "simulated load: 'demo' (random switches), watts, or pwm:<W>:<duty>:<hz>", 'demo')
  .option('--window <s>', 'averaging window in seconds', '5')
  .option('--duration <s>', 'stop by itself after this many seconds (default: run until Ctrl-C)')
  .option('--no-preview', 'do not draw the screen in the terminal')
  .option('--chain', "the applet on a local chain instead of the dev receiver: each reading's applet result and the owner's balance")
  .option(
    '--register-after <s>',
    '--chain with --transport w3bstream-v2: the owner registers the device in ioID after this many seconds (until then the node answers 403 and the meter keeps its readings)',
    '15',
  )
  .option(
    '--transport <name>',
    'w3bstream-v1 (event route, token) or w3bstream-v2 (POST /v1/task, secp256k1 signature recovery)',
    'w3bstream-v1',
  )
  .parse(process.argv)
  .opts();

const dir = path.resolve(opts.dir ?? mkdtempSync(path.join(tmpdir(), 'power-meter-demo-')));
const dataDir = path.join(dir, 'data');
const pngFile = path.join(dir, 'screen.png');
const recordFile = path.join(dir, 'received.jsonl');
const logDir = path.join(dir, 'logs');
mkdirSync(dataDir, { recursive: true });
mkdirSync(logDir, { recursive: true });
// An empty config file, so a meter installed on this machine (/etc/power-meter/config.json)
// does not leak its settings into the demo.
const configFile = path.join(dir, 'demo-config.json');
if (!existsSync(configFile)) writeFileSync(configFile, '{}\n');

for (const bin of [BACKEND, DISPLAY]) {
  if (!existsSync(bin)) {
    console.error(`demo: ${path.relative(root, bin)} is missing: run "npm run build" (or ./install-requirements.sh) first`);
    process.exit(1);
  }
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

const port = await freePort();
const project = 'demo';
// A throwaway token for the local receiver only; it is not a secret and never leaves this machine.
const token = 'demo-token';
const v2 = opts.transport === 'w3bstream-v2';
if (!v2 && opts.transport !== 'w3bstream-v1') {
  console.error(`demo: --transport ${opts.transport} is not w3bstream-v1 or w3bstream-v2`);
  process.exit(2);
}
const registerAfterS = Number(opts.registerAfter);
if (!Number.isFinite(registerAfterS) || registerAfterS < 0) {
  console.error(`demo: --register-after ${opts.registerAfter} is not a number of seconds`);
  process.exit(2);
}
let publishUrl = v2 ? `http://127.0.0.1:${port}/v1/task` : `http://127.0.0.1:${port}/srv-applet-mgr/v0/event/${project}`;
// W3bstream 2: a local project ID and version (on the network they come from the project registered on chain).
const transportArgs = v2 ? ['--transport', 'w3bstream-v2', '--project-id', '1', '--project-version', '0.1'] : [];
// The node approves only devices registered for the project (ioID): the local one approves this device by name.
const approveArgs = [];
// With --chain the ioID registry approves the device instead (below).
if (v2 && !opts.chain) {
  const idJson = execFileSync(
    process.execPath,
    [BACKEND, 'identity', '--json', '--config', configFile, ...transportArgs, '--data-dir', dataDir],
    {
      encoding: 'utf8',
    },
  );
  approveArgs.push('--approve', `${JSON.parse(idJson).deviceId}:1`);
}

let lastBalance = null;
const eventLines = [];
// Said before the readings printed in the same tick: what the demo did (a registration) comes
// before what followed from it (the readings the node then took).
const noticeLines = [];
/** --chain: the local DePIN loop, started before the meter (its device must be registered first). */
let depin = null;
const chainArgs = [];
let chainQueue = Promise.resolve();
/** --chain --transport w3bstream-v2: the dev apinode's extra arguments, and the registration to run later. */
const receiverArgs = [];
let registerLater = null;
if (opts.chain && v2) {
  // W3bstream 2 on a local chain: this project's ioID registry (contracts/IoIdRegistryLocal.sol, the
  // ioID interface) on anvil; the dev apinode approves devices from its CreateIoID events as the
  // node does. The device starts unregistered (403, readings kept); the owner registers it later
  // with the permit the meter prints.
  let host;
  try {
    host = await import(path.join(root, 'packages/dev-node/dist/index.js'));
  } catch (err) {
    console.error(`demo: --chain needs packages/dev-node built (npm run build): ${err.message}`);
    process.exit(1);
  }
  console.log('demo: starting the local chain and deploying the ioID registry …');
  host.ensureArtifacts();
  const chain = await host.startLocalChain({ chainId: 4690 });
  const [admin, owner] = chain.accounts;
  const ioid = await host.LocalIoId.deploy(chain.rpcUrl, admin, owner, 1n);
  depin = { close: () => chain.stop() };
  execFileSync(process.execPath, [BACKEND, 'identity', '--config', configFile, '--curve', 'secp256k1', '--data-dir', dataDir]);
  receiverArgs.push(...['--ioid-contract', ioid.addresses.ioId, '--rpc-url', chain.rpcUrl, '--from-block', String(ioid.deployedAtBlock)]);
  chainArgs.push(...['--rpc-url', chain.rpcUrl, '--ioid-registry', ioid.addresses.registry, '--ioid-interval', '2']);
  console.log(
    `demo: chain ${chain.chainId} at ${chain.rpcUrl}; ioIDRegistry ${ioid.addresses.registry}, ioID ${ioid.addresses.ioId}, project 1`,
  );
  console.log(`demo: the device is not registered: the node answers 403 until the owner ${owner} registers it in ${registerAfterS} s`);
  registerLater = async () => {
    const out = execFileSync(
      process.execPath,
      [
        BACKEND,
        'ioid',
        'permit',
        '--config',
        configFile,
        '--data-dir',
        dataDir,
        '--owner',
        owner,
        '--registry',
        ioid.addresses.registry,
        '--rpc-url',
        chain.rpcUrl,
        '--json',
      ],
      { encoding: 'utf8' },
    );
    const permit = JSON.parse(out);
    const { hash } = await ioid.register(permit, { uri: `file://${path.join(dir, 'did-document.json')}` });
    writeFileSync(path.join(dir, 'did-document.json'), permit.didDocumentText);
    noticeLines.push(`demo: the owner registered ${permit.device} (${permit.did}) with its permit: register tx ${hash.slice(0, 12)}…`);
  };
}
if (opts.chain && !v2) {
  // The device's identity is created now, on secp256k1 so the applet checks each signature on chain.
  const idJson = execFileSync(
    process.execPath,
    [BACKEND, 'identity', '--json', '--config', configFile, '--curve', 'secp256k1', '--data-dir', dataDir],
    {
      encoding: 'utf8',
    },
  );
  const device = JSON.parse(idJson).deviceId;
  let startLocalDepin;
  try {
    ({ startLocalDepin } = await import(path.join(root, 'packages/dev-node/dist/index.js')));
  } catch (err) {
    console.error(`demo: --chain needs packages/dev-node built (npm run build): ${err.message}`);
    process.exit(1);
  }
  console.log('demo: starting the local chain, deploying the contracts, building the applet if needed …');
  try {
    depin = await startLocalDepin({ publisherToken: token, port: 0, onEvent: (e) => (chainQueue = chainQueue.then(() => printEvent(e))) });
  } catch (err) {
    console.error(`demo: the local chain did not start: ${err.message}`);
    process.exit(1);
  }
  await depin.registerAndBind(device);
  lastBalance = await depin.rewards.balanceOf(depin.owner);
  publishUrl = depin.host.url;
  chainArgs.push(
    ...['--curve', 'secp256k1', '--rpc-url', depin.chain.rpcUrl, '--reward-token', depin.rewards.contracts.token],
    ...['--wallet-address', depin.owner, '--balance-interval', '2'],
  );
  console.log(`demo: chain ${depin.chain.chainId} at ${depin.chain.rpcUrl}; reward token ${depin.rewards.contracts.token}`);
  console.log(`demo: device ${device} registered and bound to the owner ${depin.owner}`);
}

/** One line per reading the applet handled: its result, and the owner's balance after it. */
async function printEvent(e) {
  if (e.source !== 'http' || stopping) return;
  const at = new Date().toISOString().slice(11, 19);
  const seq = String(e.eventId?.split('-').pop() ?? '?').padStart(5);
  const r = e.results?.[0];
  // The applet stores each accepted reading before it answers, and the meter sends one reading at
  // a time: the newest row is this reading.
  const [row] = r?.code === 0 ? await depin.host.db.query('SELECT sensor_reading FROM readings ORDER BY id DESC LIMIT 1') : [];
  const watts = row ? Number(row.sensor_reading).toFixed(3).padStart(9) : '        -';
  let balance;
  try {
    balance = await depin.rewards.balanceOf(depin.owner);
  } catch {
    return; // the chain is stopping
  }
  const whole = balance / 10n ** 18n;
  const delta = lastBalance === null ? '' : balance > lastBalance ? `  +${(balance - lastBalance) / 10n ** 18n}` : '  (no reward)';
  lastBalance = balance;
  const result = r === undefined ? 'no applet' : r.code === 0 ? 'applet ok' : `REFUSED (${r.error ?? `code ${r.code}`})`;
  // Printed by the ticker, above the screen preview.
  eventLines.push(`${at}   ${watts}   ${seq}  ${result.padEnd(10)}  owner balance ${whole} ECO${delta}`);
}

const children = [];
function start(name, args, env = {}) {
  const log = openSync(path.join(logDir, `${name}.log`), 'a');
  const child = spawn(process.execPath, args, {
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: ['ignore', log, log],
  });
  child.name = name;
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`demo: ${name} exited unexpectedly (code ${code}, signal ${signal}); see ${path.join(logDir, `${name}.log`)}`);
      stop(1);
    }
  });
  children.push(child);
  return child;
}

let stopping = false;
async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  if (preview) process.stdout.write('\x1b[?25h');
  const exits = children.map(
    (c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', resolve))),
  );
  for (const c of children) c.kill('SIGTERM');
  // Each program stops within 2 s on SIGTERM; anything slower is killed so nothing is left behind.
  const killer = setTimeout(() => {
    for (const c of children) c.kill('SIGKILL');
  }, 1500);
  await Promise.all(exits);
  clearTimeout(killer);
  await depin?.close();
  console.log(`demo: stopped. Data, screen and logs are in ${dir}`);
  process.exit(code);
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

if (!opts.chain || v2)
  start(
    'dev-receiver',
    [
      ...[BACKEND, 'dev-receiver', '--port', String(port), '--project', project, '--record', recordFile, '--transport', opts.transport],
      ...approveArgs,
      ...receiverArgs,
    ],
    {
      DEV_RECEIVER_TOKEN: token,
    },
  );
start(
  'power-meter',
  [
    BACKEND,
    '--config',
    configFile,
    '--sensor',
    'sim',
    '--sim-load',
    String(opts.load),
    '--window',
    String(opts.window),
    '--data-dir',
    dataDir,
    '--publish-url',
    publishUrl,
    ...chainArgs,
    ...transportArgs,
  ],
  { W3BSTREAM_PUBLISHER_TOKEN: token },
);
start('power-meter-display', [DISPLAY, '--config', configFile, '--panel', 'png', '--png', pngFile, '--data-dir', dataDir]);

console.log(`demo: working directory ${dir}`);
console.log(`demo: ${opts.chain && !v2 ? 'applet host' : 'receiver'} ${publishUrl}`);
console.log(`demo: screen image ${pngFile} (rewritten on every change)`);
console.log(`demo: logs in ${logDir}; Ctrl-C stops everything`);
console.log(
  opts.chain && !v2
    ? 'time       power (W)   seq  applet      owner balance'
    : `time       power (W)   ${v2 ? 'task            ' : 'seq    '}signature`,
);

const preview = opts.preview && process.stdout.isTTY;
let previewLines = 0;
let recordOffset = 0;
let pending = '';
let lastPngMtime = 0;

function readNewRecords() {
  if (!existsSync(recordFile)) return [];
  const size = statSync(recordFile).size;
  if (size <= recordOffset) return [];
  const fd = openSync(recordFile, 'r');
  const buf = Buffer.alloc(size - recordOffset);
  readSync(fd, buf, 0, buf.length, recordOffset);
  closeSync(fd);
  recordOffset = size;
  pending += buf.toString('utf8');
  const lines = pending.split('\n');
  pending = lines.pop() ?? '';
  return lines
    .filter(Boolean)
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return null;
      }
    })
    .filter(Boolean);
}

function formatRecord(r) {
  const at = new Date(r.receivedAtMs ?? Date.now()).toISOString().slice(11, 19);
  const watts = typeof r.sensorReading === 'number' ? r.sensorReading.toFixed(3).padStart(9) : '        ?';
  // W3bstream 2 has no sequence number on the wire: the node's taskID is shown instead.
  const seq = v2
    ? `task ${r.taskId ? `${r.taskId.slice(0, 10)}…` : '(aggregating)'}`
    : String(r.seq ?? r.eventId?.split('-').pop() ?? '?').padStart(5);
  // W3bstream 2 refusals of a valid request (403: no ioID for the project) are the node's answer, not a bad signature.
  if (v2 && r.verified && r.reason) return `${at}   ${watts}   ${`nonce ${r.nonce ?? '?'}`.padEnd(16)}REFUSED (${r.reason})`;
  return `${at}   ${watts}   ${seq}  ${r.verified ? 'verified' : `NOT VERIFIED (${r.reason ?? 'unknown'})`}`;
}

let canvasLib = null;
async function drawPreview() {
  if (!existsSync(pngFile)) return;
  const mtime = statSync(pngFile).mtimeMs;
  if (mtime === lastPngMtime) return;
  lastPngMtime = mtime;
  canvasLib ??= (await import('canvas')).default;
  let img;
  try {
    img = await canvasLib.loadImage(readFileSync(pngFile));
  } catch {
    return; // replaced while we read it: the next tick draws it
  }
  // Half-block characters: each cell shows two pixels stacked (foreground top, background bottom).
  // The image is scaled by 1/2 so a 160x128 screen takes 80 columns x 32 lines.
  const w = Math.round(img.width / 2);
  const h = Math.round(img.height / 2);
  const c = canvasLib.createCanvas(w, h);
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0, w, h);
  const px = ctx.getImageData(0, 0, w, h).data;
  let out = previewLines ? `\x1b[${previewLines}A` : '';
  for (let y = 0; y < h; y += 2) {
    let line = '';
    for (let x = 0; x < w; x++) {
      const a = (y * w + x) * 4;
      const b = ((y + 1) * w + x) * 4;
      line += `\x1b[38;2;${px[a]};${px[a + 1]};${px[a + 2]}m\x1b[48;2;${px[b] ?? 0};${px[b + 1] ?? 0};${px[b + 2] ?? 0}m▀`;
    }
    out += `${line}\x1b[0m\n`;
  }
  previewLines = Math.ceil(h / 2);
  process.stdout.write(out);
}

const ticker = setInterval(async () => {
  const lines = [...noticeLines.splice(0), ...readNewRecords().map(formatRecord), ...eventLines.splice(0)];
  if (lines.length && previewLines) {
    // Print readings above the preview: move up, clear the preview area, print, redraw below.
    process.stdout.write(`\x1b[${previewLines}A\x1b[J`);
    previewLines = 0;
    lastPngMtime = 0;
  }
  for (const l of lines) console.log(l);
  if (preview) await drawPreview();
}, 250);

if (opts.duration) setTimeout(() => stop(0), Number(opts.duration) * 1000);
if (registerLater)
  setTimeout(
    () =>
      void registerLater().catch((err) => {
        console.error(`demo: the registration failed: ${err.message}`);
        stop(1);
      }),
    registerAfterS * 1000,
  );
if (preview) process.stdout.write('\x1b[?25l');
