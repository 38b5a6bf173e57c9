import { describe, expect, it } from 'vitest';
import { judgeHealth } from '../../functions/sync/delivery/api-health';

describe('judgeHealth', () => {
  it('accepts a JSON 2xx, on either path', () => {
    expect(judgeHealth([{ path: '/api/health', status: 200, json: true }])).toEqual({
      key: { status: 'pass', message: 'API key accepted (GET /api/health: 200)' },
      redirect: { status: 'pass', message: 'no redirect (GET /api/health: 200)' },
    });
  });

  it('does not take an HTML 200 from a proxy or a parked domain for the API', () => {
    const v = judgeHealth([{ path: '/api/health', status: 200, json: false, contentType: 'text/html' }]);
    expect(v.key.status).toBe('fail');
    expect(v.key.message).toBe(
      'GET /api/health answered 200 with text/html that is not JSON: a proxy or a moved site, not the DID Optimizer',
    );
  });

  it('reports server errors and a redirect without a Location', () => {
    expect(
      judgeHealth([
        { path: '/api/health', status: 503, json: false },
        { path: '/api/v1/health', status: 502, json: false },
      ]).key,
    ).toEqual({ status: 'fail', message: 'the API answered GET /api/health: 503, GET /api/v1/health: 502' });
    const v = judgeHealth([{ path: '/api/health', status: 302, json: false }]);
    expect(v.redirect.message).toMatch(
      /^GET \/api\/health answered HTTP 302 without a Location; not followed/,
    );
  });

  it('skips the redirect check when the API cannot be reached', () => {
    const v = judgeHealth([{ path: '/api/health', error: 'fetch failed (ECONNREFUSED)' }]);
    expect(v.key).toEqual({
      status: 'fail',
      message: 'cannot reach the API: GET /api/health: fetch failed (ECONNREFUSED)',
    });
    expect(v.redirect.status).toBe('skip');
  });
});
