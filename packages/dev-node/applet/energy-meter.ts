// This project's W3bstream applet: the tutorial's DePIN rules for the power meter.
//
// - handle_device_registered / handle_device_bound: contract logs of DeviceRegistry and
//   DeviceBinding (delivered by the project's chain-event strategies) fill the device_registry
//   and device_binding tables, as the tutorial's smart-grid applet does.
// - handle_data: one signed reading. Refuses (traps with the reason, which the node reports as
//   the result's error) a body that is not the meter's JSON, a device that is not registered or
//   not bound to an owner, and a signature that is not the registered device's. Stores the
//   reading, then mints the reward of the first tier whose limit is above the reading to the
//   owner (ERC-20 `mint`, sent by the project's operator account).
//
// Environment (the project's env vars): CHAIN_ID, TOKEN_ADDRESS, VERIFIER_ADDRESS,
// REWARD_TIERS (JSON, e.g. [{"belowW":3,"tokens":10},{"belowW":5,"tokens":4}], whole tokens per
// reading), SIGNATURE_CHECK ("secp256k1" or "off").
import { CallContract, ExecSQL, GetDataByRID, GetEnv, JSON, Log, QuerySQL, SendTx } from "@w3bstream/wasm-sdk";
import { Float64, Int64, String as SQLString } from "@w3bstream/wasm-sdk/assembly/sql";
import { u128 } from "as-bignum/assembly";
export { alloc } from "@w3bstream/wasm-sdk";

// Function selectors (first 4 bytes of keccak256 of the signature).
const MINT = "40c10f19"; // mint(address,uint256)
const IS_SIGNED_BY = "ae017290"; // isSignedBy(bytes,bytes32,bytes32,address)
const DEVICE_ADDRESS = "9a1775c9"; // deviceAddress(bytes)
const TOKEN_DECIMALS: u64 = 1_000_000_000_000_000_000; // 10^18

function refuse(reason: string): i32 {
  Log("refused: " + reason);
  throw new Error(reason);
}

function isHex(s: string): bool {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) return false;
  }
  return true;
}

function pad32(hex: string): string {
  return "0".repeat(64 - hex.length) + hex;
}

function chainId(): i32 {
  return i32(parseInt(GetEnv("CHAIN_ID")));
}

/** The 40 hex of an address from a 32-byte log topic or call result. */
function lastAddress(word: string): string {
  const h = word.startsWith("0x") ? word.slice(2) : word;
  return h.slice(h.length - 40).toLowerCase();
}

function topic(log: JSON.Obj, index: i32): string {
  const topics = log.getArr("topics");
  if (topics == null || topics.valueOf().length <= index) {
    refuse("the log has no topic " + index.toString());
    return "";
  }
  return (topics.valueOf()[index] as JSON.Str).valueOf();
}

function firstRow(rows: string, column: string): string {
  if (rows == "") return "";
  const parsed = JSON.parse(rows);
  if (!parsed.isObj) return "";
  const value = (parsed as JSON.Obj).getString(column);
  return value == null ? "" : value.valueOf();
}

export function handle_device_registered(rid: i32): i32 {
  const log = JSON.parse(GetDataByRID(rid)) as JSON.Obj;
  const device = lastAddress(topic(log, 1));
  // Idempotent: a monitor may deliver the same log again.
  const known = QuerySQL("SELECT device_id FROM device_registry WHERE device_id = $1;", [new SQLString(device)]);
  if (known == "") ExecSQL("INSERT INTO device_registry (device_id) VALUES ($1);", [new SQLString(device)]);
  Log("registered device 0x" + device);
  return 0;
}

export function handle_device_bound(rid: i32): i32 {
  const log = JSON.parse(GetDataByRID(rid)) as JSON.Obj;
  const device = lastAddress(topic(log, 1));
  const owner = lastAddress(topic(log, 2));
  ExecSQL("DELETE FROM device_binding WHERE device_id = $1;", [new SQLString(device)]);
  ExecSQL("INSERT INTO device_binding (device_id, owner) VALUES ($1, $2);", [new SQLString(device), new SQLString(owner)]);
  Log("device 0x" + device + " bound to 0x" + owner);
  return 0;
}

/**
 * The `data` member's text exactly as it is in the body: the bytes the meter signed. (Parsing
 * and re-serialising would change the numbers' spelling.)
 */
function rawDataText(body: string): string {
  let i = body.indexOf('"data"');
  if (i < 0) return "";
  i += 6;
  while (i < body.length && (body.charAt(i) == " " || body.charAt(i) == ":" || body.charAt(i) == "\n" || body.charAt(i) == "\t" || body.charAt(i) == "\r")) i++;
  if (body.charAt(i) != "{") return "";
  let depth = 0;
  let inString = false;
  for (let j = i; j < body.length; j++) {
    const c = body.charAt(j);
    if (inString) {
      if (c == "\\") j++;
      else if (c == '"') inString = false;
    } else if (c == '"') inString = true;
    else if (c == "{") depth++;
    else if (c == "}") {
      depth--;
      if (depth == 0) return body.slice(i, j + 1);
    }
  }
  return "";
}

function utf8Hex(text: string): string {
  const bytes = Uint8Array.wrap(String.UTF8.encode(text, false));
  let hex = "";
  for (let i = 0; i < bytes.length; i++) hex += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
  return hex;
}

