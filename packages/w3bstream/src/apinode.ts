import { keccak_256 } from '@noble/hashes/sha3.js';

/**
 * What the current W3bstream 2 node ("apinode", `iotexproject/w3bstream`
 * `service/apinode/api/http.go` and `service/apinode/db/`, docs/w3bstream.md section 9a) says and
 * computes, in one place: the meter's classifier, the dev apinode and the chain-watching approval
 * all use these, so a text or a formula changes once. Pure.
 */

/** The routes: `POST` a task, `GET` its states (`/v1/task/<taskID>`). */
export const TASK_ROUTE = '/v1/task';
/** The older node's (v0.16.x) message route, still spoken to self-hosted older nodes. */
export const MESSAGE_ROUTE = '/message';

/**
 * The node's `{"error": …}` texts for `POST /v1/task`, in the order it checks (createTask). Each
 * is the start of the text: the node wraps the inner error after a colon (`errors.Wrap`).
 */
export const APINODE_ERRORS = {
  /** 400: gin's ShouldBindJSON (the decoder, then `binding:"required"`). */
  badRequest: 'invalid request payload',
  /** 400: `projectID` is not a decimal big integer. */
  badProjectId: 'failed to decode project id string',
  /** 400: `hexutil.Decode` of the signature. */
  badSignatureHex: 'failed to decode signature',
  /** 400: the project manager does not know the project (not registered on chain, or its file unreadable). */
  unknownProject: 'failed to get project',
  /** 400: the project has no config of that version. */
  unknownVersion: 'failed to get project config',
  /** 400: re-marshalling or hashing failed. */
  hashFailed: 'failed to hash request',
  /** 400: neither recovery id gives a key. */
  recoverFailed: 'invalid signature; could not recover public key',
  /** 500: the device table could not be read. */
  approvalLookupFailed: 'failed to check device permission',
  /** 403: no recovered address is approved for the project (not registered through ioID). */
  notApproved: 'device does not have permission',
  /** 500: the task store failed. */
  saveFailed: 'could not save task',
} as const;

/**
 * Which devices the node lets send tasks to which project: the node keeps a table of (project,
 * device) filled from the ioID contract's `CreateIoID` events and `DeviceProject(address)`
 * (service/apinode/db/sqlite.go, `IsDeviceApproved`), and answers 403 "device does not have
 * permission" to anyone else. The seam between a node stand-in and whatever decides it (settings,
 * or a chain followed as the node follows it).
 */
export interface DeviceApprovals {
  /**
   * Whether `address` (`0x` + 40 hex, lower case: the address recovered from the signature) is
   * approved for `projectId` (canonical decimal, no leading zeros). The node asks once per
   * recovery id (0, then 1) and takes the first approved address. A rejection (a thrown error)
   * is answered 500 "failed to check device permission", as the node does when its table fails.
   */
  isApproved(address: string, projectId: string): boolean | Promise<boolean>;
  /** Stops whatever the implementation runs (a chain watcher); optional. */
  close?(): void | Promise<void>;
}

/** One `--approve` entry: a device address approved for one project. */
export interface Approval {
  /** `0x` + 40 hex, lower case. */
  address: string;
  /** Canonical decimal. */
  projectId: string;
}

/** The inner text of `project.Config(version)` when the version is unknown. */
export const PROJECT_CONFIG_MISSING = 'project config not exist';

/**
 * The task states `GET /v1/task/<id>` lists, in the order they happen: `packed` (the node stored
 * the task), `assigned` (a prover took it; `prover_id` = `did:io:<address>`), `settled` (the
 * proof is on chain; `transaction_hash`), `failed` (the prover gave up; `error`). `error` is the
 * node's own lookup failing (`error`), not the task's fate.
 */
export const TASK_STATES = ['packed', 'assigned', 'settled', 'failed', 'error'] as const;
export type TaskStateName = (typeof TASK_STATES)[number];

/**
 * The node's taskID for a signature: keccak256 of the 64-byte r||s followed by the recovery id
 * of the key it approved (0 or 1; it tries both), as `0x` + 64 lower-case hex
 * (`crypto.Keccak256Hash(sig).String()`).
 */
export function taskIdOf(signature64: Uint8Array, recoveryId: 0 | 1): string {
  if (signature64.length !== 64) throw new RangeError(`a task signature is 64 bytes r||s, not ${signature64.length}`);
  const withV = new Uint8Array(65);
  withV.set(signature64, 0);
  withV[64] = recoveryId;
  return `0x${Buffer.from(keccak_256(withV)).toString('hex')}`;
}

/** Both taskIDs the node can answer for a 64-byte signature (recovery id 0, then 1). */
export function possibleTaskIds(signature64: Uint8Array): [string, string] {
  return [taskIdOf(signature64, 0), taskIdOf(signature64, 1)];
}
