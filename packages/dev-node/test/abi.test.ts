import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Address,
  AppletHost,
  appletWasmFile,
  encodeCall,
  ensureArtifacts,
  type LocalChain,
  RewardSystem,
  rpc,
  startLocalChain,
} from '../src/index.js';
import { probeProject, publish, wasmLogs } from './helpers.js';

// One test per host function: the probe applet (built with the real SDK) calls it, and the
// test checks both what the applet saw (its ws_log lines) and what the host did.
let chain: LocalChain;
let rewards: RewardSystem;
let host: AppletHost;
let operator: Address;

beforeAll(async () => {
  ensureArtifacts();
  chain = await startLocalChain();
  const [admin, op] = chain.accounts as [Address, Address];
  operator = op;
  rewards = await RewardSystem.deploy(chain.rpcUrl, chain.chainId, admin, operator);
  const project = probeProject({
    envs: {
      env: [
        ['GREETING', 'hello from the project env'],
        ['CHAIN_ID', String(chain.chainId)],
      ],
    },
    chains: [{ chainID: chain.chainId, name: 'local', endpoint: chain.rpcUrl }],
    operators: [
      { name: 'default', address: operator },
      { name: 'treasurer', address: chain.accounts[5]! },
    ],
  });
  // A second applet in the same project, for the host functions the SDK wraps in newer versions.
  project.applets.push({
    appletName: 'sql-probe',
    wasmFile: appletWasmFile('sql-probe'),
    strategies: [
      { eventType: 'api_call', handler: 'api_call' },
      { eventType: 'send_tx_with_operator', handler: 'send_tx_with_operator' },
      { eventType: 'submit_metrics', handler: 'submit_metrics' },
      { eventType: 'API_RESULT', handler: 'on_event' },
    ],
  });
  host = await AppletHost.start(project, { apiStateCheckMs: 200 });
}, 300_000);

afterAll(async () => {
  await host?.close();
  await chain?.stop();
});

async function ok(handler: string, body: string): Promise<void> {
  const a = await publish(host, handler, body);
  expect(a.status).toBe(201);
  expect(a.body.results).toEqual([{ appletName: 'abi-probe', instanceID: '1', handler, returnValue: null, code: 0 }]);
}

