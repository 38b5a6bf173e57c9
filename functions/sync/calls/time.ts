/** Epoch seconds as an ISO-8601 instant (UTC), the way every report and message says a time. */
export function isoOf(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString();
}
