import type { AddressInfo } from 'node:net';
import dynalite from 'dynalite';

/** dynalite: DynamoDB's wire protocol served in-process on loopback, conditional writes included. */
export interface LocalDynamoDb {
  readonly endpoint: string;
  close(): Promise<void>;
}

export async function startLocalDynamoDb(): Promise<LocalDynamoDb> {
  // createTableMs 0: tables are ACTIVE at once, as tests and the demo want them.
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}
