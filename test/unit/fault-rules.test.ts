import { describe, expect, it } from 'vitest';
import { HeldCalls } from '../../functions/sync/calls/held-calls';
import { OutageBreaker } from '../../functions/sync/delivery/outage-breaker';
import { Throttle } from '../../functions/sync/delivery/throttle';
import { RunControl } from '../../functions/sync/run-control';

describe('OutageBreaker', () => {
  it('trips after the limit of fresh failures in a row; a delivery resets the count', () => {
    const b = new OutageBreaker(3);
    expect(b.failure('transient')).toBe(false);
    expect(b.failure('transient')).toBe(false);
    b.success();
    expect(b.failuresInRow).toBe(0);
    b.failure('transient');
    b.failure('transient');
    expect(b.failure('transient')).toBe(true);
    expect(b.reason()).toBe('api_unavailable');
  });

  it('names a wrong URL (404/405) and a key refused for every call', () => {
    const url = new OutageBreaker(2);
    url.failure('transient');
    url.failure('endpoint');
    expect(url.reason()).toBe('api_misconfigured');
    const key = new OutageBreaker(2);
    key.failure('forbidden');
    key.failure('forbidden');
    expect(key.reason()).toBe('api_auth');
  });
});

describe('HeldCalls', () => {
  const limits = { pendingMax: 2, parkedMax: 2, retryMaxRuns: 3 };

  it('caps pending and parked calls separately', () => {
    const held = new HeldCalls([], [], limits);
    expect(held.hold({ uniqueid: 'a', endEpoch: 1, firstSeen: 1 })).toBe(true);
    expect(held.hold({ uniqueid: 'b', endEpoch: 1, firstSeen: 1 })).toBe(true);
    expect(held.hold({ uniqueid: 'c', endEpoch: 1, firstSeen: 1 })).toBe(false);
    expect(held.park({ uniqueid: 'x', endEpoch: 1 }, { status: 500, error: 'e' }, 10)).toBe(true);
    expect(held.park({ uniqueid: 'y', endEpoch: 1 }, { status: 500, error: 'e' }, 10)).toBe(true);
    expect(held.park({ uniqueid: 'z', endEpoch: 1 }, { status: 500, error: 'e' }, 10)).toBe(false);
    expect(held.pendingCount).toBe(2);
    expect(held.parkedCount).toBe(2);
  });

  it('moves a pending call that failed to parked', () => {
    const held = new HeldCalls([{ uniqueid: 'a', endEpoch: 1, firstSeen: 1 }], [], limits);
    held.park({ uniqueid: 'a', endEpoch: 1 }, { status: 503, error: 'e' }, 10);
    expect(held.isPending('a')).toBe(false);
    expect(held.parkedCalls()).toEqual([
      { uniqueid: 'a', endEpoch: 1, failures: 0, firstFailedAt: 10, lastStatus: 503 },
    ]);
  });

  it('counts a failed run only when the API accepted other calls, and gives up after RETRY_MAX_RUNS', () => {
    const held = new HeldCalls([], [], limits);
    held.park({ uniqueid: 'p', endEpoch: 1 }, { status: 500, error: 'boom' }, 10);
    const failed = new Map([['p', { status: 500, error: 'boom' }]]);
    expect(held.settleRun(failed, true)).toEqual([]);
    // An outage run says nothing about the call.
    expect(held.settleRun(failed, false)).toEqual([]);
    expect(held.parkedCalls()[0]?.failures).toBe(1);
    expect(held.settleRun(failed, true)).toEqual([]);
    const exhausted = held.settleRun(new Map([['p', { status: 502, error: 'bad gateway' }]]), true);
    expect(exhausted).toEqual([
      { uniqueid: 'p', endEpoch: 1, failures: 3, firstFailedAt: 10, lastStatus: 502 },
    ]);
    expect(held.parkedCount).toBe(0);
  });
});

describe('Throttle', () => {
  it('halves the concurrency on a 429 once per pause, and recovers additively', () => {
    let now = 0;
    const t = new Throttle(16, () => now);
    t.onRateLimited(1000);
    expect(t.current).toBe(8);
    t.onRateLimited(1000); // answers to requests sent before the pause
    expect(t.current).toBe(8);
    now = 1001;
    t.onRateLimited(1000);
    expect(t.current).toBe(4);
    for (let i = 0; i < 4; i++) t.onDelivered();
    expect(t.current).toBe(5);
    for (let i = 0; i < 200; i++) t.onDelivered();
    expect(t.current).toBe(16);
  });

  it('pauses every worker until Retry-After', async () => {
    const t = new Throttle(4);
    const control = new RunControl(undefined);
    t.onRateLimited(150);
    const started = Date.now();
    const acquired = await Promise.all([t.acquire(control), t.acquire(control)]);
    expect(acquired).toEqual([true, true]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('stops the run as rate_limited when the pause would pass the deadline', async () => {
    const t = new Throttle(4);
    const control = new RunControl(Date.now() + 1000);
    t.onRateLimited(30_000);
    expect(await t.acquire(control)).toBe(false);
    expect(control.reason).toBe('rate_limited');
  });

  it('paces sends after a 429 just under the rate that met it', async () => {
    const t = new Throttle(16);
    const control = new RunControl(undefined);
    for (let i = 0; i < 50; i++) {
      expect(await t.acquire(control)).toBe(true);
      t.release();
    }
    t.onRateLimited(0);
    // 50 sends in the last second met the limit: 45 a second from now on.
    expect(t.pacedRate).toBe(45);
    const started = Date.now();
    for (let i = 0; i < 10; i++) {
      await t.acquire(control);
      t.release();
    }
    // Ten sends at 45 a second take about 200 ms.
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
  });

  it('lets no more requests in flight than the current limit', async () => {
    const t = new Throttle(2);
    const control = new RunControl(undefined);
    expect(await t.acquire(control)).toBe(true);
    expect(await t.acquire(control)).toBe(true);
    let third = false;
    const pending = t.acquire(control).then((v) => {
      third = v;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(third).toBe(false);
    t.release();
    await pending;
    expect(third).toBe(true);
  });
});

describe('RunControl', () => {
  it('starts no request with less than a second left, and cuts waits at the deadline', () => {
    let now = 0;
    const c = new RunControl(5_000, () => now);
    expect(c.bound(10_000)).toBe(5_000);
    now = 4_200;
    expect(c.mayStart()).toBe(false);
    expect(c.reason).toBe('time_budget');
  });
});
