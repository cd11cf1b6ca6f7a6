import type { Check } from '../doctor.js';
import type { BackendSettings } from '../settings.js';
import { BalanceReader, safeRpcUrl } from './balance.js';

/** `doctor`: one read of the owner's reward balance, as the daemon would make it. */
export async function checkRewardBalance(s: BackendSettings): Promise<Check> {
  const reader = new BalanceReader({
    rpcUrl: s.rpcUrl,
    token: s.rewardToken,
    owner: s.walletAddress,
    intervalMs: s.balanceIntervalS * 1000,
    onUpdate: () => {},
  });
  const b = await reader.readOnce();
  const where = `token ${b.token} on ${safeRpcUrl(s.rpcUrl)}`;
  if (b.error === null) return { name: 'reward-balance', status: 'ok', detail: `${b.owner} holds ${b.tokens} (${where})` };
  return {
    name: 'reward-balance',
    status: 'fail',
    detail: `${where}: ${b.error}`,
    fix: 'check --rpc-url (the JSON-RPC URL of the chain the token is deployed on) and --reward-token (its contract address); measuring and delivery do not depend on it',
  };
}
