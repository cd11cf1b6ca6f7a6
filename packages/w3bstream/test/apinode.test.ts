import { keccak_256 } from '@noble/hashes/sha3.js';
import { describe, expect, it } from 'vitest';
import { possibleTaskIds, taskIdOf } from '../src/index.js';

describe('the node facts in one place (apinode.ts)', () => {
  it('taskID = keccak256(r||s||v) as 0x + 64 lower-case hex, for v 0 and 1', () => {
    const sig = Uint8Array.from({ length: 64 }, (_, i) => i);
    const withV = (v: number) => `0x${Buffer.from(keccak_256(Uint8Array.from([...sig, v]))).toString('hex')}`;
    expect(taskIdOf(sig, 0)).toBe(withV(0));
    expect(taskIdOf(sig, 1)).toBe(withV(1));
    expect(possibleTaskIds(sig)).toEqual([withV(0), withV(1)]);
    expect(taskIdOf(sig, 0)).toMatch(/^0x[0-9a-f]{64}$/);
    expect(() => taskIdOf(new Uint8Array(65), 0)).toThrow(/64 bytes/);
  });
});
