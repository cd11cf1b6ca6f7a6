import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { readState } from '@power-meter/meter-files';
import { resolveSettings } from '@power-meter/service';
import { startDevReceiver, type DevReceiver } from '@power-meter/dev-node';
import { afterEach, describe, expect, it } from 'vitest';
import { BalanceReader, nextBalanceDelayMs, safeRpcUrl, type ChainBalance } from '../src/chain/balance.js';
import { BALANCE_OF_SELECTOR, DECIMALS_SELECTOR, balanceOfCall, decodeDecimals, decodeUint256, formatUnits } from '../src/chain/erc20.js';
import { BACKEND_SETTINGS } from '../src/settings.js';
import { BACKEND, start, until, type Proc } from '../../../test/support/processes.js';

const TOKEN_ADDRESS = `0x${'ab'.repeat(20)}`;
const OWNER = `0x${'C0'.repeat(20)}`;

describe('ERC-20 calls (Solidity ABI)', () => {
  it('uses the first four bytes of keccak256 of each signature, and pads the owner to one word', () => {
    const selector = (sig: string) => `0x${Buffer.from(keccak_256(new TextEncoder().encode(sig)).slice(0, 4)).toString('hex')}`;
    expect(BALANCE_OF_SELECTOR).toBe(selector('balanceOf(address)'));
    expect(DECIMALS_SELECTOR).toBe(selector('decimals()'));
    expect(balanceOfCall(OWNER)).toBe(`${BALANCE_OF_SELECTOR}${'0'.repeat(24)}${'c0'.repeat(20)}`);
    expect(() => balanceOfCall('0x12')).toThrow(/not 0x \+ 40 hex/);
  });

  it('decodes one uint256 word and refuses what an ERC-20 would not answer', () => {
    const word = (n: bigint) => `0x${n.toString(16).padStart(64, '0')}`;
    expect(decodeUint256(word(40n * 10n ** 18n), 'balanceOf')).toBe(40n * 10n ** 18n);
    expect(decodeUint256(word(2n ** 256n - 1n), 'balanceOf')).toBe(2n ** 256n - 1n);
    expect(decodeDecimals(word(18n))).toBe(18);
    expect(() => decodeDecimals(word(256n))).toThrow(/not a uint8/);
    expect(() => decodeUint256('0x', 'balanceOf(owner)')).toThrow(/no contract on this chain/);
    expect(() => decodeUint256('0x1234', 'balanceOf(owner)')).toThrow(/not one 32-byte word/);
    expect(() => decodeUint256(null, 'balanceOf(owner)')).toThrow(/not one 32-byte word/);
  });

  it('formats base units as exact whole tokens', () => {
    expect(formatUnits(40n * 10n ** 18n, 18)).toBe('40');
    expect(formatUnits(1_250_000_000_000_000_000n, 18)).toBe('1.25');
    expect(formatUnits(1n, 18)).toBe('0.000000000000000001');
    expect(formatUnits(0n, 18)).toBe('0');
    expect(formatUnits(1234500n, 6)).toBe('1.2345');
    expect(formatUnits(7n, 0)).toBe('7');
    // Beyond Number's exact range: the text stays exact.
    expect(formatUnits(2n ** 256n - 1n, 18)).toBe('115792089237316195423570985008687907853269984665640564039457.584007913129639935');
  });
});

