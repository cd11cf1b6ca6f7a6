// A test applet for the project database and the project file: the SQL calls go through the
// real SDK (its JSON encoding of every parameter type) or, for exact cases, straight through the
// host imports with the query JSON the test sends; monitor and cron events are logged as they
// arrive; the remaining host functions (ws_api_call, ws_send_tx_with_operator,
// ws_submit_metrics) are called as applets call them.
import { ApiCall, ExecSQL, GetDataByRID, GetEnv, Log, QuerySQL, SubmitMetrics } from "@w3bstream/wasm-sdk";
import {
  Bool as SQLBool, Bytes as SQLBytes, Float32, Float64, Int32, Int64, String as SQLString, Time as SQLTime,
} from "@w3bstream/wasm-sdk/assembly/sql";
export { alloc } from "@w3bstream/wasm-sdk";

// @ts-ignore: decorator
@external("env", "ws_get_sql_db")
declare function ws_get_sql_db(ptr: usize, size: i32, rAddr: usize, rSize: usize): i32;
// @ts-ignore: decorator
@external("env", "ws_set_sql_db")
declare function ws_set_sql_db(ptr: usize, size: i32): i32;
// @ts-ignore: decorator
@external("env", "ws_send_tx_with_operator")
declare function ws_send_tx_with_operator(chainId: i32, ptr: usize, size: i32, rAddr: usize, rSize: usize): i32;

/** Event data = the query JSON, sent as it is: the host's answer code and rows are logged. */
export function sql_query_raw(rid: i32): i32 {
  const q = String.UTF8.encode(GetDataByRID(rid), false);
  const rAddr = heap.alloc(4);
  const rSize = heap.alloc(4);
  const code = ws_get_sql_db(changetype<usize>(q), q.byteLength, rAddr, rSize);
  const rows = code == 0 ? String.UTF8.decodeUnsafe(load<u32>(rAddr), load<u32>(rSize), false) : "";
  Log("code:" + code.toString() + " rows:" + rows);
  return 0;
}

export function sql_exec_raw(rid: i32): i32 {
  const q = String.UTF8.encode(GetDataByRID(rid), false);
  Log("code:" + ws_set_sql_db(changetype<usize>(q), q.byteLength).toString());
  return 0;
}

/** Every SDK parameter type with `?` placeholders, then read back with `$1`. Event data: the label. */
export function sql_sdk_types(rid: i32): i32 {
  const label = GetDataByRID(rid);
  const blob = new Uint8Array(4);
  blob[0] = 0x77; blob[1] = 0x33; blob[2] = 0x62; blob[3] = 0x21; // "w3b!"
  ExecSQL(
    "INSERT INTO kinds (label, flag, flag_text, ratio32, ratio64, at, raw, n32, n64) VALUES (?,?,?,?,?,?,?,?,?);",
    [
      new SQLString(label), new SQLBool(true), new SQLBool(false), new Float32(0.1), new Float64(2.5),
      new SQLTime("2025-01-02T03:04:05.5+02:00"), new SQLBytes(blob), new Int32(-7), new Int64(9007199254740993),
    ],
  );
  Log("rows:" + QuerySQL("SELECT label, flag, flag_text, ratio32, ratio64, at, raw, n32, n64 FROM kinds WHERE label = $1;", [new SQLString(label)]));
  return 0;
}

/** Any monitor or cron event: its data, logged. */
export function on_event(rid: i32): i32 {
  Log("event:" + GetDataByRID(rid));
  return 0;
}

/** A handler that fails while its data says so (a contract-log range is then listed again). */
export function on_event_failing(rid: i32): i32 {
  const data = GetDataByRID(rid);
  Log("event:" + data);
  if (GetEnv("FAIL_EVENTS") == "yes") throw new Error("refused on purpose");
  return 0;
}

/** ws_api_call: event data = the request JSON the SDK's HTTP helpers build; the answer is logged. */
export function api_call(rid: i32): i32 {
  Log("answer:" + ApiCall(GetDataByRID(rid)));
  return 0;
}

/** ws_send_tx_with_operator: event data = `{"to","value","data","operatorName"}` JSON. */
export function send_tx_with_operator(rid: i32): i32 {
  const tx = String.UTF8.encode(GetDataByRID(rid), false);
  const rAddr = heap.alloc(4);
  const rSize = heap.alloc(4);
  const code = ws_send_tx_with_operator(i32(parseInt(GetEnv("CHAIN_ID"))), changetype<usize>(tx), tx.byteLength, rAddr, rSize);
  const hash = code == 0 ? String.UTF8.decodeUnsafe(load<u32>(rAddr), load<u32>(rSize), false) : "";
  Log("code:" + code.toString() + " hash:" + hash);
  return 0;
}

/** stat.ws_submit_metrics through the SDK (which traps on a non-zero code). */
export function submit_metrics(rid: i32): i32 {
  SubmitMetrics(GetDataByRID(rid));
  Log("submitted");
  return 0;
}

/** Allocates 256 MB, 1 MB at a time, then keeps touching it: the host must stop it at the time-out. */
export function grow(rid: i32): i32 {
  const keep = new Array<Uint8Array>();
  while (keep.length < 256) keep.push(new Uint8Array(1 << 20));
  let n: i32 = 0;
  while (GetDataByRID(rid).length >= 0) keep[n++ & 255][0] = u8(n);
  return keep.length;
}

/** Loops without end, calling the host so the loop is not optimised away. */
export function spin(rid: i32): i32 {
  let n: i64 = 0;
  while (GetDataByRID(rid).length >= 0) n++;
  return i32(n);
}

/** Inserts a row naming the event, then loops: a row proves the handler ran (and when). */
export function mark_then_spin(rid: i32): i32 {
  ExecSQL("INSERT INTO marks (label) VALUES ($1);", [new SQLString(GetDataByRID(rid))]);
  return spin(rid);
}

export function mark(rid: i32): i32 {
  ExecSQL("INSERT INTO marks (label) VALUES ($1);", [new SQLString(GetDataByRID(rid))]);
  return 0;
}