/** The device id (40 hex, no 0x) from public_key: the address form, or 04 + X + Y (keccak on chain). */
function deviceIdOf(publicKey: string): string {
  if (publicKey.length == 42 && publicKey.startsWith("0x") && isHex(publicKey.slice(2))) {
    return publicKey.slice(2, 42).toLowerCase(); // the tutorial applet's public_key.slice(2, 42)
  }
  if (publicKey.length == 130 && publicKey.startsWith("04") && isHex(publicKey)) {
    const call = "0x" + DEVICE_ADDRESS + pad32("20") + pad32("40") + publicKey.slice(2).toLowerCase();
    return lastAddress(CallContract(chainId(), GetEnv("VERIFIER_ADDRESS"), call));
  }
  refuse("public_key must be a device address (0x + 40 hex) or an uncompressed public key (04 + 128 hex)");
  return "";
}

function signedByDevice(dataText: string, signature: string, device: string): bool {
  const dataHex = utf8Hex(dataText);
  const padded = dataHex + "0".repeat((64 - (dataHex.length % 64)) % 64);
  const call =
    "0x" + IS_SIGNED_BY + pad32("80") + signature.slice(0, 64) + signature.slice(64, 128) + pad32(device) + pad32((dataHex.length / 2).toString(16)) + padded;
  const answer = CallContract(chainId(), GetEnv("VERIFIER_ADDRESS"), call);
  return answer.endsWith("1");
}

/** Whole tokens for a reading: the first tier whose belowW is above it, else 0. */
function rewardTokens(powerW: f64): u64 {
  const tiers = JSON.parse(GetEnv("REWARD_TIERS"));
  if (!tiers.isArr) return <u64>refuse("REWARD_TIERS must be a JSON array");
  const list = (tiers as JSON.Arr).valueOf();
  for (let i = 0; i < list.length; i++) {
    const tier = list[i] as JSON.Obj;
    const below = tier.get("belowW");
    const tokens = tier.getInteger("tokens");
    if (below == null || tokens == null) return <u64>refuse("each REWARD_TIERS entry needs belowW and tokens");
    const belowW: f64 = below.isFloat ? (below as JSON.Float).valueOf() : f64((below as JSON.Integer).valueOf());
    if (powerW < belowW) return u64(tokens.valueOf());
  }
  return 0;
}

export function handle_data(rid: i32): i32 {
  const body = GetDataByRID(rid);
  const parsed = JSON.parse(body);
  if (!parsed.isObj) return refuse("the body is not a JSON object");
  const msg = parsed as JSON.Obj;
  const publicKey = msg.getString("public_key");
  const signature = msg.getString("signature");
  const data = msg.getObj("data");
  if (publicKey == null || publicKey.valueOf() == "") return refuse("public_key must be a non-empty string");
  if (signature == null || signature.valueOf() == "") return refuse("signature must be a non-empty string");
  if (data == null) return refuse("data must be an object");
  const reading = data.get("sensor_reading");
  const timestamp = data.get("timestamp");
  if (reading == null || !reading.isFloat) return refuse("data.sensor_reading must be a JSON float");
  if (timestamp == null || !timestamp.isInteger || (timestamp as JSON.Integer).valueOf() == 0) return refuse("data.timestamp must be a non-zero JSON integer");
  const powerW = (reading as JSON.Float).valueOf();

  const device = deviceIdOf(publicKey.valueOf());
  const registered = QuerySQL("SELECT device_id FROM device_registry WHERE device_id = $1;", [new SQLString(device)]);
  if (registered == "") return refuse("device 0x" + device + " is not registered");
  const owner = firstRow(QuerySQL("SELECT owner FROM device_binding WHERE device_id = $1;", [new SQLString(device)]), "owner");
  if (owner == "") return refuse("device 0x" + device + " is not bound to an owner");

  if (GetEnv("SIGNATURE_CHECK") == "secp256k1") {
    const sig = signature.valueOf().toLowerCase();
    if (sig.length != 128 || !isHex(sig)) return refuse("signature must be raw r||s (128 hex) for the secp256k1 check");
    const dataText = rawDataText(body);
    if (dataText == "") return refuse("data text not found in the body");
    if (!signedByDevice(dataText, sig, device)) return refuse("signature is not by device 0x" + device);
  }

  ExecSQL("INSERT INTO readings (device_id, sensor_reading, timestamp) VALUES ($1, $2, $3);", [
    new SQLString(device),
    new Float64(powerW),
    new Int64((timestamp as JSON.Integer).valueOf()),
  ]);

  const tokens = rewardTokens(powerW);
  if (tokens == 0) {
    Log("reading " + powerW.toString() + " W from 0x" + device + ": no reward");
    return 0;
  }
  const amount = u128.fromU64(tokens) * u128.fromU64(TOKEN_DECIMALS);
  const hash = SendTx(chainId(), GetEnv("TOKEN_ADDRESS"), "0", "0x" + MINT + pad32(owner) + pad32(amount.toString(16)));
  Log("reading " + powerW.toString() + " W from 0x" + device + ": minted " + tokens.toString() + " to 0x" + owner + " in " + hash);
  return 0;
}
