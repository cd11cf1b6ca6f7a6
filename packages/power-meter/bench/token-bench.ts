/**
 * The key in a PKCS#11 token (`npm run bench`, or `node scripts/bench.mjs power-meter`): for each
 * token this machine has (SoftHSM2, a TPM 2.0 as swtpm through tpm2-pkcs11, each on its own temp
 * state directory), signatures per second through the meter's signing seam, and the backend's
 * CPU and memory at default settings signing with it; then what a slow token (200 ms per
 * signature, a TPM on SPI) would cost the sampler if C_Sign ran on the event loop, against the
 * asynchronous path the meter uses. Tokens that are not installed are skipped, saying so
 * (`./install-requirements.sh --test` installs them).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { Sampler, createSensor, realSleep, systemClock } from '@power-meter/ina219';
import { Pkcs11Key, parsePkcs11Uri, signMessage, signMessageV2, type Curve } from '@power-meter/w3bstream';
import { startDevReceiver } from '@power-meter/dev-node';
import { median, reportFigure } from '../../../scripts/bench-figure.mjs';

const PIN = 'bench-pin-1234';
const SO_PIN = 'bench-so-5678';
const CLK_TCK = 100;
const BACKEND_S = Number(process.env.BENCH_TOKEN_BACKEND_SECONDS ?? 60);
const WARMUP_S = Number(process.env.BENCH_BACKEND_WARMUP_SECONDS ?? 15);
// The built program beside this benchmark's output (dist-bench/ -> dist/cli.js).
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js');
const nodeFlags: string[] = JSON.parse(process.env.POWER_METER_BENCH_NODE_FLAGS ?? '[]');

const has = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const arch = (): string => {
  try {
    return execFileSync('dpkg-architecture', ['-qDEB_HOST_MULTIARCH'], { encoding: 'utf8' }).trim();
  } catch {
    return 'x86_64-linux-gnu';
  }
};

interface Token {
  name: string;
  module: string;
  env: Record<string, string>;
  stop(): Promise<void>;
}

function softhsm(root: string): Token | null {
  const module = ['/usr/lib/softhsm/libsofthsm2.so', `/usr/lib/${arch()}/softhsm/libsofthsm2.so`].find((f) => existsSync(f));
  if (module === undefined || !has('softhsm2-util')) return null;
  const dir = join(root, 'softhsm');
  mkdirSync(join(dir, 'tokens'), { recursive: true });
  writeFileSync(join(dir, 'conf'), `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const env = { SOFTHSM2_CONF: join(dir, 'conf') };
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'meter', '--pin', PIN, '--so-pin', SO_PIN], {
    env: { ...process.env, ...env },
    stdio: 'ignore',
  });
  return { name: 'SoftHSM2', module, env, stop: async () => {} };
}

async function swtpm(root: string): Promise<Token | null> {
  const module = `/usr/lib/${arch()}/pkcs11/libtpm2_pkcs11.so`;
  if (!existsSync(module) || !has('swtpm')) return null;
  const dir = join(root, 'swtpm');
  mkdirSync(join(dir, 'state'), { recursive: true });
  mkdirSync(join(dir, 'store'));
  const sock = join(dir, 'sock');
  const proc: ChildProcess = spawn(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${join(dir, 'state')}`,
      '--server',
      `type=unixio,path=${sock}`,
      '--ctrl',
      `type=unixio,path=${sock}.ctrl`,
      '--flags',
      'not-need-init,startup-clear',
    ],
    { stdio: 'ignore' },
  );
  const t0 = Date.now();
  while (!existsSync(sock) && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 20));
  const env = { TPM2_PKCS11_STORE: join(dir, 'store'), TPM2_PKCS11_TCTI: `swtpm:path=${sock}`, TPM2_PKCS11_LOG_LEVEL: '0' };
  Object.assign(process.env, env);
  const p11 = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');
  const lib = new p11.PKCS11();
  lib.load(module);
  lib.C_Initialize();
  const slot = lib.C_GetSlotList(true)[0]!;
  lib.C_InitToken(slot, SO_PIN, 'meter'.padEnd(32));
  const s = lib.C_OpenSession(slot, p11.CKF_SERIAL_SESSION | p11.CKF_RW_SESSION);
  lib.C_Login(s, p11.CKU_SO, SO_PIN);
  lib.C_InitPIN(s, PIN);
  lib.C_Finalize();
  lib.close();
  return {
    name: 'TPM 2.0 (swtpm + tpm2-pkcs11)',
    module,
    env,
    stop: async () => {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    },
  };
}

async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(env)) delete process.env[k];
  }
}

/** Signed v1 messages per second through the seam, sequential (as the meter signs), 3 runs of ~2 s: median. */
async function signRate(t: Token, curve: Curve, label: string): Promise<number | null> {
  return withEnv(t.env, async () => {
    let key: Pkcs11Key;
    try {
      key = await Pkcs11Key.open({
        modulePath: t.module,
        uri: parsePkcs11Uri(`pkcs11:token=meter;object=${label}`),
        pin: PIN,
        createCurve: curve,
      });
    } catch {
      return null; // the token has no such curve
    }
    const rates: number[] = [];
    for (let run = 0; run < 3; run++) {
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < 2000) {
        if (curve === 'secp256k1')
          await signMessageV2(key, { powerW: n / 7, timestampMs: 1_764_000_000_000 + n }, { projectId: '1', projectVersion: '0.1' });
        else await signMessage(key, { powerW: n / 7, timestampMs: 1_764_000_000_000 + n * 5000 }, { publicKeyField: 'address' });
        n++;
      }
      rates.push(n / ((performance.now() - t0) / 1000));
    }
    await key.close();
    return median(rates);
  });
}

