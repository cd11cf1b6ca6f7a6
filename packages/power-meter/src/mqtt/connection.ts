import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { type IClientOptions, MqttClient } from 'mqtt';
import { type DroppedPacket, PacketSizeGuard } from './packet-guard.js';

/**
 * The meter's MQTT connection: mqtt.js's client on a socket this module opens, so that (1) the
 * incoming bytes pass a PacketSizeGuard before mqtt.js's parser buffers them, and (2) TLS uses
 * the CA, client certificate and key the settings name. The client advertises the same limit as
 * MQTT 5's Maximum Packet Size (property 0x27 of CONNECT), so a broker that honours it (Mosquitto)
 * does not even send a larger message.
 */
export const MAX_INCOMING_PACKET_BYTES = 64 * 1024;
/** Bytes per socket read on plain connections (net's default read size). */
const READ_BUFFER_BYTES = 64 * 1024;

/** PEM contents for mqtts:// (each absent = the default: the system's CAs, no client certificate). */
export interface MqttTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export interface MqttConnectionOptions {
  url: string;
  tls?: MqttTls;
  maxPacketBytes?: number;
  /** An oversized message was skipped (never buffered). */
  onDrop?: (p: DroppedPacket) => void;
  /** mqtt.js options (client id, login, keepalive, will, ...); protocol and host come from `url`. */
  client: IClientOptions;
  /** MQTT 5 (default) or 3.1.1 (4), for a broker that refuses 5 (see isProtocolRefusal). */
  protocolVersion?: 4 | 5;
}

export function createMqttClient(o: MqttConnectionOptions): MqttClient {
  const u = new URL(o.url);
  const secure = u.protocol === 'mqtts:';
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(u.port || (secure ? 8883 : 1883));
  const maxBytes = o.maxPacketBytes ?? MAX_INCOMING_PACKET_BYTES;
  const build = (): Duplex => {
    const guard = new PacketSizeGuard(maxBytes, o.onDrop);
    if (!secure) {
      // One read buffer for the life of the connection (net's `onread`): the bytes of a skipped
      // packet are then never copied into fresh buffers that only the garbage collector frees
      // (50 MB skipped that way peaked at ~100 MB resident with the service's Node flags).
      let stream: GuardedStream | null = null;
      const socket = net.connect({
        host,
        port,
        onread: {
          buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
          callback: (n, buf) => stream?.fromSocket(Buffer.from(buf.buffer, buf.byteOffset, n), true) ?? true,
        },
      });
      socket.setNoDelay(true);
      stream = new GuardedStream(socket, guard, false);
      return stream;
    }
    const socket = tls.connect({
      host,
      port,
      // SNI only for names (RFC 6066 section 3 forbids IP addresses there); the certificate is
      // checked against the host either way (IP addresses against its IP SANs).
      ...(net.isIP(host) === 0 ? { servername: host } : {}),
      ca: o.tls?.ca,
      cert: o.tls?.cert,
      key: o.tls?.key,
      rejectUnauthorized: true,
    });
    socket.setNoDelay(true);
    const stream = new GuardedStream(socket, guard, true);
    watchTlsHangUp(socket, stream, o.tls?.cert !== undefined);
    return stream;
  };
  // MQTT 3.1.1 has no properties, so no Maximum Packet Size: the guard alone bounds what is read.
  return new MqttClient(
    build,
    o.protocolVersion === 4
      ? { ...o.client, protocolVersion: 4, properties: undefined }
      : { ...o.client, protocolVersion: 5, properties: { ...o.client.properties, maximumPacketSize: maxBytes } },
  );
}

/**
 * A broker that speaks only MQTT 3.1.1 answers an MQTT 5 CONNECT with CONNACK return code 1
 * ("unacceptable protocol level", MQTT 3.1.1 section 3.1.2.2; mqtt.js reports it as code 1); one
 * that knows MQTT 5 but refuses it answers 0x84 (132, Unsupported Protocol Version).
 */
