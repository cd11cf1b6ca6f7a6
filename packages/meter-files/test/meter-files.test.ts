import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  FILES,
  LEGACY_FILES,
  cleanupTempFiles,
  exampleIoIdStatus,
  exampleRewardBalance,
  exampleState,
  isTempFile,
  legacyFileContents,
  parseState,
  pidAlive,
  readState,
  writeFileAtomic,
  writeFileAtomicSync,
} from '../src/index.js';
import { mkdirSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'meter-files-'));

describe('parseState', () => {
  it('accepts a valid state and round-trips it', () => {
    const state = exampleState();
    const r = parseState(JSON.stringify(state));
    expect(r).toEqual({ ok: true, state });
  });

  it.each([
    ['', 'empty'],
    ['   \n', 'empty'],
    ['{"schema":1,"updatedAtMs":', 'garbage'],
    ['\u0000\u0001binary', 'garbage'],
    ['[1,2,3]', 'garbage'],
    ['{"schema":2}', 'schema'],
    ['{"hello":"world"}', 'schema'],
  ])('reports %j as %s', (text, problem) => {
    const r = parseState(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problem).toBe(problem);
  });

  it('names the first field with the wrong type', () => {
    const bad = { ...exampleState(), publishing: { ...exampleState().publishing, waiting: 'many' } };
    const r = parseState(JSON.stringify(bad));
    expect(r).toMatchObject({ ok: false, problem: 'invalid' });
    if (!r.ok) expect(r.message).toContain('publishing.waiting');
  });

  it("the window's mean voltage and current: optional (older writers omit them), numbers or null when present", () => {
    const w = exampleState().lastWindow!;
    const { busV: _v, currentA: _a, ...older } = w;
    expect(parseState(JSON.stringify(exampleState({ lastWindow: older }))).ok).toBe(true);
    expect(parseState(JSON.stringify(exampleState({ lastWindow: { ...w, busV: null, currentA: null } }))).ok).toBe(true);
    const r = parseState(JSON.stringify({ ...exampleState(), lastWindow: { ...w, currentA: '0.3' } }));
    expect(r).toMatchObject({ ok: false, problem: 'invalid' });
    if (!r.ok) expect(r.message).toContain('lastWindow.currentA');
  });

  it('reward balance and refusals: optional (older writers omit them), validated when present', () => {
    const balance = exampleRewardBalance();
    const publishing = { ...exampleState().publishing, rejected: 3, lastRejection: 'device 0x12 is not registered' };
    const full = exampleState({ rewardBalance: balance, publishing });
    expect(parseState(JSON.stringify(full))).toEqual({ ok: true, state: full });
    expect(parseState(JSON.stringify(exampleState())).ok).toBe(true);
    const bad: Array<[object, string]> = [
      [{ rewardBalance: { ...balance, raw: 4e19 } }, 'rewardBalance.raw'],
      [{ rewardBalance: { ...balance, raw: '-1' } }, 'rewardBalance.raw'],
      [{ rewardBalance: { ...balance, readAtMs: 'now' } }, 'rewardBalance.readAtMs'],
      [{ rewardBalance: { ...balance, intervalMs: null } }, 'rewardBalance.intervalMs'],
      [{ rewardBalance: 'forty' }, 'rewardBalance'],
      [{ publishing: { ...publishing, rejected: '3' } }, 'publishing.rejected'],
      [{ publishing: { ...publishing, lastRejection: 7 } }, 'publishing.lastRejection'],
    ];
    for (const [override, field] of bad) {
      const r = parseState(JSON.stringify({ ...full, ...override }));
      expect(r).toMatchObject({ ok: false, problem: 'invalid', message: `state.json field ${field} is missing or has the wrong type` });
    }
  });

  it('signing (the key in a token): optional (absent with the key file), validated when present', () => {
    const signing = {
      key: 'pkcs11' as const,
      state: 'fault' as const,
      reason: 'wrong PIN (not retried)',
      unsigned: 4,
      pinAttempts: 1,
      sinceMs: 1,
    };
    const full = exampleState({ signing });
    expect(parseState(JSON.stringify(full))).toEqual({ ok: true, state: full });
    const bad: Array<[object, string]> = [
      [{ signing: { ...signing, key: 'file' } }, 'signing.key'],
      [{ signing: { ...signing, state: 'broken' } }, 'signing.state'],
      [{ signing: { ...signing, unsigned: '4' } }, 'signing.unsigned'],
      [{ signing: { ...signing, pinAttempts: null } }, 'signing.pinAttempts'],
      [{ signing: { ...signing, sinceMs: 'now' } }, 'signing.sinceMs'],
      [{ signing: [] }, 'signing'],
    ];
    for (const [override, field] of bad) {
      const r = parseState(JSON.stringify({ ...full, ...override }));
      expect(r).toMatchObject({ ok: false, problem: 'invalid', message: `state.json field ${field} is missing or has the wrong type` });
    }
  });

  it('ioid: optional (absent when not configured), validated when present', () => {
    const ioid = exampleIoIdStatus();
    const full = exampleState({ ioid });
    expect(parseState(JSON.stringify(full))).toEqual({ ok: true, state: full });
    const unread = exampleState({
      ioid: exampleIoIdStatus({
        ioIdContract: null,
        registered: null,
        ioId: null,
        owner: null,
        projectId: null,
        readAtMs: null,
        error: 'RPC unreachable',
      }),
    });
    expect(parseState(JSON.stringify(unread)).ok).toBe(true);
    const bad: Array<[object, string]> = [
      [{ ...ioid, registered: 'yes' }, 'ioid.registered'],
      [{ ...ioid, ioId: 1 }, 'ioid.ioId'],
      [{ ...ioid, did: null }, 'ioid.did'],
      [{ ...ioid, readAtMs: 'now' }, 'ioid.readAtMs'],
      [{ ...ioid, intervalMs: null }, 'ioid.intervalMs'],
    ];
    for (const [value, field] of bad) {
      const r = parseState(JSON.stringify({ ...full, ioid: value }));
      expect(r).toMatchObject({ ok: false, problem: 'invalid', message: `state.json field ${field} is missing or has the wrong type` });
    }
  });

  it('reward tiers: optional (a state.json written before the field existed still parses), validated when present', () => {
    const { tiers: _omitted, ...oldRewards } = exampleState().rewards;
    const old = parseState(JSON.stringify({ ...exampleState(), rewards: oldRewards }));
    expect(old.ok).toBe(true);
    if (old.ok) expect(old.state.rewards.tiers).toBeUndefined();
    const withTiers = parseState(
      JSON.stringify(
        exampleState({
          rewards: {
            tokensPerH: 5,
            total: 1,
            tiers: [
              { belowW: 2, tokensPerH: 10 },
              { belowW: 6, tokensPerH: 5 },
            ],
          },
        }),
      ),
    );
    expect(withTiers.ok && withTiers.state.rewards.tiers).toEqual([
      { belowW: 2, tokensPerH: 10 },
      { belowW: 6, tokensPerH: 5 },
    ]);
    for (const tiers of [
      [],
      [
        { belowW: 5, tokensPerH: 4 },
        { belowW: 3, tokensPerH: 10 },
      ],
      [{ belowW: '3', tokensPerH: 10 }],
      'cheap',
      [null],
    ]) {
      const r = parseState(JSON.stringify({ ...exampleState(), rewards: { tokensPerH: 4, total: 1, tiers } }));
      expect(r).toMatchObject({ ok: false, problem: 'invalid', message: expect.stringContaining('rewards.tiers') });
    }
  });

  it('accepts the states before the first reading (nulls)', () => {
    const s = exampleState({ powerW: null, lastWindow: null, recentAvgPowerW: [] });
    expect(parseState(JSON.stringify(s)).ok).toBe(true);
  });
});

