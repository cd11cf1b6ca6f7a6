import { join } from 'node:path';
import { EXIT } from '@power-meter/service';
import {
  IdentityError,
  IdentityMissingError,
  didDocument,
  didDocumentHash,
  didDocumentText,
  TokenError,
  loadIdentity,
  signIoIdPermitWith,
  type Identity,
} from '@power-meter/w3bstream';
import { deviceOf, fileKey, openMeterKey, type MeterKey } from './key/meter-key.js';
import { TokenKeyError, describeTokenFault } from './key/token-key.js';
import { requireSecp256k1Key } from './transport.js';
import { identityErrorText } from './hints.js';
import { type IoIdReading, ioIdVerdict, readIoIdNonce, readIoIdStatus } from './chain/ioid.js';
import { JsonRpc, safeRpcUrl } from './chain/rpc.js';
import type { BackendSettings } from './settings.js';

/**
 * `power-meter ioid permit` and `ioid status`: the device's side of an ioID registration
 * (docs/w3bstream.md "ioID"). The key never leaves the meter: the owner gets a signature, the DID
 * and the DID document, and sends `ioIDRegistry.register` from their own wallet.
 */
export interface CommandResult {
  exit: number;
  /** Lines for stdout (the result) and stderr (why it failed). */
  out: string[];
  err: string[];
}

export interface PermitFlags {
  owner?: string;
  /** `--registry`; default the --ioid-registry setting. */
  registry?: string;
  chainId?: string;
  nonce?: string;
  json?: boolean;
}

const ok = (out: string[]): CommandResult => ({ exit: EXIT.ok, out, err: [] });
const bad = (err: string, exit: number = EXIT.badSettings): CommandResult => ({ exit, out: [], err: [err] });

/**
 * The meter's key for ioID: an existing secp256k1 key (the key file, or with --key-uri the key in
 * the PKCS#11 token, never created here), or a message saying how to get one.
 */
async function ioIdKey(s: BackendSettings, opts: { secp256k1: boolean }): Promise<MeterKey | CommandResult> {
  if (s.keyUri === '') {
    const id = ioIdIdentity(s, opts);
    return isResult(id) ? id : fileKey(id);
  }
  let key: MeterKey;
  try {
    key = await openMeterKey(s, { log: () => {}, warn: () => {}, pin: process.env.POWER_METER_PKCS11_PIN ?? '', curve: 'secp256k1' });
  } catch (err) {
    if (err instanceof TokenError || err instanceof TokenKeyError) {
      const w = describeTokenFault(err.kind, err.message);
      return bad(`signing key: ${w.reason}: ${w.advice}`);
    }
    throw err;
  }
  const ks = key.status();
  if (ks.state === 'fault') {
    await key.close();
    return bad(`signing key: ${ks.reason}: ${ks.advice}`);
  }
  if (opts.secp256k1) {
    try {
      requireSecp256k1Key(key, 'ioID (the registry recovers the device with ecrecover)');
    } catch (err) {
      await key.close();
      return bad((err as Error).message);
    }
  }
  return key;
}

/** The key file's identity for ioID: an existing secp256k1 key, or a message saying how to get one. */
function ioIdIdentity(s: BackendSettings, opts: { secp256k1: boolean } = { secp256k1: true }): Identity | CommandResult {
  const dir = join(s.dataDir, 'identity');
  const create = `power-meter identity --curve secp256k1 --data-dir ${s.dataDir}`;
  let id: Identity;
  try {
    id = loadIdentity(dir);
  } catch (err) {
    if (err instanceof IdentityMissingError)
      return bad(
        `no device identity in ${dir}: create a secp256k1 one with "${create}" (or start the meter once with --transport w3bstream-v2)`,
        EXIT.failure,
      );
    if (err instanceof IdentityError) return bad(err.message, EXIT.failure);
    throw err;
  }
  if (opts.secp256k1 && id.curve !== 'secp256k1')
    return bad(
      `the device identity ${id.keyFile} is a P-256 key, and ioID registers a device by recovering a secp256k1 signature (ecrecover), as the W3bstream node does. The key is not replaced (its address may be registered elsewhere): stop the meter, move ${dir} away (keep it as a backup), then run "${create}" to create a secp256k1 identity, and run this command again`,
    );
  return id;
}

function decimal(raw: string | undefined, what: string, flag: string): bigint | CommandResult | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,78}$/.test(raw) || BigInt(raw) >= 1n << 256n) return bad(`invalid setting ${flag} = ${JSON.stringify(raw)}: allowed ${what}`);
  return BigInt(raw);
}

const isResult = (v: unknown): v is CommandResult => typeof v === 'object' && v !== null && 'exit' in v;