/** The real daemon at default settings signing with the token: CPU and RSS over BACKEND_S after the warm-up. */
async function backend(t: Token, root: string): Promise<{ cpuPct: number; rssMaxMb: number; delivered: number }> {
  const data = join(root, `data-${t.name.replace(/\W+/g, '-')}`);
  const config = join(root, 'config.json');
  writeFileSync(config, '{}');
  const env = {
    PATH: process.env.PATH ?? '',
    POWER_METER_CONFIG: config,
    W3BSTREAM_PUBLISHER_TOKEN: 'bench-token',
    POWER_METER_PKCS11_PIN: PIN,
    ...t.env,
  };
  const keyArgs = ['--key-uri', 'pkcs11:token=meter;object=device-key', '--pkcs11-module', t.module];
  execFileSync(process.execPath, [cli, 'identity', '--data-dir', data, ...keyArgs], { env, stdio: 'ignore' });
  const receiver = await startDevReceiver({ project: 'bench', token: 'bench-token' });
  const child = spawn(
    process.execPath,
    [...nodeFlags, cli, '--sensor', 'sim', '--data-dir', data, '--publish-url', receiver.url, ...keyArgs],
    {
      env,
      stdio: 'ignore',
    },
  );
  const pid = child.pid!;
  const ticks = (): number => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]);
  };
  const rss = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
  const c0 = ticks();
  const t0 = Date.now();
  let rssMax = 0;
  for (let i = 0; i < BACKEND_S; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    rssMax = Math.max(rssMax, rss());
  }
  const cpuPct = ((ticks() - c0) / CLK_TCK / ((Date.now() - t0) / 1000)) * 100;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await receiver.close();
  return { cpuPct, rssMaxMb: rssMax, delivered: receiver.received.length };
}

/** A C_Sign that takes `delayMs` in the module (a PKCS#11 module of the bench's own, C, forwarding to SoftHSM). */
function slowModule(dir: string, real: string, delayMs: number): string | null {
  if (!has('cc')) return null;
  const src = join(dir, 'slow.c');
  writeFileSync(
    src,
    `#include <dlfcn.h>
#include <time.h>
#include <stddef.h>
struct flist { unsigned char version[2]; void *fns[68]; };
static struct flist list;
typedef unsigned long (*sign_t)(unsigned long, unsigned char *, unsigned long, unsigned char *, unsigned long *);
static sign_t real_sign;
static unsigned long slow_sign(unsigned long s, unsigned char *d, unsigned long dl, unsigned char *sig, unsigned long *sl) {
  if (sig != NULL) { struct timespec t = { 0, ${delayMs * 1_000_000}L }; nanosleep(&t, NULL); }
  return real_sign(s, d, dl, sig, sl);
}
unsigned long C_GetFunctionList(void **out) {
  void *h = dlopen("${real}", RTLD_NOW | RTLD_LOCAL);
  if (!h) return 5;
  unsigned long (*g)(void **) = (unsigned long (*)(void **))dlsym(h, "C_GetFunctionList");
  struct flist *r;
  unsigned long rv = g((void **)&r);
  if (rv) return rv;
  list = *r;
  real_sign = (sign_t)list.fns[43]; /* C_Sign, pkcs11f.h order */
  list.fns[43] = (void *)slow_sign;
  *out = &list;
  return 0;
}
`,
  );
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', join(dir, 'slow.so'), src, '-ldl'], { stdio: 'ignore' });
  return join(dir, 'slow.so');
}

/**
 * The sampler on the simulated chip with 1 s windows for `windows` windows, signing each window
 * with the slow module: through C_Sign on the event loop (`sync`, what the meter does not do) or
 * the asynchronous path the meter uses. Returns the mean observed fraction and missed conversions.
 */