describe('balance reader', () => {
  const servers: Server[] = [];
  const readers: BalanceReader[] = [];
  afterEach(async () => {
    for (const r of readers.splice(0)) r.stop();
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  /**
   * A JSON-RPC endpoint answering eth_call as an Ethereum node does (a JSON-RPC 2.0 object with
   * `result` as 0x-hex of the returned words), or failing as a broken gateway does.
   */
  async function rpcServer(answer: { mode: 'ok' | 'html' | 'rpc-error'; balance: bigint }) {
    const calls: Array<{ to: string; data: string; block: string }> = [];
    const server = createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        const rq = JSON.parse(text) as { id: number; method: string; params: [{ to: string; data: string }, string] };
        calls.push({ ...rq.params[0], block: rq.params[1] });
        if (answer.mode === 'html') {
          res.writeHead(200, { 'content-type': 'text/html' }).end('<html>captive portal</html>');
          return;
        }
        const word = (n: bigint) => `0x${n.toString(16).padStart(64, '0')}`;
        const body =
          answer.mode === 'rpc-error'
            ? { jsonrpc: '2.0', id: rq.id, error: { code: -32000, message: 'header not found' } }
            : { jsonrpc: '2.0', id: rq.id, result: rq.params[0].data === DECIMALS_SELECTOR ? word(18n) : word(answer.balance) };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/secret-api-key`, calls, answer };
  }

  function reader(rpcUrl: string, updates: ChainBalance[], logs: string[] = [], intervalMs = 50) {
    let now = 1_764_000_000_000;
    const r = new BalanceReader({
      rpcUrl,
      token: TOKEN_ADDRESS,
      owner: OWNER,
      intervalMs,
      timeoutMs: 5000,
      onUpdate: (b) => updates.push(b),
      log: (l) => logs.push(l),
      now: () => (now += 1000),
    });
    readers.push(r);
    return r;
  }

  it('reads decimals once and balanceOf(owner) at the latest block, and keeps the time of the read', async () => {
    const rpc = await rpcServer({ mode: 'ok', balance: 30n * 10n ** 18n });
    const updates: ChainBalance[] = [];
    const r = reader(rpc.url, updates);
    r.start();
    await until(() => updates.length >= 2, 10_000, 'two reads');
    expect(updates[0]).toMatchObject({
      token: TOKEN_ADDRESS,
      owner: OWNER.toLowerCase(),
      raw: (30n * 10n ** 18n).toString(),
      decimals: 18,
      tokens: '30',
      error: null,
      failures: 0,
      intervalMs: 50,
    });
    expect(updates[1]!.readAtMs!).toBeGreaterThan(updates[0]!.readAtMs!);
    expect(rpc.calls.filter((c) => c.data === DECIMALS_SELECTOR)).toHaveLength(1);
    expect(rpc.calls.filter((c) => c.data === balanceOfCall(OWNER))).toHaveLength(updates.length);
    expect(rpc.calls.every((c) => c.to === TOKEN_ADDRESS && c.block === 'latest')).toBe(true);
  });

  it('a failing RPC keeps the last balance and its time, says why once, and recovers', async () => {
    const rpc = await rpcServer({ mode: 'ok', balance: 5n * 10n ** 18n });
    const updates: ChainBalance[] = [];
    const logs: string[] = [];
    const r = reader(rpc.url, updates, logs);
    const good = await r.readOnce();
    expect(good).toMatchObject({ tokens: '5', error: null });
    rpc.answer.mode = 'html';
    const html = await r.readOnce();
    expect(html).toMatchObject({ tokens: '5', raw: good.raw, readAtMs: good.readAtMs, failures: 1 });
    expect(html.error).toMatch(/not JSON \(text\/html\)/);
    rpc.answer.mode = 'rpc-error';
    expect((await r.readOnce()).error).toBe('RPC error: header not found');
    rpc.answer.mode = 'ok';
    rpc.answer.balance = 6n * 10n ** 18n;
    expect(await r.readOnce()).toMatchObject({ tokens: '6', error: null, failures: 0 });
    expect(logs.filter((l) => l.includes('not read'))).toHaveLength(2);
    // The API key in the URL's path is never logged.
    expect(logs.join('\n')).not.toContain('secret-api-key');
  });

  it('an unreachable RPC is an error with the reason, never a balance', async () => {
    const rpc = await rpcServer({ mode: 'ok', balance: 1n });
    const url = rpc.url;
    await new Promise((res) => servers.pop()!.close(res));
    const b = await reader(url, []).readOnce();
    expect(b).toMatchObject({ raw: null, tokens: null, readAtMs: null, failures: 1 });
    expect(b.error).toMatch(/^RPC http:\/\/127\.0\.0\.1:\d+ unreachable \(ECONNREFUSED\)$/);
  });

  it('waits the interval when healthy, 5 s doubling with jitter after failures, capped', () => {
    const mid = () => 0.5;
    expect(nextBalanceDelayMs(0, 60_000, 600_000, mid)).toBe(60_000);
    expect(nextBalanceDelayMs(1, 60_000, 600_000, mid)).toBe(3750);
    expect(nextBalanceDelayMs(2, 60_000, 600_000, mid)).toBe(7500);
    expect(nextBalanceDelayMs(30, 60_000, 600_000, () => 1)).toBe(600_000);
    expect(nextBalanceDelayMs(30, 60_000, 600_000, () => 0)).toBe(300_000);
    expect(safeRpcUrl('https://mainnet.infura.io/v3/KEY')).toBe('https://mainnet.infura.io');
  });
});

describe('chain settings', () => {
  const resolve = (flags: Record<string, unknown>, env: Record<string, string> = {}) =>
    resolveSettings(BACKEND_SETTINGS, { flags, env, config: {} }).values;

  it('sends the address form by default; key on request; RPC off by default', () => {
    expect(resolve({})).toMatchObject({ publicKeyField: 'address', rpcUrl: '', rewardToken: '', balanceIntervalS: 60 });
    expect(resolve({}, { POWER_METER_PUBLIC_KEY_FIELD: 'key' }).publicKeyField).toBe('key');
    expect(() => resolve({ publicKeyField: 'pubkey' })).toThrow(/--public-key-field = "pubkey".*allowed address or key/);
    expect(() => resolve({ rewardToken: '0x1234' })).toThrow(/--reward-token = "0x1234".*0x \+ 40 hex digits/);
    expect(() => resolve({ balanceInterval: '1' })).toThrow(/--balance-interval.*seconds, 2-86400/);
  });

  it('refuses an RPC URL with a password without repeating it', () => {
    let message = '';
    try {
      resolve({ rpcUrl: 'https://user:hunter2@rpc.example' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/--rpc-url = "<hidden>".*http\(s\) URL without a user or password/);
    expect(message).not.toContain('hunter2');
  });

  it('the program exits 2 naming what is missing when the balance settings are incomplete', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--rpc-url', 'http://127.0.0.1:1'], /invalid setting --reward-token = "".*when --rpc-url is set/],
      [['--reward-token', TOKEN_ADDRESS], /invalid setting --rpc-url = "".*when --reward-token is set/],
      [
        ['--rpc-url', 'http://127.0.0.1:1', '--reward-token', TOKEN_ADDRESS],
        /invalid setting --wallet-address = "".*its balance is what is read/,
      ],
    ];
    for (const [args, message] of cases) {
      const p = start(BACKEND, ['identity', '--data-dir', '/nonexistent/never-created', ...args]);
      expect(await p.exited).toBe(2);
      expect(p.output()).toMatch(message);
    }
  });
});

describe('public_key on the wire (real process)', () => {
  const receivers: DevReceiver[] = [];
  const procs: Proc[] = [];
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    await Promise.all(receivers.splice(0).map((r) => r.close()));
  });

  it('readings stored under one setting are sent with the body they were signed with; new ones use the new form', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-wire-')), 'data');
    const meter = (args: string[]) => {
      const p = start(BACKEND, ['--sensor', 'sim', '--sim-load', '2', '--window', '1', '--data-dir', dir, ...args], {
        W3BSTREAM_PUBLISHER_TOKEN: 'wire-token',
        POWER_METER_RETRY_MAX_MS: '500',
      });
      procs.push(p);
      return p;
    };
    // No publish URL: the readings stay in the outbox, signed with the key form.
    const first = meter(['--public-key-field', 'key']);
    await until(
      async () => {
        const r = await readState(dir);
        return r.ok && r.state.publishing.waiting >= 2;
      },
      30_000,
      'two stored readings',
    );
    expect(await first.stop('SIGTERM')).toBe(0);
    const stored = await readState(dir);
    if (!stored.ok) throw new Error(`state.json unreadable after a clean stop: ${stored.message}`);
    const storedCount = stored.state.publishing.waiting;

    const rx = await startDevReceiver({ project: 'wire', token: 'wire-token' });
    receivers.push(rx);
    const second = meter(['--publish-url', rx.url]); // the default: address
    await until(() => rx.received.length >= storedCount + 2, 30_000, 'the stored readings and two new ones');
    expect(await second.stop('SIGTERM')).toBe(0);
    const forms = rx.received.map((e) => e.publicKeyForm);
    expect(forms.slice(0, storedCount)).toEqual(Array(storedCount).fill('key'));
    expect(forms.slice(storedCount).every((f) => f === 'address')).toBe(true);
    expect(rx.received.every((e) => e.verified)).toBe(true);
    // Both forms name the same signer.
    expect(new Set(rx.received.map((e) => e.deviceId)).size).toBe(1);
    const body = JSON.parse(rx.received[storedCount]!.body) as { public_key: string };
    expect(body.public_key).toBe(rx.received[0]!.deviceId);
  });
});
