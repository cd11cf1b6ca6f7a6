/**
 * Bounds what the broker can make the meter hold in memory, pure: follows MQTT packet boundaries
 * in the incoming byte stream (fixed header: one type byte, then the remaining length as a
 * variable byte integer of 1-4 bytes, MQTT 5.0 sections 2.1 and 1.5.5) and lets through only
 * packets of at most `maxBytes` in total. The bytes of a larger QoS 0 PUBLISH are skipped as they
 * arrive, never buffered; any other oversized packet is a protocol error (the connection is closed).
 *
 * Why here and not in mqtt.js: its parser (mqtt-packet) appends every incoming chunk to a buffer
 * list until the whole packet is in, then copies the payload out, and only then does mqtt.js
 * compare the size with the Maximum Packet Size it advertised (and close the connection). A 250 MB
 * retained message on a topic the meter subscribes to cost ~850 MB before that check. MQTT 5 brokers
 * that honour the advertised maximum (Mosquitto does) never send such a packet; this guard covers
 * brokers that ignore it and MQTT 3.1.1, which has no such property.
 *
 * The meter subscribes at QoS 0 only, so every PUBLISH it can receive is QoS 0: skipping one needs
 * no acknowledgement and leaves the session consistent.
 */
export interface DroppedPacket {
  /** MQTT control packet type (3 = PUBLISH). */
  type: number;
  /** Total size on the wire, bytes (fixed header included, as MQTT 5's Maximum Packet Size counts it). */
  bytes: number;
}

export class PacketTooLargeError extends Error {
  override name = 'PacketTooLargeError';
  /** Node-style code: mqtt.js forwards only stream errors that carry one. */
  readonly code = 'MQTT_PACKET_TOO_LARGE';
  constructor(
    readonly type: number,
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(`the broker sent a ${packetName(type)} packet of ${bytes} bytes, over the ${maxBytes}-byte limit`);
  }
}

export class MalformedPacketError extends Error {
  override name = 'MalformedPacketError';
  readonly code = 'MQTT_MALFORMED_PACKET';
}

const PUBLISH = 3;

export function packetName(type: number): string {
  return (
    [
      'reserved',
      'CONNECT',
      'CONNACK',
      'PUBLISH',
      'PUBACK',
      'PUBREC',
      'PUBREL',
      'PUBCOMP',
      'SUBSCRIBE',
      'SUBACK',
      'UNSUBSCRIBE',
      'UNSUBACK',
      'PINGREQ',
      'PINGRESP',
      'DISCONNECT',
      'AUTH',
    ][type] ?? `type ${type}`
  );
}

export class PacketSizeGuard {
  /** Fixed-header bytes of the packet being read (at most 5), held until its size is known. */
  private header: number[] = [];
  /** Bytes of the current packet's body still to pass (or to skip). */
  private remaining = 0;
  private skipping = false;
  /** Packets skipped so far, and their bytes. */
  dropped = 0;
  droppedBytes = 0;

  constructor(
    readonly maxBytes: number,
    private readonly onDrop: (p: DroppedPacket) => void = () => {},
  ) {}

  /**
   * The parts of `chunk` to hand to the MQTT parser, in order (views of `chunk` and small header
   * buffers, never a copy of a body). Throws PacketTooLargeError or MalformedPacketError: close
   * the connection then.
   */
  filter(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - i);
        if (!this.skipping) out.push(chunk.subarray(i, i + n));
        this.remaining -= n;
        i += n;
        continue;
      }
      // A new packet's fixed header, byte by byte (it may be split across chunks).
      this.header.push(chunk[i]!);
      i++;
      if (this.header.length === 1) continue;
      const lengthBytes = this.header.length - 1;
      const last = this.header[this.header.length - 1]!;
      if (last & 0x80) {
        if (lengthBytes === 4) throw new MalformedPacketError('malformed remaining length (more than 4 bytes)');
        continue;
      }
      let length = 0;
      for (let k = lengthBytes; k >= 1; k--) length = length * 128 + (this.header[k]! & 0x7f);
      const type = this.header[0]! >> 4;
      const qos = (this.header[0]! >> 1) & 0x03;
      const total = 1 + lengthBytes + length;
      const header = this.header;
      this.header = [];
      this.remaining = length;
      if (total <= this.maxBytes) {
        this.skipping = false;
        out.push(Buffer.from(header));
        continue;
      }
      if (type !== PUBLISH || qos !== 0) throw new PacketTooLargeError(type, total, this.maxBytes);
      this.skipping = true;
      this.dropped++;
      this.droppedBytes += total;
      this.onDrop({ type, bytes: total });
    }
    return out;
  }
}
