import type { Check } from '../check.js';
import { deviceOf } from '../key/meter-key.js';
import type { BackendSettings } from '../settings.js';
import { BalanceReader, safeRpcUrl } from './balance.js';
import { IoIdWatcher, ioIdVerdict } from './ioid.js';

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

/**
 * `doctor`: one read of the device's ioID registration. A device that is not registered (or is
 * registered for another project) fails: the W3bstream node answers every reading of it with 403,
 * and the readings wait in the outbox.
 */
export async function checkIoId(s: BackendSettings): Promise<Check> {
  const name = 'ioid';
  let identity: { deviceId: string; did: string };
  try {
    identity = deviceOf(s);
  } catch (err) {
    return {
      name,
      status: 'fail',
      detail: err instanceof Error ? err.message : String(err),
      fix: 'start the meter once, or run power-meter identity',
    };
  }
  const projectId = s.transport === 'w3bstream-v2' ? s.projectId : '';
  const where = `registry ${s.ioidRegistry.toLowerCase()} on ${safeRpcUrl(s.rpcUrl)}`;
  const watcher = new IoIdWatcher({
    rpcUrl: s.rpcUrl,
    registry: s.ioidRegistry,
    device: identity.deviceId,
    did: identity.did,
    intervalMs: s.ioidIntervalS * 1000,
    onUpdate: () => {},
  });
  const st = await watcher.readOnce();
  const verdict = ioIdVerdict(st, projectId);
  if (st.error !== null)
    return {
      name,
      status: 'fail',
      detail: `${where}: ${st.error}`,
      fix: 'check --rpc-url (the JSON-RPC URL of the chain the registry is on) and --ioid-registry (the ioIDRegistry contract address)',
    };
  if (verdict.ok) return { name, status: 'ok', detail: `${identity.did} ${verdict.text} (${where})` };
  return {
    name,
    status: 'fail',
    detail: `${identity.did} ${verdict.text} (${where})`,
    fix: st.registered
      ? `the device's ioID belongs to project ${st.projectId}: publish with --project-id ${st.projectId}, or register the device for project ${projectId || 'yours'} with a new identity`
      : 'the owner registers the device: power-meter ioid permit --owner <owner wallet> --registry <registry> --rpc-url <url> --json prints the signature and DID document that ioIDRegistry.register takes (README "Registering the meter in ioID")',
  };
}