async function samplerWhileSigning(
  t: Token,
  module: string,
  mode: 'none' | 'sync' | 'async',
  windows: number,
): Promise<{ observed: number; missed: number }> {
  return withEnv(t.env, async () => {
    const p11 = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');
    const key = await Pkcs11Key.open({ modulePath: module, uri: parsePkcs11Uri('pkcs11:token=meter;object=device-key'), pin: PIN });
    const raw = new p11.PKCS11();
    raw.load(module);
    try {
      raw.C_Initialize();
    } catch {
      // initialised by the key above: the same module in this process
    }
    const slot = raw.C_GetSlotList(true)[0]!;
    const session = raw.C_OpenSession(slot, p11.CKF_SERIAL_SESSION);
    raw.C_FindObjectsInit(session, [
      { type: p11.CKA_CLASS, value: p11.CKO_PRIVATE_KEY },
      { type: p11.CKA_LABEL, value: 'device-key' },
    ]);
    const [priv] = raw.C_FindObjects(session, 1);
    raw.C_FindObjectsFinal(session);
    const sensor = await createSensor({ kind: 'sim', simLoad: '4' });
    const fractions: number[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const digest = createHash('sha256').update('bench').digest();
    const sampler = new Sampler({
      driver: sensor.driver,
      clock: systemClock,
      sleep: realSleep,
      windowMs: 1000,
      onWindow: (w) => {
        fractions.push(w.observedFraction);
        if (mode === 'sync') {
          raw.C_SignInit(session, { mechanism: p11.CKM_ECDSA }, priv!);
          raw.C_Sign(session, digest, Buffer.alloc(132));
        } else if (mode === 'async') void key.signDigest(digest);
        if (fractions.length >= windows + 1) done();
      },
    });
    sampler.start();
    await finished;
    await sampler.stop();
    await sensor.close();
    const missed = sampler.missedConversions;
    raw.C_CloseSession(session);
    await key.close();
    const useful = fractions.slice(1);
    return { observed: useful.reduce((a, b) => a + b, 0) / useful.length, missed };
  });
}

const root = mkdtempSync(join(tmpdir(), 'pm-token-bench-'));
const tokens: Token[] = [];
try {
  const h = softhsm(root);
  if (h) tokens.push(h);
  else console.log('SoftHSM2 not installed: skipped (./install-requirements.sh --test installs it)');
  const tpm = await swtpm(root);
  if (tpm) tokens.push(tpm);
  else console.log('swtpm / tpm2-pkcs11 not installed: skipped (./install-requirements.sh --test installs them)');
  console.log(
    `key in a PKCS#11 token, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} on ${availableParallelism()} cores:`,
  );
  for (const t of tokens) {
    for (const curve of ['p256', 'secp256k1'] as const) {
      const rate = await signRate(t, curve, `rate-${curve}`);
      if (rate === null) {
        console.log(`  ${t.name}, ${curve}: the token offers no such key`);
        continue;
      }
      console.log(
        `  ${t.name}, ${curve}: ${rate.toFixed(0)} signed messages/s (median of 3 runs; ${curve === 'secp256k1' ? 'W3bstream 2, with the recovery id found by trial recovery' : 'v1, SHA-256, low S'})`,
      );
      reportFigure(`signed messages per second, ${t.name}, ${curve}`, rate, '/s', '', null);
    }
  }
  for (const t of tokens) {
    const b = await backend(t, root);
    console.log(
      `  backend at default settings signing with ${t.name}: CPU ${b.cpuPct.toFixed(2)} % of one core, RSS max ${b.rssMaxMb.toFixed(1)} MB (${BACKEND_S} s after ${WARMUP_S} s; node ${nodeFlags.join(' ') || '(no flags)'}; ${b.delivered} readings delivered)`,
    );
    const soft = t === tokens[0] && t.name === 'SoftHSM2';
    reportFigure(`backend CPU at defaults, key in ${t.name}`, b.cpuPct, '% of a core', soft ? '< 1 %' : '', soft ? b.cpuPct < 1 : null);
    reportFigure(`backend resident memory (max), key in ${t.name}`, b.rssMaxMb, 'MB', '', null);
  }
  const soft = tokens.find((t) => t.name === 'SoftHSM2');
  const slow = soft ? slowModule(root, soft.module, 200) : null;
  if (soft && slow) {
    // The same sampler without signing first: what this (shared, loaded) machine costs it anyway.
    for (const mode of ['none', 'async', 'sync'] as const) {
      const r = await samplerWhileSigning(soft, slow, mode, 20);
      const how = { none: 'no signing (baseline)', async: 'asynchronous (the meter)', sync: 'on the event loop (for comparison)' }[mode];
      console.log(
        `  sampler, 1 s windows, a 200 ms C_Sign per window ${how}: observed ${(r.observed * 100).toFixed(1)} % of each window (mean), ${r.missed} conversions missed in 20 windows`,
      );
      const label = mode === 'none' ? 'no signing' : mode;
      reportFigure(
        `observed fraction, 200 ms token, ${label}`,
        r.observed * 100,
        '%',
        mode === 'async' ? '>= 95 %' : '',
        mode === 'async' ? r.observed >= 0.95 : null,
      );
      reportFigure(`missed conversions in 20 windows, 200 ms token, ${label}`, r.missed, '', '', null);
    }
  }
} finally {
  for (const t of tokens) await t.stop();
  rmSync(root, { recursive: true, force: true });
}
