import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readBoundedFile, readBoundedFileSync } from '../src/index.js';

describe('bounded reads', () => {
  it('never opens a device or a FIFO, even through a symlink, and never blocks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bounded-'));
    symlinkSync('/dev/zero', join(dir, 'zero'));
    symlinkSync('/dev/urandom', join(dir, 'random'));
    expect(spawnSync('mkfifo', [join(dir, 'fifo')]).status).toBe(0);
    for (const name of ['zero', 'random', 'fifo']) {
      const r = await readBoundedFile(join(dir, name), 1024);
      expect(r).toMatchObject({ ok: false, code: 'not-regular' });
      expect(readBoundedFileSync(join(dir, name), 1024)).toMatchObject({ ok: false, code: 'not-regular' });
    }
  });

  it('reads all of a file that holds more than fstat said (it grew meanwhile), still within the cap', async () => {
    // /proc files are regular files whose fstat size is 0 however much they hold: the read
    // buffer sized to the file must grow, up to the cap and no further.
    const file = '/proc/self/cmdline'; // the same bytes for the async and the sync read in this process
    const whole = readFileSync(file, 'utf8');
    expect(whole.length).toBeGreaterThan(10);
    expect(await readBoundedFile(file, 4096)).toEqual({ ok: true, text: whole });
    expect(readBoundedFileSync(file, 4096)).toEqual({ ok: true, text: whole });
    expect(await readBoundedFile(file, 10)).toMatchObject({ ok: false, code: 'too-big' });
    expect(readBoundedFileSync(file, 10)).toMatchObject({ ok: false, code: 'too-big' });
  });

  it('reads a regular file (also through a symlink) up to the cap, and refuses a bigger one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bounded-'));
    writeFileSync(join(dir, 'small'), 'hello');
    symlinkSync(join(dir, 'small'), join(dir, 'link'));
    writeFileSync(join(dir, 'big'), Buffer.alloc(2048, 65));
    expect(await readBoundedFile(join(dir, 'link'), 1024)).toEqual({ ok: true, text: 'hello' });
    expect(readBoundedFileSync(join(dir, 'small'), 5)).toEqual({ ok: true, text: 'hello' });
    expect(await readBoundedFile(join(dir, 'big'), 1024)).toMatchObject({ ok: false, code: 'too-big' });
    expect(await readBoundedFile(join(dir, 'none'), 1024)).toMatchObject({ ok: false, code: 'missing' });
  });
});
