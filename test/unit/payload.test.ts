import { describe, expect, it } from 'vitest';
import { type CallRow, isTransient, payloadProblem, toPayload } from '../../functions/sync/calls/payload';

const row: CallRow = {
  uniqueid: '1729771234.567',
  lead_id: 12345,
  list_id: 1001,
  campaign_id: 'SALESA',
  call_date: '2024-10-24 08:00:34',
  start_epoch: 1729771189,
  end_epoch: 1729771234,
  length_in_sec: 45,
  status: 'SALE',
  phone_code: '1',
  phone_number: '5551234567',
  user: 'agent001',
  comments: 'It\'s "fine" \\ 😀',
  user_group: 'AGENTS',
  term_reason: 'CALLER',
  alt_dial: 'MAIN',
  called_count: 2,
};

describe('toPayload', () => {
  it('maps all 18 fields with the API types', () => {
    expect(toPayload(row)).toEqual({
      uniqueid: '1729771234.567',
      leadId: '12345',
      listId: '1001',
      campaignId: 'SALESA',
      phoneNumber: '5551234567',
      phoneCode: '1',
      disposition: 'SALE',
      duration: 45,
      agentId: 'agent001',
      userGroup: 'AGENTS',
      termReason: 'CALLER',
      comments: 'It\'s "fine" \\ 😀',
      altDial: 'MAIN',
      calledCount: 2,
      callDate: '2024-10-24 08:00:34',
      startEpoch: 1729771189,
      endEpoch: 1729771234,
      timestamp: 1729771234,
    });
    expect(Object.keys(toPayload(row))).toHaveLength(18);
  });

  it('keeps NULL columns as null rather than inventing values', () => {
    const p = toPayload({ ...row, list_id: null, comments: null, called_count: null });
    expect(p.listId).toBeNull();
    expect(p.comments).toBeNull();
    expect(p.calledCount).toBeNull();
  });
});

describe('payloadProblem', () => {
  it('names every missing required field', () => {
    expect(payloadProblem(toPayload(row))).toBeUndefined();
    expect(payloadProblem(toPayload({ ...row, phone_number: null }))).toBe(
      'missing required fields: phoneNumber',
    );
    expect(payloadProblem(toPayload({ ...row, phone_number: ' ', campaign_id: '' }))).toBe(
      'missing required fields: phoneNumber, campaignId',
    );
  });
});

describe('isTransient', () => {
  it('matches the configured statuses case-insensitively', () => {
    const transient = new Set(['INCALL']);
    expect(isTransient({ status: 'INCALL' }, transient)).toBe(true);
    expect(isTransient({ status: 'incall' }, transient)).toBe(true);
    expect(isTransient({ status: 'SALE' }, transient)).toBe(false);
    expect(isTransient({ status: null }, transient)).toBe(false);
  });
});

describe('User-Agent version', () => {
  it('matches package.json', async () => {
    const { VERSION } = await import('../../functions/sync/version');
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(VERSION).toBe(pkg.version);
  });
});
