// A test applet: one handler per host function of the W3bstream v1 ABI, each reporting what it
// observed through Log, so the host's tests can check both sides of every call. Built with the
// real SDK (@w3bstream/wasm-sdk) wherever the SDK wraps the import, so the calling convention
// under test is the SDK's, not ours.
import { CallContract, ExecSQL, GetDB, GetDataByRID, GetEnv, Log, QuerySQL, SendTx, SetDB } from "@w3bstream/wasm-sdk";
import { Float64, Int32, Int64, String as SQLString, Bool as SQLBool, Bytes as SQLBytes } from "@w3bstream/wasm-sdk/assembly/sql";
export { alloc } from "@w3bstream/wasm-sdk";

// The SDK has no wrappers for these two imports: declared here as the node names them.
// @ts-ignore: decorator
@external("env", "ws_set_data")
declare function ws_set_data(rid: i32, ptr: usize, size: i32): i32;
// @ts-ignore: decorator
@external("env", "ws_send_mqtt_msg")
declare function ws_send_mqtt_msg(topicPtr: usize, topicSize: i32, msgPtr: usize, msgSize: i32): i32;

export function probe_log(rid: i32): i32 {
  Log("hello from the applet");
  return 0;
}

export function probe_get_data(rid: i32): i32 {
  Log("data:" + GetDataByRID(rid));
  return 0;
}

export function probe_set_data(rid: i32): i32 {
  const replacement = String.UTF8.encode("replaced by the applet", false);
  const code = ws_set_data(rid, changetype<usize>(replacement), replacement.byteLength);
  Log("set_data code:" + code.toString() + " now:" + GetDataByRID(rid));
  return 0;
}

export function probe_get_data_unknown(rid: i32): i32 {
  // An unknown resource id: the host answers ResourceNotFound, the SDK returns "".
  Log("unknown:[" + GetDataByRID(rid + 1) + "]");
  return 0;
}

export function probe_kv(rid: i32): i32 {
  const key = GetDataByRID(rid);
  const before = GetDB(key);
  Log("kv before:" + (before === null ? "<missing>" : String.UTF8.decode(before!)));
  SetDB(key, String.UTF8.encode("value for " + key));
  const after = GetDB(key);
  Log("kv after:" + (after === null ? "<missing>" : String.UTF8.decode(after!)));
  return 0;
}

export function probe_sql_set(rid: i32): i32 {
  // The event data is the name to store; every SDK parameter type goes through the host.
  const name = GetDataByRID(rid);
  const blob = new Uint8Array(3);
  blob[0] = 0x77; blob[1] = 0x33; blob[2] = 0x62; // "w3b": the column is text
  ExecSQL("INSERT INTO probe (name, count32, count64, ratio, active, raw) VALUES ($1, $2, $3, $4, $5, $6);", [
    new SQLString(name), new Int32(7), new Int64(9007199254740993), new Float64(0.25), new SQLBool(true), new SQLBytes(blob),
  ]);
  return 0;
}

export function probe_sql_get(rid: i32): i32 {
  const prefix = GetDataByRID(rid);
  const rows = QuerySQL("SELECT id, name, count32, ratio, active FROM probe WHERE name LIKE $1 ORDER BY id;", [new SQLString(prefix + "%")]);
  Log("rows:[" + rows + "]");
  return 0;
}

export function probe_sql_bad(rid: i32): i32 {
  // A statement the database refuses: the host answers Failed, the SDK asserts (a trap).
  ExecSQL("INSERT INTO no_such_table (x) VALUES ($1);", [new Int32(1)]);
  return 0;
}

export function probe_send_tx(rid: i32): i32 {
  // Event data: "<to>|<data hex>".
  const parts = GetDataByRID(rid).split("|");
  const hash = SendTx(i32(parseInt(GetEnv("CHAIN_ID"))), parts[0], "0", parts[1]);
  Log("tx:" + hash);
  return 0;
}

export function probe_call_contract(rid: i32): i32 {
  const parts = GetDataByRID(rid).split("|");
  Log("call:" + CallContract(i32(parseInt(GetEnv("CHAIN_ID"))), parts[0], parts[1]));
  return 0;
}

export function probe_get_env(rid: i32): i32 {
  Log("env:" + GetEnv(GetDataByRID(rid)));
  return 0;
}

export function probe_mqtt(rid: i32): i32 {
  const topic = String.UTF8.encode("meter/rewards", false);
  const message = String.UTF8.encode(GetDataByRID(rid), false);
  const code = ws_send_mqtt_msg(changetype<usize>(topic), topic.byteLength, changetype<usize>(message), message.byteLength);
  Log("mqtt code:" + code.toString());
  return 0;
}

export function probe_abort(rid: i32): i32 {
  // env.abort itself only reports (the node logs it); the handler goes on and returns 5.
  abort("reported on purpose", "abi-probe.ts", 7, 3);
  return 5;
}

export function probe_throw(rid: i32): i32 {
  // What applets do to refuse: AssemblyScript calls env.abort, then traps (unreachable).
  throw new Error("refused on purpose: " + GetDataByRID(rid));
}

export function probe_trap(rid: i32): i32 {
  const list = new Array<i32>(1);
  return list[5]; // out of range: a runtime error, i.e. a trap
}

export function probe_loop(rid: i32): i32 {
  let n: i64 = 0;
  while (GetDataByRID(rid).length >= 0) n++; // never ends; calls the host so the loop is not optimised away
  return i32(n);
}

export function probe_return(rid: i32): i32 {
  return i32(parseInt(GetDataByRID(rid)));
}
