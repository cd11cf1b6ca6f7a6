import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readState } from '@power-meter/meter-files';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, type Proc, start } from './support/processes.js';

const procs: Proc[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
});

describe('npm run demo -- --chain --transport w3bstream-v2', () => {
  it('the node refuses the unregistered meter, the owner registers it with its permit, then its readings go through', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'demo-ioid-'));
    const p = start(join(ROOT, 'scripts/demo.mjs'), [
      ...['--chain', '--transport', 'w3bstream-v2', '--load', '3', '--window', '1'],
      ...['--register-after', '6', '--no-preview', '--dir', dir],
    ]);
    procs.push(p);
    // No fixed duration: the demo runs until a reading went through after the registration.
    await p.waitFor(/with its permit[\s\S]*task 0x[0-9a-f]{8}… +verified/, 90_000);
    expect(await p.stop('SIGTERM')).toBe(0);
    const out = p.output();
    const refused = out.search(/nonce 1 +REFUSED \(device does not have permission\)/);
    const registered = out.search(/the owner registered 0x[0-9a-f]{40} \(did:io:0x[0-9a-f]{40}\) with its permit/);
    const delivered = out.search(/task 0x[0-9a-f]{8}… +verified/);
    expect(refused, out).toBeGreaterThan(0);
    expect(registered).toBeGreaterThan(refused);
    expect(delivered).toBeGreaterThan(registered);
    const state = await readState(join(dir, 'data'));
    expect(state.ok && state.state.ioid).toMatchObject({ registered: true, projectId: '1' });
  }, 120_000);
});
