import { describe, expect, it, vi } from 'vitest';
import { flushLogLines, LineBatch, SyncLogger } from '../../functions/sync/log';

/** A stream that records each write(2) it would have made. */
function recorder() {
  const writes: string[] = [];
  return {
    writes,
    stream: { write: (text: string) => writes.push(text) } as unknown as NodeJS.WritableStream,
  };
}

describe('log lines', () => {
  it('writes routine lines together, in order, when flushed', () => {
    const { writes, stream } = recorder();
    const batch = new LineBatch(stream);
    batch.add('{"a":1}');
    batch.add('{"a":2}');
    expect(writes).toEqual([]);
    batch.flush();
    expect(writes).toEqual(['{"a":1}\n{"a":2}\n']);
    batch.flush();
    expect(writes).toHaveLength(1);
  });

  it('writes a warning at once, after the routine lines logged before it', () => {
    const out = recorder();
    const logger = new SyncLogger({ serviceName: 'did-sync-test', logLevel: 'INFO' }, out.stream);
    logger.info('first', { event: 'first' });
    logger.info('second', { event: 'second' });
    expect(out.writes).toEqual([]);
    logger.warn('problem', { event: 'problem' });
    const events = out.writes
      .join('')
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { event: string; level: string }).event);
    expect(events).toEqual(['first', 'second', 'problem']);
    expect(out.writes).toHaveLength(2);
  });

  it('prints the same JSON line as Powertools, and flushLogLines writes what waits', () => {
    const out = recorder();
    const logger = new SyncLogger({ serviceName: 'did-sync-test', logLevel: 'INFO' }, out.stream);
    logger.info('call_sent', { event: 'call_sent', uniqueid: '1780000000.1', durationMs: 51 });
    flushLogLines();
    const line = JSON.parse(out.writes.join('')) as Record<string, unknown>;
    expect(line).toMatchObject({
      level: 'INFO',
      message: 'call_sent',
      service: 'did-sync-test',
      event: 'call_sent',
      uniqueid: '1780000000.1',
      durationMs: 51,
    });
    expect(typeof line.timestamp).toBe('string');
  });

  it("keeps Powertools' replacer for values it changes (a bigint, an error, a cycle)", () => {
    const out = recorder();
    const logger = new SyncLogger({ serviceName: 'did-sync-test', logLevel: 'INFO' }, out.stream);
    const cycle: Record<string, unknown> = { name: 'loop' };
    cycle.self = cycle;
    logger.info('odd_values', { event: 'odd_values', big: 10n, failure: new Error('boom'), cycle });
    flushLogLines();
    const line = JSON.parse(out.writes.join('')) as Record<string, unknown>;
    expect(line.big).toBe('10');
    expect(line.failure).toMatchObject({ name: 'Error', message: 'boom' });
    expect(line.cycle).toEqual({ name: 'loop' });
  });

  it('writes a routine line within its batch interval (50 ms) without a flush', () => {
    vi.useFakeTimers();
    try {
      const out = recorder();
      const batch = new LineBatch(out.stream);
      batch.add('{"late":true}');
      vi.advanceTimersByTime(49);
      expect(out.writes).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(out.writes).toEqual(['{"late":true}\n']);
    } finally {
      vi.useRealTimers();
    }
  });
});