describe('host functions', () => {
  it('ws_log: the applet’s text at the SDK’s info level', async () => {
    await ok('probe_log', '');
    expect(host.logs).toContainEqual(
      expect.objectContaining({ src: 'wasm', level: 4, handler: 'probe_log', message: 'hello from the applet' }),
    );
  });

  it('ws_get_data: the event body, byte for byte, copied in through alloc', async () => {
    await ok('probe_get_data', '{"x":"héllo ⚡"}');
    expect(wasmLogs(host, 'probe_get_data')).toEqual(['data:{"x":"héllo ⚡"}']);
  });

  it('ws_get_data: an unknown resource id is ResourceNotFound (the SDK then returns "")', async () => {
    await ok('probe_get_data_unknown', 'anything');
    expect(wasmLogs(host, 'probe_get_data_unknown')).toEqual(['unknown:[]']);
  });

  it('ws_set_data: replaces the resource, which ws_get_data then returns', async () => {
    await ok('probe_set_data', 'original');
    expect(wasmLogs(host, 'probe_set_data')).toEqual(['set_data code:0 now:replaced by the applet']);
  });

  it('ws_get_db / ws_set_db: a key/value store that outlives the event (a new instance each time)', async () => {
    await ok('probe_kv', 'meter-7');
    await ok('probe_kv', 'meter-7');
    expect(wasmLogs(host, 'probe_kv')).toEqual([
      'kv before:<missing>',
      'kv after:value for meter-7',
      'kv before:value for meter-7',
      'kv after:value for meter-7',
    ]);
    expect(Buffer.from(host.services.kvGet('meter-7').data!).toString()).toBe('value for meter-7');
  });

  it('ws_set_sql_db: the SDK’s parameter types reach the project database (Postgres) with their values', async () => {
    await ok('probe_sql_set', 'alpha');
    const [row] = await host.db.query<Record<string, unknown>>('SELECT * FROM probe WHERE name = $1', ['alpha']);
    // The SDK logs the query it sends; the host stores what was sent. Its base64 encoder does not
    // encode every byte faithfully: compare with what the SDK sent, decoded.
    const sent = JSON.parse(wasmLogs(host, 'probe_sql_set')[0]!) as { params: Record<string, unknown>[] };
    expect(row).toEqual({
      id: 1,
      name: 'alpha',
      count32: 7,
      count64: 9007199254740993n,
      ratio: 0.25,
      active: true,
      raw: Buffer.from(String(sent.params[5]!.bytes), 'base64').toString('utf8'),
    });
    // 2^53 + 1 is exact as an i64 but not as a JS number: check the text the SDK sent, not JSON.parse's value.
    expect(wasmLogs(host, 'probe_sql_set')[0]).toContain('{"int64":9007199254740993}');
    expect(sent.params.slice(0, 5)).toEqual([
      { string: 'alpha' },
      { int32: 7 },
      { int64: expect.any(Number) },
      { float64: 0.25 },
      { bool: true },
    ]);
  });

  it('ws_get_sql_db: none = empty, one row = an object, several = an array (keys sorted, BOOLEAN as true/false)', async () => {
    await ok('probe_sql_get', 'zeta');
    await ok('probe_sql_set', 'beta-1');
    await ok('probe_sql_get', 'beta');
    await ok('probe_sql_set', 'beta-2');
    await ok('probe_sql_get', 'beta');
    const rows = wasmLogs(host, 'probe_sql_get').filter((l) => l.startsWith('rows:'));
    expect(rows[0]).toBe('rows:[]');
    expect(rows[1]).toBe('rows:[{"active":true,"count32":7,"id":2,"name":"beta-1","ratio":0.25}]');
    expect(rows[2]).toBe(
      'rows:[[{"active":true,"count32":7,"id":2,"name":"beta-1","ratio":0.25},{"active":true,"count32":7,"id":3,"name":"beta-2","ratio":0.25}]]',
    );
  });

  it('ws_set_sql_db: a statement the database refuses fails the call (the SDK traps)', async () => {
    const a = await publish(host, 'probe_sql_bad', '');
    expect(a.body.results?.[0]).toMatchObject({ code: -1, error: expect.stringContaining('fail to execute the sql query') });
    expect(host.logs).toContainEqual(expect.objectContaining({ src: 'host', message: 'pq: relation "no_such_table" does not exist' }));
  });

  it('ws_send_tx: the operator sends the transaction; its hash is copied in', async () => {
    const [, , , holder] = chain.accounts as Address[];
    const data = encodeCall('RewardToken', 'mint', { to: holder!, amount: 5n });
    await ok('probe_send_tx', `${rewards.contracts.token}|${data}`);
    // The SDK logs the transaction JSON first, then the probe logs the hash.
    const hash = wasmLogs(host, 'probe_send_tx')
      .find((l) => l.startsWith('tx:'))!
      .slice('tx:'.length);
    expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
    const tx = await rpc<{ from: string; to: string; input: string }>(chain.rpcUrl, 'eth_getTransactionByHash', [hash]);
    expect(tx.from.toLowerCase()).toBe(operator.toLowerCase());
    expect(tx.input).toBe(data);
    expect(await rewards.balanceOf(holder!)).toBe(5n);
  });

  it('ws_call_contract: eth_call’s result bytes are copied in (the SDK shows them as hex)', async () => {
    const [, , , , holder] = chain.accounts as Address[];
    await rewards.registerDevice(holder!); // any state change will do; the call reads the token
    const data = encodeCall('RewardToken', 'decimals');
    await ok('probe_call_contract', `${rewards.contracts.token}|${data}`);
    expect(wasmLogs(host, 'probe_call_contract')).toEqual([`call:${'0'.repeat(62)}12`]);
  });

  it('ws_get_env: the project’s variable; a missing one is EnvKeyNotFound (the SDK traps)', async () => {
    await ok('probe_get_env', 'GREETING');
    expect(wasmLogs(host, 'probe_get_env')).toEqual(['env:hello from the project env']);
    const missing = await publish(host, 'probe_get_env', 'NOT_SET');
    expect(missing.body.results?.[0]).toMatchObject({ code: -1, error: expect.stringContaining('get env failed: key: NOT_SET') });
  });

  it('ws_send_mqtt_msg: the topic and message are recorded', async () => {
    await ok('probe_mqtt', '{"minted":10}');
    expect(wasmLogs(host, 'probe_mqtt')).toEqual(['mqtt code:0']);
    expect(host.services.mqttMessages).toEqual([expect.objectContaining({ topic: 'meter/rewards', message: '{"minted":10}' })]);
  });

  it('abort: logged with the AssemblyScript strings decoded; by itself it does not stop the handler (as on the node)', async () => {
    const a = await publish(host, 'probe_abort', '');
    expect(a.body.results?.[0]).toMatchObject({ code: 5 });
    expect(a.body.results?.[0]?.error).toBeUndefined();
    expect(host.logs).toContainEqual(
      expect.objectContaining({ src: 'host', level: 2, message: 'abort: reported on purpose at abi-probe.ts:7:3' }),
    );
  });

  it('ws_send_tx_with_operator: the named operator sends it; an unknown operator fails the call', async () => {
    const data = encodeCall('RewardToken', 'decimals');
    const body = JSON.stringify({ to: rewards.contracts.token, value: '0', data: data.slice(2), operatorName: 'treasurer' });
    const a = await publish(host, 'send_tx_with_operator', body);
    expect(a.body.results?.[0]).toMatchObject({ appletName: 'sql-probe', instanceID: '2', code: 0 });
    const hash = /hash:(0x[0-9a-f]{64})/.exec(wasmLogs(host, 'send_tx_with_operator')[0]!)![1]!;
    const tx = await rpc<{ from: string }>(chain.rpcUrl, 'eth_getTransactionByHash', [hash]);
    expect(tx.from.toLowerCase()).toBe(chain.accounts[5]!.toLowerCase());
    await publish(host, 'send_tx_with_operator', body.replace('treasurer', 'nobody'));
    expect(wasmLogs(host, 'send_tx_with_operator')[1]).toBe('code:-1 hash:');
    expect(host.logs).toContainEqual(
      expect.objectContaining({ src: 'host', message: expect.stringContaining('operator "nobody" not found') }),
    );
  });

  it('stat.ws_submit_metrics: a JSON object is recorded; an array fails the call (the SDK traps)', async () => {
    await publish(host, 'submit_metrics', '{"powerW":2.5}');
    expect(wasmLogs(host, 'submit_metrics')).toEqual(['submitted']);
    expect(host.services.metrics).toEqual([expect.objectContaining({ data: '{"powerW":2.5}' })]);
    const bad = await publish(host, 'submit_metrics', '[1,2]');
    expect(bad.body.results?.[0]).toMatchObject({ code: -1, error: expect.stringContaining('fail to submit metrics') });
    expect(host.logs).toContainEqual(expect.objectContaining({ src: 'host', message: 'json object should not be an array' }));
  });

  it('ws_api_call: the SDK’s request, Go’s HttpResponse back at once, the asynchronous answer later as an event', async () => {
    const request = JSON.stringify({ Method: 'GET', Url: '/system/hello', Header: { Eventtype: ['API_RESULT'], Name: ['probe'] } });
    const a = await publish(host, 'api_call', request);
    expect(a.body.results?.[0]).toMatchObject({ code: 0 });
    const answer = JSON.parse(
      wasmLogs(host, 'api_call')
        .find((l) => l.startsWith('answer:'))!
        .slice('answer:'.length),
    ) as {
      StatusCode: number;
      Body: string;
      Header: Record<string, string[]>;
    };
    expect(answer.StatusCode).toBe(200);
    expect(Buffer.from(answer.Body, 'base64').toString()).toBe('"{\\"message\\": \\"hello probe\\"}"');
    expect(answer.Header.Eventtype).toEqual(['API_RESULT']);
    const until = Date.now() + 20_000;
    while (wasmLogs(host, 'on_event').length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const later = JSON.parse(wasmLogs(host, 'on_event')[0]!.slice('event:'.length)) as { Body: string };
    expect(Buffer.from(later.Body, 'base64').toString()).toBe('"{\\"async message\\": \\"hello probe\\"}"');
  });

  it('ws_api_call send_tx: a transaction id at once, the operator’s transaction on chain, CONFIRMED later as an event', async () => {
    const before = wasmLogs(host, 'on_event').length;
    const body = Buffer.from(
      JSON.stringify({
        chainName: 'local',
        operatorName: 'treasurer',
        to: rewards.contracts.token,
        value: '0',
        data: encodeCall('RewardToken', 'decimals'),
      }),
    ).toString('base64');
    await publish(
      host,
      'api_call',
      JSON.stringify({ Method: 'POST', Url: '/system/send_tx', Header: { Eventtype: ['API_RESULT'] }, Body: body }),
    );
    const answer = JSON.parse(wasmLogs(host, 'api_call').at(-1)!.slice('answer:'.length)) as { Body: string };
    const { transactionID } = JSON.parse(Buffer.from(answer.Body, 'base64').toString()) as { transactionID: string };
    const until = Date.now() + 30_000;
    while (wasmLogs(host, 'on_event').length === before && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const later = JSON.parse(wasmLogs(host, 'on_event')[before]!.slice('event:'.length)) as { Body: string };
    expect(JSON.parse(Buffer.from(later.Body, 'base64').toString())).toEqual({ transactionID, state: 'CONFIRMED' });
  });
});
