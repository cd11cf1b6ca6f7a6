import type { Command } from 'commander';
import { EXIT } from '@power-meter/service';
import {
  TRANSPORT_NAMES,
  V2_DIALECTS,
  parseTaskProjectId,
  type Approval,
  type DeviceApprovals,
  type TransportName,
  type V2Dialect,
} from '@power-meter/w3bstream';
import { parseApproval, staticApprovals } from './approvals.js';
import type { DevAnswerMode } from './exchange.js';
import { DEV_ANSWER_MODES, startDevReceiver } from './receiver.js';
import { DEV_ANSWER_MODES_TASK, type DevProject } from './receiver-task.js';
import { DEV_ANSWER_MODES_V2 } from './receiver-v2.js';

/**
 * What the program that offers the command (`power-meter dev-receiver`) gives it: its log line,
 * its way to stop with an exit status (its logger words the line), and approvals that follow an
 * ioID contract on a chain as the node does (`--ioid-contract`: the backend's chain reader).
 */
export interface DevReceiverCommandIo {
  log(line: string): void;
  fail(message: string, code?: number): never;
  chainApprovals(options: {
    rpcUrl: string;
    ioIdContract: string;
    fromBlock: number;
    log: (line: string) => void;
  }): Promise<DeviceApprovals>;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/**
 * The dev receiver's options, their checks (exit 2 with one message) and its start, added to the
 * command the program names (`power-meter dev-receiver`): the program loads this package only
 * when that command runs, so a runtime-only installation, which has no development package, runs
 * without it. Stops on SIGTERM and SIGINT.
 */
export function defineDevReceiverCommand(cmd: Command, io: DevReceiverCommandIo): Command {
  const { log, fail } = io;
  return cmd
    .option('--port <n>', 'TCP port on 127.0.0.1 (default: 8080; 0 = any free port)', '8080')
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option(
      '--transport <name>',
      'the node to stand in for: w3bstream-v1 (event route, token) or w3bstream-v2 (the apinode: POST /v1/task, or /message with --dialect message)',
      'w3bstream-v1',
    )
    .option(
      '--dialect <api>',
      'w3bstream-v2: task (POST /v1/task, GET /v1/task/<id>: the current node) or message (POST /message: nodes before v0.17)',
      'task',
    )
    .option('--project <name>', 'project name in the route /srv-applet-mgr/v0/event/<project> (v1)', 'demo')
    .option(
      '--token <token>',
      'publisher token to accept (default: env DEV_RECEIVER_TOKEN or "dev-token"; a local test value, not a real secret)',
    )
    .option('--record <file>', 'append every received message to this JSON-lines file')
    .option(
      '--answer <mode>',
      `answer every request like this (the node's failure answers and what stands in front of a node): v1 ${DEV_ANSWER_MODES.join(', ')}; v2 task ${DEV_ANSWER_MODES_TASK.join(', ')}; v2 message ${DEV_ANSWER_MODES_V2.join(', ')} (no-applet: an empty taskID, the node aggregating; wait-timeout: 500, the node cannot store; not-from-node: a taskID the node would not compute)`,
      'normal',
    )
    .option(
      '--ioid-contract <0x…>',
      "W3bstream 2: approve devices as the node does, from this ioID contract's CreateIoID events and deviceProject (needs --rpc-url; `power-meter ioid status` prints the contract)",
    )
    .option('--rpc-url <url>', 'W3bstream 2 with --ioid-contract: the JSON-RPC URL of the chain the ioID contract is on')
    .option('--from-block <n>', 'W3bstream 2 with --ioid-contract: the first block whose events are read', '0')
    .option(
      '--approve <device:project>',
      'w3bstream-v2 task: approve this device (0x + 40 hex) for this project ID, as an ioID registration does (repeatable); devices not named get 403 "device does not have permission"',
      collect,
    )
    .option(
      '--approve-after <seconds>',
      'w3bstream-v2 task: the --approve devices are refused (403) until this long after their first task',
    )
    .option('--approve-all', 'w3bstream-v2 task: every device for every project (the default when no --approve is given)')
    .option(
      '--project-id <id>',
      'w3bstream-v2 task: a project the node knows (repeatable; default: any project); others get 400 "failed to get project"',
      collect,
    )
    .option(
      '--project-version <v>',
      'w3bstream-v2 task: the versions the --project-id projects have (repeatable; default: any); others get 400 "failed to get project config"',
      collect,
    )
    .option(
      '--signed-keys <keys>',
      "w3bstream-v2 task: the payload members the --project-id projects' config signs (e.g. timestamp, as Pebble's)",
      '',
    )
    .option(
      '--task-outcome <state>',
      'w3bstream-v2 task: where every task ends for GET /v1/task/<id>: settled, failed or packed',
      'settled',
    )
    .option('--task-step <ms>', "w3bstream-v2 task: time between a task's states (packed, assigned, settled/failed)", '2000')
    .action(
      async (o: {
        port: string;
        host: string;
        project: string;
        token?: string;
        record?: string;
        answer: string;
        transport: string;
        ioidContract?: string;
        rpcUrl?: string;
        fromBlock: string;
        dialect: string;
        approve?: string[];
        approveAfter?: string;
        approveAll?: boolean;
        projectId?: string[];
        projectVersion?: string[];
        signedKeys: string;
        taskOutcome: string;
        taskStep: string;
      }) => {
        const bad = (name: string, value: unknown, allowed: string): never =>
          fail(`invalid setting --${name} = ${JSON.stringify(value)}: allowed ${allowed}`, EXIT.badSettings);
        const port = Number(o.port);
        if (!/^\d+$/.test(o.port) || port > 65535) bad('port', o.port, '0-65535');
        if (!(TRANSPORT_NAMES as readonly string[]).includes(o.transport)) bad('transport', o.transport, TRANSPORT_NAMES.join(' or '));
        if (!(V2_DIALECTS as readonly string[]).includes(o.dialect)) bad('dialect', o.dialect, V2_DIALECTS.join(' or '));
        const v2 = o.transport === 'w3bstream-v2';
        const taskApi = v2 && o.dialect === 'task';
        const modes: readonly string[] = !v2 ? DEV_ANSWER_MODES : taskApi ? DEV_ANSWER_MODES_TASK : DEV_ANSWER_MODES_V2;
        if (!modes.includes(o.answer))
          bad('answer', o.answer, `${modes.join(', ')} (with --transport ${o.transport}${v2 ? ` --dialect ${o.dialect}` : ''})`);
        let approve: Approval[] = [];
        try {
          approve = (o.approve ?? []).map(parseApproval);
        } catch (err) {
          bad('approve', (err as Error).message, '<device address 0x + 40 hex>:<project ID>');
        }
        const afterS = o.approveAfter === undefined ? undefined : Number(o.approveAfter);
        if (afterS !== undefined && !(Number.isFinite(afterS) && afterS >= 0)) bad('approve-after', o.approveAfter, 'seconds >= 0');
        if (afterS !== undefined && approve.length === 0)
          bad('approve-after', o.approveAfter, 'with --approve <device:project> (the devices it delays)');
        if (!['settled', 'failed', 'packed'].includes(o.taskOutcome)) bad('task-outcome', o.taskOutcome, 'settled, failed or packed');
        const stepMs = Number(o.taskStep);
        if (!(Number.isFinite(stepMs) && stepMs >= 0)) bad('task-step', o.taskStep, 'milliseconds >= 0');
        const keys = o.signedKeys
          .split(',')
          .map((k) => k.trim())
          .filter((k) => k !== '');
        let projects: DevProject[] | null = null;
        try {
          projects =
            o.projectId === undefined
              ? null
              : o.projectId.map((p) => ({ projectId: parseTaskProjectId(p), versions: o.projectVersion ?? [], signedKeys: keys }));
        } catch (err) {
          bad('project-id', (err as Error).message, 'a whole number from 1 to 2^256-1');
        }
        const approveAll = o.approveAll === true || approve.length === 0;
        let approvals: DeviceApprovals | undefined;
        if (o.ioidContract !== undefined || o.rpcUrl !== undefined) {
          if (approve.length > 0 || o.approveAll === true)
            bad(
              'ioid-contract',
              o.ioidContract ?? '',
              'either --ioid-contract (approvals from the chain) or --approve/--approve-all, not both',
            );
          if (!taskApi)
            bad(
              'ioid-contract',
              o.ioidContract ?? '',
              'with --transport w3bstream-v2 --dialect task (the /message node checks no registration)',
            );
          if (o.transport !== 'w3bstream-v2')
            fail('invalid setting --ioid-contract: ioID approvals are for --transport w3bstream-v2', EXIT.badSettings);
          if (o.ioidContract === undefined || !/^0x[0-9a-fA-F]{40}$/.test(o.ioidContract))
            fail(
              `invalid setting --ioid-contract = ${JSON.stringify(o.ioidContract ?? '')}: allowed 0x + 40 hex digits, with --rpc-url`,
              EXIT.badSettings,
            );
          if (o.rpcUrl === undefined || !/^https?:\/\//.test(o.rpcUrl))
            fail('invalid setting --rpc-url = "<hidden>": allowed an http(s) JSON-RPC URL, with --ioid-contract', EXIT.badSettings);
          if (!/^\d{1,15}$/.test(o.fromBlock))
            fail(`invalid setting --from-block = ${JSON.stringify(o.fromBlock)}: allowed a block number`, EXIT.badSettings);
          try {
            approvals = await io.chainApprovals({ rpcUrl: o.rpcUrl!, ioIdContract: o.ioidContract!, fromBlock: Number(o.fromBlock), log });
          } catch (err) {
            fail(`cannot read the ioID contract's events: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
        const r = await startDevReceiver({
          transport: o.transport as TransportName,
          dialect: o.dialect as V2Dialect,
          port,
          host: o.host,
          project: o.project,
          token: o.token ?? process.env.DEV_RECEIVER_TOKEN ?? 'dev-token',
          recordFile: o.record,
          mode: o.answer as DevAnswerMode,
          approvals:
            approvals ?? staticApprovals({ approve, approveAll, approveAfterMs: afterS === undefined ? undefined : afterS * 1000 }),
          projects,
          taskOutcome: o.taskOutcome as 'settled' | 'failed' | 'packed',
          taskStepMs: stepMs,
          log,
        });
        log(`dev-receiver listening publish_url=${r.url}`);
        if (taskApi && approvals === undefined)
          log(
            approveAll
              ? "approvals: every device for every project (name devices with --approve to get the node's 403 for the others)"
              : `approvals: ${approve.map((a) => `${a.address} for project ${a.projectId}`).join(', ')}${afterS === undefined ? '' : ` after ${afterS} s`}; other devices get 403`,
          );
        const stop = (): void => void r.close().then(() => process.exit(0));
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      },
    );
}
