import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of dynalite that, when armed, forwards the next request of a given DynamoDB
 * operation, lets it be applied, and then drops the answer (the client sees the connection reset), so
 * the SDK retries a write that already happened: the ambiguity a real network can produce.
 */
export interface LossyDynamoProxy {
  readonly endpoint: string;
  /** Drops the answer to the next `count` requests of `operation` (e.g. 'UpdateItem'). */
  dropNextAnswer(operation: string, count?: number): void;
  readonly dropped: number;
  close(): Promise<void>;
}

export async function startLossyDynamoProxy(target: string): Promise<LossyDynamoProxy> {
  const upstream = new URL(target);
  const armed = new Map<string, number>();
  let dropped = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const operation = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
      const out = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          path: req.url,
          method: req.method,
          headers: req.headers,
        },
        (answer) => {
          const body: Buffer[] = [];
          answer.on('data', (c: Buffer) => body.push(c));
          answer.on('end', () => {
            const left = armed.get(operation) ?? 0;
            if (left > 0) {
              armed.set(operation, left - 1);
              dropped++;
              req.socket.destroy();
              return;
            }
            res.writeHead(answer.statusCode ?? 500, answer.headers);
            res.end(Buffer.concat(body));
          });
        },
      );
      out.on('error', () => req.socket.destroy());
      out.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    dropNextAnswer(operation, count = 1) {
      armed.set(operation, (armed.get(operation) ?? 0) + count);
    },
    get dropped() {
      return dropped;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