export function isProtocolRefusal(err: Error): boolean {
  const code = (err as Error & { code?: unknown }).code;
  return code === 1 || code === 132;
}

/**
 * Makes `client` speak MQTT 3.1.1 from its next connection on (mqtt.js reads its options at each
 * connect). 3.1.1 has no properties, so no Maximum Packet Size either: the packet guard alone
 * bounds what is read.
 */
export function useMqtt311(client: MqttClient): void {
  client.options.protocolVersion = 4;
  delete client.options.properties;
}

/**
 * A broker that requires a client certificate ends the connection right after the TLS handshake
 * when it gets none (or one it does not trust). With TLS 1.3 the client has finished its side of
 * the handshake by then, so Node reports either the broker's alert
 * (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED) or, when the reset overtakes the alert, a bare
 * ECONNRESET or close. Those two become one error that says what it most likely means.
 */
export class TlsHangUpError extends Error {
  override name = 'TlsHangUpError';
  readonly code = 'MQTT_TLS_CLOSED_AFTER_HANDSHAKE';
  constructor(
    /** ECONNRESET, EPIPE or closed. */
    readonly how: string,
    /** The meter presented a client certificate. */
    readonly withClientCertificate: boolean,
  ) {
    super(`the broker closed the TLS connection right after the handshake, before answering MQTT (${how})`);
  }
}

function watchTlsHangUp(socket: tls.TLSSocket, stream: Duplex, withClientCertificate: boolean): void {
  let handshaken = false;
  let answered = false;
  socket.once('secureConnect', () => {
    handshaken = true;
  });
  socket.once('data', () => {
    answered = true;
  });
  const early = (): boolean => handshaken && !answered && !stream.destroyed;
  socket.prependListener('error', (err: NodeJS.ErrnoException) => {
    if (early() && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) stream.destroy(new TlsHangUpError(err.code, withClientCertificate));
  });
  socket.prependListener('close', () => {
    if (early()) stream.destroy(new TlsHangUpError('closed', withClientCertificate));
  });
}

/**
 * The socket as mqtt.js sees it: writes go straight through; reads pass the guard first. A guard
 * error destroys the stream with that error (mqtt.js reports stream errors that carry a code, and
 * closes the connection).
 */
class GuardedStream extends Duplex {
  constructor(
    private readonly socket: net.Socket,
    private readonly guard: PacketSizeGuard,
    /** Read through 'data' events (TLS); otherwise the socket's onread calls fromSocket(). */
    dataEvents: boolean,
  ) {
    super({ allowHalfOpen: false });
    if (dataEvents)
      socket.on('data', (chunk: Buffer) => {
        if (!this.fromSocket(chunk, false)) socket.pause();
      });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  /**
   * Passes what the guard lets through of `chunk` to mqtt.js; `copy` when the socket reuses its
   * read buffer. Returns false when mqtt.js wants no more for now (the socket pauses).
   */
  fromSocket(chunk: Buffer, copy: boolean): boolean {
    let parts: Buffer[];
    try {
      parts = this.guard.filter(chunk);
    } catch (err) {
      this.destroy(err as Error);
      return false;
    }
    let more = true;
    for (const p of parts) more = this.push(copy ? Buffer.from(p) : p) && more;
    return more;
  }

  override _read(): void {
    this.socket.resume();
  }

  /** As pipe() does: on to the next write at once, unless the socket's buffer is full. */
  override _write(chunk: Buffer, encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.socket.write(chunk, encoding)) done();
    else this.socket.once('drain', () => done());
  }

  /**
   * mqtt-packet writes a packet as several small pieces between cork() and uncork(): they reach
   * the socket as one write. One by one, Nagle's algorithm would hold each piece after the first
   * until the broker's delayed ACK (~40 ms on Linux).
   */
  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, done: (err?: Error | null) => void): void {
    this._write(Buffer.concat(chunks.map((c) => c.chunk)), 'buffer' as BufferEncoding, done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.socket.end(() => done());
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.socket.destroy();
    done(err);
  }
}
