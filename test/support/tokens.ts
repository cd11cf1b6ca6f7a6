import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Real PKCS#11 tokens for the tests, each on its own state directory (Debian packages, installed
 * by `./install-requirements.sh --test`):
 * - SoftHSM2 (`softhsm2`): a token directory and a `softhsm2.conf` of its own (SOFTHSM2_CONF).
 * - A TPM 2.0: `swtpm` on a Unix socket in its own directory, reached through tpm2-pkcs11
 *   (`libtpm2-pkcs11-1`) with its own store (TPM2_PKCS11_STORE) and TCTI (TPM2_PKCS11_TCTI).
 * The PINs are test values made up here, never real secrets.
 */
export const USER_PIN = '4711-test';
export const SO_PIN = '0815-so-test';

/** Where Debian puts the modules (multiarch directory of this machine). */
function multiarch(): string {
  try {
    return execFileSync('dpkg-architecture', ['-qDEB_HOST_MULTIARCH'], { encoding: 'utf8' }).trim();
  } catch {
    return `${process.arch === 'arm64' ? 'aarch64' : process.arch === 'arm' ? 'arm' : 'x86_64'}-linux-gnu`;
  }
}
export const SOFTHSM_MODULE =
  ['/usr/lib/softhsm/libsofthsm2.so', `/usr/lib/${multiarch()}/softhsm/libsofthsm2.so`].find((f) => existsSync(f)) ??
  '/usr/lib/softhsm/libsofthsm2.so';
export const TPM2_MODULE = `/usr/lib/${multiarch()}/pkcs11/libtpm2_pkcs11.so`;

export interface SoftHsm {
  dir: string;
  module: string;
  /** The environment a process needs to see this token. */
  env: Record<string, string>;
  cleanup(): void;
}

