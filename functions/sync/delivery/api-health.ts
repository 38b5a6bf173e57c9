/**
 * Asks the DID Optimizer whether it accepts the key, without sending a call: every POST to
 * /api/v1/call-results counts as DID usage there, so a check may only GET the health endpoint. The
 * public server answers `/api/health`, the original guide names `/api/v1/health`: both are tried.
 *
 * Redirects are never followed: fetch would send the x-api-key header on to wherever the Location
 * points, and the sync's POSTs would not survive a redirect anyway (they turn into GETs).
 */

export const HEALTH_PATHS = ['/api/health', '/api/v1/health'] as const;

export interface HealthProbe {
  readonly path: string;
  readonly status?: number;
  readonly location?: string;
  readonly contentType?: string;
  /** The body parsed as JSON. */
  readonly json?: boolean;
  readonly error?: string;
}

export interface HealthOptions {
  readonly baseUrl: string;
  readonly key: string;
  readonly userAgent: string;
  readonly signal: AbortSignal;
}

function networkError(error: unknown): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'no answer in time';
  const cause = e?.cause?.code ?? e?.cause?.message;
  return cause ? `${e?.message ?? 'network error'} (${cause})` : (e?.message ?? String(error));
}

async function probe(options: HealthOptions, path: string): Promise<HealthProbe> {
  let response: Response;
  try {
    response = await fetch(`${options.baseUrl.replace(/\/+$/, '')}${path}`, {
      method: 'GET',
      headers: { 'x-api-key': options.key, 'user-agent': options.userAgent, accept: 'application/json' },
      redirect: 'manual',
      signal: options.signal,
    });
  } catch (error) {
    return { path, error: networkError(error) };
  }
  const location = response.headers.get('location') ?? undefined;
  const contentType = response.headers.get('content-type') ?? undefined;
  let json = false;
  try {
    const body = await response.text();
    JSON.parse(body);
    json = true;
  } catch {
    // Not JSON (or the body broke off): only a 2xx cares, and says so.
  }
  return {
    path,
    status: response.status,
    ...(location ? { location } : {}),
    ...(contentType ? { contentType } : {}),
    json,
  };
}

/**
 * GETs the health paths in order until one answers anything but 404 or a 5xx; a redirect, a refused
 * key or a network failure ends the probing (the other path would tell the same).
 */
export async function probeHealth(options: HealthOptions): Promise<HealthProbe[]> {
  const probes: HealthProbe[] = [];
  for (const path of HEALTH_PATHS) {
    const result = await probe(options, path);
    probes.push(result);
    if (result.status === undefined || (result.status !== 404 && result.status < 500)) break;
  }
  return probes;
}

export interface HealthVerdict {
  readonly key: { readonly status: 'pass' | 'fail'; readonly message: string };
  readonly redirect: { readonly status: 'pass' | 'fail' | 'skip'; readonly message: string };
}

const shown = (p: HealthProbe) => `GET ${p.path}: ${p.status ?? p.error}`;

/** Reads the probes as two checks: is the key accepted, and does the URL stay where it is. */
export function judgeHealth(probes: readonly HealthProbe[]): HealthVerdict {
  const trail = probes.map(shown).join(', ');
  const redirected = probes.find((p) => p.status !== undefined && p.status >= 300 && p.status < 400);
  const unreachable = probes.find((p) => p.status === undefined);
  const redirect: HealthVerdict['redirect'] = redirected
    ? {
        status: 'fail',
        message:
          `GET ${redirected.path} answered HTTP ${redirected.status}` +
          `${redirected.location ? ` to ${redirected.location}` : ' without a Location'}; not followed ` +
          '(the API key must not reach another origin, and a POST does not survive a redirect): ' +
          'set the API URL to where it points',
      }
    : unreachable
      ? { status: 'skip', message: `not checked: ${shown(unreachable)}` }
      : { status: 'pass', message: `no redirect (${trail})` };

  const last = probes[probes.length - 1];
  let key: HealthVerdict['key'];
  if (!last) {
    key = { status: 'fail', message: 'no health endpoint was asked' };
  } else if (redirected) {
    key = {
      status: 'fail',
      message: `not checked: GET ${redirected.path} redirected (HTTP ${redirected.status})`,
    };
  } else if (last.status === undefined) {
    key = { status: 'fail', message: `cannot reach the API: ${shown(last)}` };
  } else if (last.status === 401 || last.status === 403) {
    key = { status: 'fail', message: `API key rejected (HTTP ${last.status})` };
  } else if (last.status >= 200 && last.status < 300 && !last.json) {
    key = {
      status: 'fail',
      message: `GET ${last.path} answered ${last.status} with ${last.contentType ?? 'a body'} that is not JSON: a proxy or a moved site, not the DID Optimizer`,
    };
  } else if (last.status >= 200 && last.status < 300) {
    key = { status: 'pass', message: `API key accepted (${trail})` };
  } else if (probes.every((p) => p.status === 404)) {
    key = {
      status: 'fail',
      message: `no health endpoint found (${trail}): is the API URL the DID Optimizer's base URL?`,
    };
  } else {
    key = { status: 'fail', message: `the API answered ${trail}` };
  }
  return { key, redirect };
}
