import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy in front of a server (MariaDB here) that can make its open flows go silent,
 * the way a NAT or a VPC's idle timeout drops a connection without a word: bytes stop moving both
 * ways, no FIN, no RST. New connections keep working.
 */
export interface TcpProxy {
  readonly port: number;
  /** Open flows stop forwarding; their sockets stay open. */
  freezeOpenFlows(): void;
  readonly flows: number;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const flows = new Set<{ client: Socket; upstream: Socket; frozen: boolean }>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    const flow = { client, upstream, frozen: false };
    flows.add(flow);
    client.on('data', (d) => {
      if (!flow.frozen) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!flow.frozen) client.write(d);
    });
    const end = () => {
      flows.delete(flow);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', () => {
      if (!flow.frozen) end();
    });
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    freezeOpenFlows() {
      for (const f of flows) f.frozen = true;
    },
    get flows() {
      return flows.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const f of flows) {
          f.client.destroy();
          f.upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
