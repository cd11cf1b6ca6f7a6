import { describe, expect, it } from 'vitest';
import { ApprovalSyntaxError, parseApproval, staticApprovals } from '../src/index.js';

const DEV = `0x${'ab'.repeat(20)}`;

describe('DeviceApprovals from settings (approvals.ts)', () => {
  it('parses 0x…:<project>, lower-cases the address and canonicalises the project', () => {
    expect(parseApproval(`${DEV.toUpperCase().replace('0X', '0x')}:0042`)).toEqual({ address: DEV, projectId: '42' });
    for (const bad of [`${DEV}:0`, `${DEV}:`, `${DEV.slice(0, 41)}:1`, '42', `${DEV}:1:2`, `${DEV}:${2n ** 256n}`])
      expect(() => parseApproval(bad), bad).toThrow(ApprovalSyntaxError);
    expect(parseApproval(`${DEV}:${2n ** 256n - 1n}`).projectId).toBe(String(2n ** 256n - 1n));
  });

  it('approves the named pairs only, every pair with approveAll, and one more at run time', () => {
    const a = staticApprovals({ approve: [{ address: DEV, projectId: '42' }] });
    expect([a.isApproved(DEV, '42'), a.isApproved(DEV, '43'), a.isApproved(`0x${'cd'.repeat(20)}`, '42')]).toEqual([true, false, false]);
    a.approve(`0x${'CD'.repeat(20)}`, '42');
    expect(a.isApproved(`0x${'cd'.repeat(20)}`, '42')).toBe(true);
    expect(staticApprovals({ approveAll: true }).isApproved(DEV, '7')).toBe(true);
    expect(staticApprovals().isApproved(DEV, '7')).toBe(false);
  });

  it('with a delay, a named pair is refused until that long after it was first asked about', () => {
    let t = 1000;
    const a = staticApprovals({ approve: [{ address: DEV, projectId: '42' }], approveAfterMs: 14_000, now: () => t });
    expect(a.isApproved(DEV, '42')).toBe(false);
    t += 13_999;
    expect(a.isApproved(DEV, '42')).toBe(false);
    expect(a.isApproved(`0x${'ee'.repeat(20)}`, '42')).toBe(false);
    t += 1;
    expect(a.isApproved(DEV, '42')).toBe(true);
    // Never a device that was not named, however long it asks.
    t += 1e9;
    expect(a.isApproved(`0x${'ee'.repeat(20)}`, '42')).toBe(false);
  });
});