export async function ioIdPermitCommand(s: BackendSettings, f: PermitFlags): Promise<CommandResult> {
  const owner = f.owner ?? '';
  if (!/^0x[0-9a-fA-F]{40}$/.test(owner))
    return bad(
      `invalid setting --owner = ${JSON.stringify(owner)}: allowed the owner's wallet, 0x + 40 hex digits (the account that will send ioIDRegistry.register)`,
    );
  const registry = f.registry ?? s.ioidRegistry;
  if (!/^0x[0-9a-fA-F]{40}$/.test(registry))
    return bad(`invalid setting --registry = ${JSON.stringify(registry)}: allowed the ioIDRegistry contract address, 0x + 40 hex digits`);
  const chainFlag = decimal(f.chainId, 'a chain id, a whole number (IoTeX: 4689 mainnet, 4690 testnet)', '--chain-id');
  const nonceFlag = decimal(
    f.nonce,
    "the registry's nonces(device) for this device, a whole number (0 for a device never registered)",
    '--nonce',
  );
  if (isResult(chainFlag)) return chainFlag;
  if (isResult(nonceFlag)) return nonceFlag;
  if (s.rpcUrl === '' && (chainFlag === undefined || nonceFlag === undefined))
    return bad(
      `invalid setting --rpc-url = "": allowed the chain's JSON-RPC URL, to read the chain id and nonces(device) from the registry; without it give both --chain-id and --nonce`,
    );
  const id = await ioIdKey(s, { secp256k1: true });
  if (isResult(id)) return id;
  try {
    return await permitWith(s, f, id, { owner, registry, chainFlag, nonceFlag });
  } finally {
    await id.close();
  }
}

async function permitWith(
  s: BackendSettings,
  f: PermitFlags,
  id: MeterKey,
  a: { owner: string; registry: string; chainFlag: bigint | undefined; nonceFlag: bigint | undefined },
): Promise<CommandResult> {
  const { owner, registry } = a;
  let chainId = a.chainFlag;
  let nonce = a.nonceFlag;
  if (s.rpcUrl !== '') {
    const rpc = new JsonRpc(s.rpcUrl);
    try {
      const onChain = BigInt(await rpc.request<string>('eth_chainId', []));
      if (chainId !== undefined && chainId !== onChain)
        return bad(
          `--chain-id ${chainId} is not the chain at ${safeRpcUrl(s.rpcUrl)} (its chain id is ${onChain}): a permit for another chain is refused by the registry`,
        );
      chainId = onChain;
      nonce ??= await readIoIdNonce(rpc, registry, id.deviceId);
    } catch (err) {
      return bad(`cannot read the chain id and nonce from ${safeRpcUrl(s.rpcUrl)}: ${(err as Error).message}`, EXIT.failure);
    }
  }
  const permit = await signIoIdPermitWith(id.signer, id.deviceId, {
    owner,
    nonce: nonce!,
    chainId: chainId!,
    registry,
  });
  const doc = didDocument(id);
  const text = didDocumentText(doc);
  const hash = didDocumentHash(text);
  const signature = `${permit.r}${permit.s.slice(2)}${permit.v.toString(16)}`;
  if (f.json)
    return ok([JSON.stringify({ ...permit, signature, did: id.did, didDocument: doc, didDocumentText: text, didDocumentHash: hash })]);
  return ok([
    `device          ${permit.device}`,
    `did             ${id.did}`,
    `owner           ${permit.owner}`,
    `registry        ${permit.registry} (chain ${permit.chainId})`,
    `nonce           ${permit.nonce}`,
    `v               ${permit.v}`,
    `r               ${permit.r}`,
    `s               ${permit.s}`,
    `document hash   ${hash} (sha256 of the DID document below, byte for byte)`,
    'DID document:',
    text,
    '',
    `The owner ${permit.owner} stores the document (exactly these bytes) at a URI and sends, from that wallet:`,
    `  ioIDRegistry(${permit.registry}).register(deviceContract, tokenId, ${permit.device}, ${hash}, <uri>, ${permit.v}, ${permit.r}, ${permit.s})`,
    "where deviceContract/tokenId are a device NFT of the project that the owner holds and has approved the registry to move. The signature is valid while the registry's nonce for this device stays " +
      `${permit.nonce}.`,
  ]);
}

export async function ioIdStatusCommand(s: BackendSettings, f: { registry?: string; json?: boolean }): Promise<CommandResult> {
  if (s.rpcUrl === '') return bad('invalid setting --rpc-url = "": allowed the JSON-RPC URL of the chain the ioID registry is on');
  const registry = f.registry ?? s.ioidRegistry;
  if (!/^0x[0-9a-fA-F]{40}$/.test(registry))
    return bad(`invalid setting --registry = ${JSON.stringify(registry)}: allowed the ioIDRegistry contract address, 0x + 40 hex digits`);
  let id: { deviceId: string; did: string };
  try {
    id = deviceOf(s);
  } catch (err) {
    if (err instanceof IdentityError) return bad(identityErrorText(err), EXIT.failure);
    if (s.keyUri !== '') return bad((err as Error).message, EXIT.failure);
    throw err;
  }
  let r: IoIdReading;
  try {
    r = await readIoIdStatus(new JsonRpc(s.rpcUrl), registry, id.deviceId);
  } catch (err) {
    return bad(`cannot read the ioID status from ${safeRpcUrl(s.rpcUrl)}: ${(err as Error).message}`, EXIT.failure);
  }
  const projectId = s.transport === 'w3bstream-v2' ? s.projectId : '';
  const verdict = ioIdVerdict({ ...r, error: null }, projectId);
  if (f.json)
    return ok([JSON.stringify({ device: id.deviceId, did: id.did, registry: registry.toLowerCase(), ...r, approved: verdict.ok })]);
  return ok([
    `device     ${id.deviceId}`,
    `did        ${id.did}`,
    `registry   ${registry.toLowerCase()} (ioID contract ${r.ioIdContract})`,
    `status     ${verdict.text}`,
  ]);
}
