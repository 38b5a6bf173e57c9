import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Secrets Manager's GetSecretValue over its real JSON wire protocol, on loopback: lets the demo drive the
 * real handler and the real SDK client without an AWS account.
 */
export interface LocalSecretsManager {
  readonly endpoint: string;
  put(secretId: string, value: string, stage?: 'AWSCURRENT' | 'AWSPENDING'): void;
  readonly reads: number;
  close(): Promise<void>;
}

export async function startLocalSecretsManager(): Promise<LocalSecretsManager> {
  const values = new Map<string, string>();
  let reads = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(body));
      };
      if (target !== 'secretsmanager.GetSecretValue') {
        return reply(400, { __type: 'InvalidRequestException', message: `unsupported ${target}` });
      }
      const input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as {
        SecretId?: string;
        VersionStage?: string;
      };
      const stage = input.VersionStage ?? 'AWSCURRENT';
      const value = values.get(`${stage}:${input.SecretId}`);
      reads++;
      if (value === undefined) {
        return reply(400, {
          __type: 'ResourceNotFoundException',
          message: "Secrets Manager can't find the specified secret.",
        });
      }
      return reply(200, {
        ARN: input.SecretId,
        Name: input.SecretId,
        SecretString: value,
        VersionId: `${stage}-1`,
        VersionStages: [stage],
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    put(secretId, value, stage = 'AWSCURRENT') {
      values.set(`${stage}:${secretId}`, value);
    },
    get reads() {
      return reads;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
