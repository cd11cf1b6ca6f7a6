/**
 * Reading and writing an applet's linear memory the way the node does: plain byte ranges for
 * host-function arguments, AssemblyScript strings (UTF-16LE, byte length in the 4 bytes before
 * the pointer) for `abort`, and the "copy in" convention for answers: the host calls the
 * applet's exported `alloc(size)`, copies the bytes there, and stores the address and the size
 * as little-endian u32 at the two pointers the applet passed.
 */
export class VmMemoryError extends Error {}

export class VmMemory {
  constructor(
    private readonly memory: () => WebAssembly.Memory,
    private readonly alloc: () => ((size: number) => number) | undefined,
  ) {}

  read(ptr: number, size: number): Uint8Array {
    const buf = new Uint8Array(this.memory().buffer);
    if (ptr < 0 || size < 0 || ptr + size > buf.length)
      throw new VmMemoryError(`overflow: ${size} bytes at ${ptr} outside ${buf.length} bytes of memory`);
    return buf.slice(ptr, ptr + size);
  }

  readText(ptr: number, size: number): string {
    return Buffer.from(this.read(ptr, size)).toString('utf8');
  }

  /** An AssemblyScript string: its byte length is the u32 before it (`rtSize` of the object header). */
  readAsString(ptr: number): string {
    if (ptr < 4) throw new VmMemoryError(`the pointer address ${ptr} is invalid`);
    const lenBytes = this.read(ptr - 4, 4);
    const len = Buffer.from(lenBytes).readUInt32LE(0);
    return Buffer.from(this.read(ptr, len)).toString('utf16le');
  }

  copyIn(data: Uint8Array, addrPtr: number, sizePtr: number): void {
    const alloc = this.alloc();
    if (!alloc) throw new VmMemoryError('alloc is nil: the applet exports no alloc(size) function');
    const addr = alloc(data.length) >>> 0;
    // Re-read the buffer after alloc: alloc may have grown (and so detached) the old one.
    const buf = new Uint8Array(this.memory().buffer);
    if (addr + data.length > buf.length) throw new VmMemoryError('fail to copy data');
    buf.set(data, addr);
    this.putU32(buf, addrPtr, addr);
    this.putU32(buf, sizePtr, data.length);
  }

  private putU32(buf: Uint8Array, ptr: number, value: number): void {
    if (ptr < 0 || ptr + 4 > buf.length) throw new VmMemoryError('overflow');
    new DataView(buf.buffer, buf.byteOffset).setUint32(ptr, value, true);
  }
}
