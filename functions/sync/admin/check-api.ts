import { type HealthVerdict, judgeHealth, probeHealth } from '../delivery/api-health';
import { bounded, type CheckDeps } from './check-result';

/** The API's checks: the key is accepted and the URL does not redirect (no call is ever posted). */

export async function apiChecks(deps: CheckDeps, timeoutMs: number): Promise<HealthVerdict> {
  let target: { url: string; key: string };
  try {
    target = await bounded(timeoutMs, () => deps.api());
  } catch (error) {
    return {
      key: { status: 'fail', message: `cannot read the API settings: ${(error as Error).message}` },
      redirect: { status: 'skip', message: 'not checked: no API settings' },
    };
  }
  // The signal ends both requests at the check's deadline; probeHealth reports that as "no answer".
  const probes = await bounded(timeoutMs + 1_000, (signal) =>
    probeHealth({
      baseUrl: target.url,
      key: target.key,
      userAgent: deps.userAgent,
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    }),
  );
  return judgeHealth(probes);
}
