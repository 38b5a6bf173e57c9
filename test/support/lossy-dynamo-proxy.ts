import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of dynalite that, when armed, forwards the next request of a given DynamoDB
 * operation, lets it be applied, and then drops the answer (the client sees the connection reset), so
 * the SDK retries a write that already happened: the ambiguity a real network can produce. It can also
 * fail chosen requests outright (a write that never happens).
 */
export interface LossyDynamoProxy {
  readonly endpoint: string;
  /** Drops the answer to the next `count` requests of `operation` (e.g. 'UpdateItem'). */
  dropNextAnswer(operation: string, count?: number): void;
  /** Answers 500 InternalServerError, without forwarding, to every request the rule matches. */
  failWhen(rule: ((operation: string, body: string) => boolean) | null): void;
  /** Requests answered 500 by `failWhen`. */
  readonly failed: number;
  readonly dropped: number;
  close(): Promise<void>;
}

export async function startLossyDynamoProxy(target: string): Promise<LossyDynamoProxy> {
  const upstream = new URL(target);
  const armed = new Map<string, number>();
  let dropped = 0;
  let failed = 0;
  let failRule: ((operation: string, body: string) => boolean) | null = null;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const operation = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
      const body = Buffer.concat(chunks);
      if (failRule?.(operation, body.toString('utf8'))) {
        failed++;
        res.writeHead(500, { 'content-type': 'application/x-amz-json-1.0' });
        res.end('{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"scripted"}');
        return;
      }
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
      out.end(body);
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
    failWhen(rule) {
      failRule = rule;
    },
    get failed() {
      return failed;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
