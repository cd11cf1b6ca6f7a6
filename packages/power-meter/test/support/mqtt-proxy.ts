import net from 'node:net';
import mqttPacket from 'mqtt-packet';

/**
 * A broker that ignores the client's Maximum Packet Size, made from a real one: a loopback TCP
 * proxy in front of Mosquitto that removes the property from the client's CONNECT (re-encoded with
 * mqtt.js's own codec) and passes every other byte through untouched. Mosquitto then sends the
 * client whatever it would send a client without a limit (as a broker that does not implement the
 * property, or an MQTT 3.1.1 broker, would).
 */
export interface StrippingProxy {
  url: string;
  /** CONNECT packets seen, with the maximumPacketSize each carried before it was removed. */
  connects: Array<{ maximumPacketSize: number | undefined; protocolVersion: number | undefined }>;
  close(): Promise<void>;
}

/**
 * `mqtt311`: an MQTT 3.1.1-only broker made from the same Mosquitto: an MQTT 5 CONNECT gets the
 * 3.1.1 refusal (CONNACK return code 1, "unacceptable protocol level", MQTT 3.1.1 section
 * 3.1.2.2) and the connection is closed; a 3.1.1 CONNECT passes through untouched.
 */
export async function stripMaxPacketSizeProxy(brokerPort: number, mode: 'strip' | 'mqtt311' = 'strip'): Promise<StrippingProxy> {
  const connects: StrippingProxy['connects'] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: brokerPort });
    sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    upstream.pipe(client);
    let head: Buffer | null = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      if (head === null) {
        upstream.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const size = packetSize(head);
      if (size === null || head.length < size) return;
      const parser = mqttPacket.parser({ protocolVersion: 5 });
      let connect: mqttPacket.IConnectPacket | null = null;
      parser.on('packet', (p: mqttPacket.Packet) => {
        connect = p as mqttPacket.IConnectPacket;
      });
      parser.parse(head.subarray(0, size));
      const c = connect as mqttPacket.IConnectPacket | null;
      if (c === null || c.cmd !== 'connect') return drop();
      connects.push({ maximumPacketSize: c.properties?.maximumPacketSize, protocolVersion: c.protocolVersion });
      if (mode === 'mqtt311' && c.protocolVersion === 5) {
        client.end(Buffer.from([0x20, 0x02, 0x00, 0x01]));
        upstream.destroy();
        return;
      }
      if (mode === 'mqtt311') {
        upstream.write(head);
        head = null;
        return;
      }
      if (c.properties) delete c.properties.maximumPacketSize;
      upstream.write(mqttPacket.generate(c, { protocolVersion: c.protocolVersion }));
      upstream.write(head.subarray(size));
      head = null;
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    connects,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Total size of the packet at the start of `b` (fixed header + remaining length), or null while incomplete. */
function packetSize(b: Buffer): number | null {
  let length = 0;
  let mul = 1;
  for (let i = 1; i <= 4; i++) {
    if (i >= b.length) return null;
    const byte = b[i]!;
    length += (byte & 0x7f) * mul;
    mul *= 128;
    if ((byte & 0x80) === 0) return 1 + i + length;
  }
  return null;
}