describe('legacy files', () => {
  it('renders the eight original files with their original meaning', () => {
    const s = exampleState();
    const files = legacyFileContents(s, 'Success');
    expect(Object.keys(files).sort()).toEqual([...LEGACY_FILES].sort());
    expect(files[FILES.currentPower]).toBe('4.020');
    expect(files[FILES.avgPower]).toBe('3.980');
    expect(files[FILES.tokensPerH]).toBe('4');
    expect(files[FILES.totalRewards]).toBe('1.25');
    expect(files[FILES.lastIntervalTime]).toBe(String(Math.floor(s.lastWindow!.endMs / 1000)));
    expect(files[FILES.deviceId]).toBe(s.deviceId);
    expect(files[FILES.status]).toBe('Success');
  });

  it('writes zeros, not "null", before the first window', () => {
    const files = legacyFileContents(exampleState({ powerW: null, lastWindow: null }), null);
    expect(files[FILES.currentPower]).toBe('0.000');
    expect(files[FILES.avgPower]).toBe('0.000');
    expect(files[FILES.lastIntervalTime]).toBe('0');
    expect(files[FILES.status]).toBe('');
  });
});

describe('atomic files', () => {
  it('replaces content and leaves no temporary file behind', async () => {
    const dir = tmp();
    await writeFileAtomic(dir, 'a', 'one');
    await writeFileAtomic(dir, 'a', 'two', { durable: true });
    expect(readFileSync(path.join(dir, 'a'), 'utf8')).toBe('two');
    expect(readdirSync(dir)).toEqual(['a']);
  });

  const twins = [
    ['writeFileAtomic', writeFileAtomic],
    ['writeFileAtomicSync', async (...a: Parameters<typeof writeFileAtomicSync>) => writeFileAtomicSync(...a)],
  ] as const;
  for (const [name, write] of twins)
    it(`${name}: replaces, sets the mode, durable or not, and removes its temporary file when the rename fails`, async () => {
      const dir = tmp();
      await write(dir, 'a', 'one', { mode: 0o600 });
      expect(statSync(path.join(dir, 'a')).mode & 0o777).toBe(0o600);
      await write(dir, 'a', Buffer.from('two'), { durable: true });
      expect(readFileSync(path.join(dir, 'a'), 'utf8')).toBe('two');
      // The target is a directory: the rename fails, the error surfaces, no temporary file stays.
      mkdirSync(path.join(dir, 'taken'));
      writeFileSync(path.join(dir, 'taken', 'x'), '');
      await expect(write(dir, 'taken', 'three')).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
      expect(readdirSync(dir).sort()).toEqual(['a', 'taken']);
    });

  for (const [name, write] of twins)
    it(`${name}: exactMode gives the mode whatever the umask (the service's 0027 would make 0644 into 0640)`, async () => {
      const dir = tmp();
      const old = process.umask(0o027);
      try {
        await write(dir, 'follows-umask', 'x', { mode: 0o644 });
        await write(dir, 'exact', 'x', { mode: 0o644, exactMode: true });
        // A file that existed with another mode gets the exact one too (the temporary file carries it).
        await write(dir, 'exact', 'y', { mode: 0o644, exactMode: true });
      } finally {
        process.umask(old);
      }
      expect(statSync(path.join(dir, 'follows-umask')).mode & 0o777).toBe(0o640);
      expect(statSync(path.join(dir, 'exact')).mode & 0o777).toBe(0o644);
    });

  it('a concurrent reader never sees a partial or empty file', async () => {
    const dir = tmp();
    const big = (c: string) => c.repeat(256 * 1024);
    await writeFileAtomic(dir, 'f', big('a'));
    let stop = false;
    const seen = new Set<string>();
    const reader = (async () => {
      while (!stop) {
        const text = readFileSync(path.join(dir, 'f'), 'utf8');
        seen.add(text.length === 256 * 1024 && /^(a+|b+)$/.test(text) ? 'whole' : `bad:${text.length}`);
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let i = 0; i < 30; i++) await writeFileAtomic(dir, 'f', big(i % 2 ? 'a' : 'b'));
    stop = true;
    await reader;
    expect([...seen]).toEqual(['whole']);
  });

  it('cleans up temporary files of dead writers only', async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, '.state.json.tmp-999999-abcd'), '{"half');
    writeFileSync(path.join(dir, '.state.json.tmp-4242-beef'), '{"half');
    writeFileSync(path.join(dir, 'state.json'), '{}');
    expect(isTempFile('.state.json.tmp-999999-abcd')).toBe(true);
    expect(isTempFile('state.json')).toBe(false);
    const removed = await cleanupTempFiles(dir, (pid) => pid === 4242);
    expect(removed).toEqual(['.state.json.tmp-999999-abcd']);
    expect(readdirSync(dir).sort()).toEqual(['.state.json.tmp-4242-beef', 'state.json']);
  });

  it('pidAlive: this process and its parent run, an exited child does not, and no id that kill() would widen to a group counts', () => {
    expect(pidAlive(process.pid)).toBe(true);
    expect(pidAlive(process.ppid)).toBe(true);
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    expect(pidAlive(Number(child.stdout))).toBe(false); // exited and reaped
    // kill(0, 0) and kill(-1, 0) address this process group and every process: never "alive".
    for (const pid of [0, -1, Number.NaN, 1.5]) expect(pidAlive(pid)).toBe(false);
  });

  it('readState reports a missing directory as missing, not as an exception', async () => {
    const r = await readState(path.join(tmp(), 'nope'));
    expect(r).toMatchObject({ ok: false, problem: 'missing' });
  });
});
