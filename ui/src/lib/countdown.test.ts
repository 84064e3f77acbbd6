import { describe, expect, it } from 'vitest';
import { clockOffset, formatRemaining, parseTime, remainingMs, sampleClockOffset } from './countdown';

describe('clockOffset', () => {
  it('is zero when both clocks agree', () => {
    expect(clockOffset(1_000_050, 1_000_000, 1_000_100)).toBe(0);
  });

  it('is positive when the local clock is behind the server', () => {
    // The server read 10:00:30 while the phone thought it was 10:00:00 (mid-trip).
    expect(clockOffset(30_000, -100, 100)).toBe(30_000);
  });

  it('is negative when the local clock is ahead', () => {
    expect(clockOffset(100_000, 190_000, 210_000)).toBe(-100_000);
  });
});

describe('remainingMs', () => {
  const endsAt = Date.parse('2026-11-25T10:30:00Z');

  it('counts on the server clock', () => {
    const localNow = Date.parse('2026-11-25T10:20:00Z');
    expect(remainingMs(endsAt, localNow, 0)).toBe(10 * 60_000);
    // The local clock is 2 minutes slow: the server is already at 10:22.
    expect(remainingMs(endsAt, localNow, 2 * 60_000)).toBe(8 * 60_000);
    // The local clock is 1 minute fast: the server is at 10:19.
    expect(remainingMs(endsAt, localNow, -60_000)).toBe(11 * 60_000);
  });

  it('never exceeds the length of the session', () => {
    const startedAt = endsAt - 10 * 60_000;
    // The offset estimate is 400 ms off: without the cap this would show 10:01.
    expect(remainingMs(endsAt, startedAt - 400, 0, startedAt)).toBe(10 * 60_000);
    expect(remainingMs(endsAt, startedAt + 60_000, 0, startedAt)).toBe(9 * 60_000);
  });

  it('is never negative', () => {
    expect(remainingMs(endsAt, endsAt + 5_000, 0)).toBe(0);
    expect(remainingMs(endsAt, endsAt, 1)).toBe(0);
    expect(remainingMs(Number.NaN, 0, 0)).toBe(0);
  });
});

describe('formatRemaining', () => {
  it('shows mm:ss', () => {
    expect(formatRemaining(10 * 60_000)).toBe('10:00');
    expect(formatRemaining(65_000)).toBe('01:05');
    expect(formatRemaining(60 * 60_000)).toBe('60:00');
    expect(formatRemaining(9_000)).toBe('00:09');
  });

  it('rounds partial seconds up and reaches 00:00 only at the end', () => {
    expect(formatRemaining(59_001)).toBe('01:00');
    expect(formatRemaining(1)).toBe('00:01');
    expect(formatRemaining(0)).toBe('00:00');
  });

  it('never shows a negative or broken time', () => {
    expect(formatRemaining(-5_000)).toBe('00:00');
    expect(formatRemaining(Number.NaN)).toBe('00:00');
    expect(formatRemaining(Number.POSITIVE_INFINITY)).toBe('00:00');
  });
});

describe('parseTime', () => {
  it('reads RFC 3339 and refuses junk', () => {
    expect(parseTime('2026-11-25T10:30:00Z')).toBe(Date.UTC(2026, 10, 25, 10, 30));
    expect(parseTime('2026-11-25T10:30:00.250+00:00')).toBe(Date.UTC(2026, 10, 25, 10, 30, 0, 250));
    expect(parseTime(null)).toBeNull();
    expect(parseTime('soon')).toBeNull();
  });
});

describe('sampleClockOffset', () => {
  it('keeps the reading with the shorter round trip', async () => {
    // Local clock readings: sent, received for each of the two samples.
    const local = [1_000, 1_400, 2_000, 2_100];
    const answers = ['1970-01-01T00:00:06.200Z', '1970-01-01T00:00:07.050Z'];
    const offset = await sampleClockOffset(
      async () => answers.shift()!,
      () => local.shift()!,
    );
    // Second sample: 100 ms round trip, midpoint 2,050, server 7,050.
    expect(offset).toBe(5_000);
  });

  it('is 0 when no answer parses', async () => {
    expect(await sampleClockOffset(async () => 'not a time')).toBe(0);
  });
});
