import { describe, expect, it } from 'vitest';
import { expectedWaitText, placeInLineText, usuallyOnlineText, waitText } from './waiting';

describe('placeInLineText', () => {
  it('says next, one ahead, or how many', () => {
    expect(placeInLineText(0)).toBe('You are next in line');
    expect(placeInLineText(1)).toBe('1 request ahead of you');
    expect(placeInLineText(2)).toBe('2 requests ahead of you');
  });

  it('refuses what is not a place', () => {
    for (const bad of [-1, 0.5, Number.NaN]) expect(() => placeInLineText(bad)).toThrow(RangeError);
  });
});

describe('waitText', () => {
  it('rounds to what people say', () => {
    expect(waitText(20)).toBe('under a minute');
    expect(waitText(64)).toBe('about 1 minute');
    expect(waitText(270)).toBe('about 5 minutes');
    expect(waitText(3600)).toBe('about 1 h');
    expect(waitText(4800)).toBe('about 1 h 20 min');
    expect(expectedWaitText(128)).toBe('Expected wait: about 2 minutes');
    expect(() => waitText(-1)).toThrow(RangeError);
  });
});

describe('usuallyOnlineText', () => {
  it('names today, tomorrow or the weekday', () => {
    const now = new Date(2026, 11, 7, 20, 30); // a Monday evening, local time
    expect(usuallyOnlineText(new Date(2026, 11, 7, 22, 0).toISOString(), now, 'en-GB')).toBe(
      'Mechanics are usually online from today at 22:00.',
    );
    expect(usuallyOnlineText(new Date(2026, 11, 8, 9, 0).toISOString(), now, 'en-GB')).toBe(
      'Mechanics are usually online from tomorrow at 09:00.',
    );
    expect(usuallyOnlineText(new Date(2026, 11, 10, 9, 0).toISOString(), now, 'en-GB')).toBe(
      'Mechanics are usually online from Thursday at 09:00.',
    );
  });
});
