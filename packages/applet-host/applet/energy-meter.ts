export { alloc } from "@w3bstream/wasm-sdk";
export function handle_data(rid: i32): i32 { return 0; }