/** A fresh SoftHSM with one initialised token `label` (user PIN `USER_PIN`). */
export function softHsm(label = 'meter'): SoftHsm {
  const dir = mkdtempSync(join(tmpdir(), 'pm-softhsm-'));
  mkdirSync(join(dir, 'tokens'));
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const env = { SOFTHSM2_CONF: conf };
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', USER_PIN, '--so-pin', SO_PIN], {
    env: { ...process.env, ...env },
    stdio: 'pipe',
  });
  return { dir, module: SOFTHSM_MODULE, env, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface SwTpm {
  dir: string;
  module: string;
  env: Record<string, string>;
  /** Stops the TPM (its state stays on disk): the token is gone for whoever uses it. */
  stop(): Promise<void>;
  /** Starts it again on the same state: a TPM reset (Startup(CLEAR)), keys are loaded afresh. */
  start(): Promise<void>;
  cleanup(): Promise<void>;
}

async function waitUntil(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A software TPM 2.0 on a Unix socket in its own directory, with a tpm2-pkcs11 store beside it
 * holding one token `label` (user PIN `USER_PIN`), made with C_InitToken on the empty slot the
 * module offers. swtpm serves one connection at a time: the token is initialised here and the
 * module finalised before anyone else connects.
 */
export async function swTpm(label = 'meter'): Promise<SwTpm> {
  const dir = mkdtempSync(join(tmpdir(), 'pm-swtpm-'));
  const state = join(dir, 'state');
  const store = join(dir, 'store');
  mkdirSync(state);
  mkdirSync(store);
  const sock = join(dir, 'sock');
  const env = {
    TPM2_PKCS11_STORE: store,
    TPM2_PKCS11_TCTI: `swtpm:path=${sock}`,
    // tpm2-pkcs11 prints warnings (e.g. about the missing FAPI configuration) otherwise.
    TPM2_PKCS11_LOG_LEVEL: '0',
    TSS2_LOG: 'all+NONE',
  };
  let proc: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const start = async (): Promise<void> => {
    rmSync(sock, { force: true });
    rmSync(`${sock}.ctrl`, { force: true });
    proc = spawn(
      'swtpm',
      [
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${state}`,
        '--server',
        `type=unixio,path=${sock}`,
        '--ctrl',
        `type=unixio,path=${sock}.ctrl`,
        '--flags',
        'not-need-init,startup-clear',
        '--log',
        `file=${join(dir, 'swtpm.log')}`,
      ],
      { stdio: 'ignore' },
    );
    const p = proc;
    exited = new Promise((r) => p.once('exit', () => r()));
    await waitUntil(() => existsSync(sock) || p.exitCode !== null, 'the swtpm socket');
    if (p.exitCode !== null) throw new Error(`swtpm exited: ${readFileSync(join(dir, 'swtpm.log'), 'utf8')}`);
  };
  const stop = async (): Promise<void> => {
    if (proc === null) return;
    proc.kill('SIGTERM');
    await exited;
    proc = null;
  };
  await start();
  initTpmToken(env, label);
  return {
    dir,
    module: TPM2_MODULE,
    env,
    stop,
    start,
    cleanup: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** C_InitToken + C_InitPIN through the module itself (no tpm2_ptool needed), then finalised. */
function initTpmToken(env: Record<string, string>, label: string): void {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  const p11 = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');
  const lib = new p11.PKCS11();
  try {
    lib.load(TPM2_MODULE);
    lib.C_Initialize();
    const slot = lib.C_GetSlotList(true)[0]!;
    lib.C_InitToken(slot, SO_PIN, label.padEnd(32));
    const s = lib.C_OpenSession(slot, p11.CKF_SERIAL_SESSION | p11.CKF_RW_SESSION);
    lib.C_Login(s, p11.CKU_SO, SO_PIN);
    lib.C_InitPIN(s, USER_PIN);
    lib.C_Logout(s);
    lib.C_CloseSession(s);
    lib.C_Finalize();
  } finally {
    lib.close();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/**
 * The private key's protection, read straight from the token by the test (not through the code
 * under test): CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, and
 * whether CKA_VALUE (the private scalar) can be read at all.
 */
export function readKeyProtection(
  module: string,
  env: Record<string, string>,
  label: string,
): { sensitive: boolean; extractable: boolean; neverExtractable: boolean; alwaysSensitive: boolean; valueReadable: boolean; keys: number } {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  const p11 = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');
  const lib = new p11.PKCS11();
  try {
    lib.load(module);
    lib.C_Initialize();
    const slot = lib.C_GetSlotList(true)[0]!;
    const s = lib.C_OpenSession(slot, p11.CKF_SERIAL_SESSION);
    lib.C_Login(s, p11.CKU_USER, USER_PIN);
    lib.C_FindObjectsInit(s, [
      { type: p11.CKA_CLASS, value: p11.CKO_PRIVATE_KEY },
      { type: p11.CKA_LABEL, value: label },
    ]);
    const keys = lib.C_FindObjects(s, 10);
    lib.C_FindObjectsFinal(s);
    const k = keys[0]!;
    const flag = (t: number): boolean => lib.C_GetAttributeValue(s, k, [{ type: t }])[0]!.value[0] !== 0;
    let valueReadable = true;
    try {
      lib.C_GetAttributeValue(s, k, [{ type: p11.CKA_VALUE }]);
    } catch {
      valueReadable = false; // CKR_ATTRIBUTE_SENSITIVE
    }
    const out = {
      sensitive: flag(p11.CKA_SENSITIVE),
      extractable: flag(p11.CKA_EXTRACTABLE),
      neverExtractable: flag(p11.CKA_NEVER_EXTRACTABLE),
      alwaysSensitive: flag(p11.CKA_ALWAYS_SENSITIVE),
      valueReadable,
      keys: keys.length,
    };
    lib.C_Logout(s);
    lib.C_Finalize();
    return out;
  } finally {
    lib.close();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/**
 * A slow token: a PKCS#11 module of this test's own (C, compiled here with the system compiler
 * into the test's directory) that forwards every call to a real module and sleeps `delayMs` in
 * C_Sign, the time a TPM on SPI takes (50-200 ms). Only the latency is made up; the signature is
 * the real module's.
 */
export function slowModule(dir: string, realModule: string, delayMs: number): string {
  const src = join(dir, 'slow-pkcs11.c');
  const out = join(dir, 'slow-pkcs11.so');
  writeFileSync(
    src,
    `#include <dlfcn.h>
#include <time.h>
#include <stddef.h>
typedef unsigned long CK_RV;
typedef void *CK_FUNCTION_LIST_PTR;
/* The function list is an array of function pointers after a 2-byte version (PKCS#11 2.40, pkcs11f.h order). */
typedef CK_RV (*getlist_t)(void **);
typedef CK_RV (*sign_t)(unsigned long, unsigned char *, unsigned long, unsigned char *, unsigned long *);
struct flist { unsigned char version[2]; void *fns[68]; };
static struct flist list;
static sign_t real_sign;
static CK_RV slow_sign(unsigned long s, unsigned char *d, unsigned long dl, unsigned char *sig, unsigned long *sl) {
  if (sig != NULL) { struct timespec t = { ${Math.floor(delayMs / 1000)}, ${(delayMs % 1000) * 1000000}L }; nanosleep(&t, NULL); }
  return real_sign(s, d, dl, sig, sl);
}
CK_RV C_GetFunctionList(void **out) {
  void *h = dlopen("${realModule}", RTLD_NOW | RTLD_LOCAL);
  if (!h) return 5;
  getlist_t g = (getlist_t)dlsym(h, "C_GetFunctionList");
  struct flist *real;
  CK_RV rv = g((void **)&real);
  if (rv) return rv;
  list = *real;
  /* C_Sign is entry 43 (0-based) in pkcs11f.h order: C_Initialize .. C_SignInit precede it. */
  real_sign = (sign_t)list.fns[43];
  list.fns[43] = (void *)slow_sign;
  *out = &list;
  return 0;
}
`,
  );
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', out, src, '-ldl'], { stdio: 'pipe' });
  return out;
}
