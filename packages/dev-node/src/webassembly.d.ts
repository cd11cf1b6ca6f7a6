// The part of the WebAssembly JS API this package uses. Node has it at run time, but neither
// lib ES2022 nor @types/node 20 declares it (lib "DOM" would, with a browser's globals besides).
declare namespace WebAssembly {
  class Module {
    constructor(bytes: Uint8Array);
  }
  class Memory {
    readonly buffer: ArrayBuffer;
  }
  class Instance {
    constructor(module: Module, imports: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
}
