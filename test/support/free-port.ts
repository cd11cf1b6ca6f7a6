import { createServer } from 'node:net';

/**
 * A loopback port nobody listens on right now (the kernel's pick for port 0), for a test that
 * must tell a program the port before the program starts. No side effects on import.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
