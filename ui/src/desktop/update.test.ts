import { describe, expect, it } from 'vitest';
import { describeUpdate, needsAttention, progress } from './update';

describe('update wording', () => {
  it('says where a download is', () => {
    expect(progress(12_345_678, 66_100_000)).toBe('12.3 of 66.1 MB');
    expect(progress(500_000, null)).toBe('0.5 MB');
  });

  it('names both versions when one is available', () => {
    expect(describeUpdate({ state: 'available', version: '1.4.0', notes: null }, '1.3.2')).toBe(
      'Wrenchline 1.4.0 is available (you have 1.3.2).',
    );
    expect(describeUpdate({ state: 'up_to_date' }, '1.3.2')).toBe('Wrenchline 1.3.2 is up to date.');
    expect(describeUpdate({ state: 'off', reason: 'Updates are turned off by your IT department.' }, '1')).toMatch(/IT department/);
  });

  it('asks for attention only when there is something to do or a refused package', () => {
    expect(needsAttention({ state: 'available', version: '2.0.0', notes: null })).toBe(true);
    expect(needsAttention({ state: 'installed', version: '2.0.0' })).toBe(true);
    expect(needsAttention({ state: 'failed', version: '2.0.0', message: 'bad signature' })).toBe(true);
    expect(needsAttention({ state: 'failed', version: null, message: 'server unreachable' })).toBe(false);
    expect(needsAttention({ state: 'up_to_date' })).toBe(false);
    expect(needsAttention({ state: 'checking' })).toBe(false);
  });
});
