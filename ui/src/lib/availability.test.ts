import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mechanicsOnlineText, pollWhileVisible, type Visibility } from './availability';

describe('mechanicsOnlineText', () => {
  it('counts one mechanic in the singular and more in the plural', () => {
    expect(mechanicsOnlineText(1, 'intake')).toBe('1 mechanic online');
    expect(mechanicsOnlineText(1, 'waiting')).toBe('1 mechanic online');
    expect(mechanicsOnlineText(2, 'intake')).toBe('2 mechanics online');
    expect(mechanicsOnlineText(17, 'waiting')).toBe('17 mechanics online');
  });

  it('says plainly that nobody is online and that the request stays open', () => {
    const intake = mechanicsOnlineText(0, 'intake');
    const waiting = mechanicsOnlineText(0, 'waiting');
    for (const text of [intake, waiting]) {
      expect(text).toMatch(/^No mechanic is online right now\./);
      expect(text).toContain('stays open');
      expect(text).not.toMatch(/\d/);
    }
    // Before a request exists it invites sending one; while waiting it points at this page.
    expect(intake).toContain('You can still send your request');
    expect(waiting).toContain('this page shows it');
    expect(waiting).not.toContain('send your request');
  });

  it('refuses counts that are not whole and non-negative', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => mechanicsOnlineText(bad, 'intake')).toThrow(RangeError);
    }
  });
});

/** A document whose visibility the test switches. */
class FakeDocument extends EventTarget {
  hidden = false;

  show(visible: boolean) {
    this.hidden = !visible;
    this.dispatchEvent(new Event('visibilitychange'));
  }
}

describe('pollWhileVisible', () => {
  let doc: FakeDocument;
  let calls: number;
  let answers: (number | null)[];
  let nextCount: number;
  let failNext: boolean;

  const load = () => {
    calls += 1;
    if (failNext) {
      failNext = false;
      return Promise.reject(new Error('network'));
    }
    return Promise.resolve(nextCount);
  };
  const start = () =>
    pollWhileVisible(load, (count) => answers.push(count), { every: 30_000, doc: doc as unknown as Visibility });

  beforeEach(() => {
    vi.useFakeTimers();
    doc = new FakeDocument();
    calls = 0;
    answers = [];
    nextCount = 0;
    failNext = false;
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it('asks at once and then every 30 s while visible', async () => {
    const stop = start();
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(1);
    expect(answers).toEqual([0]);

    nextCount = 2;
    await vi.advanceTimersByTimeAsync(29_999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(2);
    expect(answers).toEqual([0, 2]);

    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toBe(4);
    stop();
  });

  it('asks nothing while hidden and catches up as soon as it is visible again', async () => {
    const stop = start();
    await vi.advanceTimersByTimeAsync(0);
    doc.show(false);
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    expect(calls).toBe(1);

    nextCount = 1;
    doc.show(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(2);
    expect(answers.at(-1)).toBe(1);
    stop();
  });

  it('starts only once a hidden page becomes visible', async () => {
    doc.hidden = true;
    const stop = start();
    await vi.advanceTimersByTimeAsync(90_000);
    expect(calls).toBe(0);
    doc.show(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(1);
    stop();
  });

  it('reports a failed load as unknown and recovers on the next one', async () => {
    failNext = true;
    const stop = start();
    await vi.advanceTimersByTimeAsync(0);
    expect(answers).toEqual([null]);
    nextCount = 3;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(answers).toEqual([null, 3]);
    stop();
  });

  it('drops an answer that arrives after a newer one', async () => {
    const pending: ((n: number) => void)[] = [];
    const stop = pollWhileVisible(
      () => new Promise<number>((resolve) => pending.push(resolve)),
      (count) => answers.push(count),
      { every: 30_000, doc: doc as unknown as Visibility },
    );
    await vi.advanceTimersByTimeAsync(30_000);
    expect(pending).toHaveLength(2);
    pending[1](4);
    await vi.advanceTimersByTimeAsync(0);
    pending[0](9);
    await vi.advanceTimersByTimeAsync(0);
    expect(answers).toEqual([4]);
    stop();
  });

  it('stops asking and applying once stopped', async () => {
    const stop = start();
    await vi.advanceTimersByTimeAsync(0);
    stop();
    await vi.advanceTimersByTimeAsync(120_000);
    doc.show(false);
    doc.show(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(1);
    expect(answers).toEqual([0]);
  });
});
