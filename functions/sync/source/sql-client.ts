/** What the sync needs of a database connection: parameterized queries, each within a time limit. */

export interface QueryOptions {
  /** The caller's time left for this query; the connection's query timeout never goes beyond it. */
  readonly timeoutMs?: number;
}

export interface SqlClient {
  query<T>(sql: string, values: readonly unknown[], options?: QueryOptions): Promise<T[]>;
}
