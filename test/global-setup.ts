import 'vitest';
import type { TestProject } from 'vitest/node';
import { startLocalMariaDb } from './support/local-mariadb';

declare module 'vitest' {
  export interface ProvidedContext {
    mysqlUrl: string;
  }
}

/** One throwaway MariaDB for the whole run (or TEST_MYSQL_URL); each test file creates its own database. */
export default async function setup(project: TestProject) {
  const db = await startLocalMariaDb();
  project.provide('mysqlUrl', db.url);
  return async () => {
    await db.stop();
  };
}
