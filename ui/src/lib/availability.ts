// How many mechanics are online, as the customer's pages say it, and the polling that keeps the
// number fresh while the page is visible (a hidden tab asks nothing of the server).

/** Where the sentence appears: before a request exists, or while one waits for a mechanic. */
export type AvailabilityContext = 'intake' | 'waiting';

/** How often the count is asked for while the page is visible. */
export const AVAILABILITY_EVERY_MS = 30_000;

/**
 * The sentence for `count` mechanics online. With none it says so plainly and what happens to the
 * request, since a customer may otherwise think it was lost.
 */
export function mechanicsOnlineText(count: number, context: AvailabilityContext): string {
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`a mechanic count is a non-negative whole number, got ${count}`);
  }
  if (count === 1) return '1 mechanic online';
  if (count > 1) return `${count} mechanics online`;
  return context === 'intake'
    ? 'No mechanic is online right now. You can still send your request: it stays open, and your chat page shows it as soon as a mechanic accepts.'
    : 'No mechanic is online right now. Your request stays open, and this page shows it as soon as a mechanic accepts.';
}

/** The part of `document` the poller needs, so tests can hand it a stand-in. */
export type Visibility = Pick<Document, 'hidden' | 'addEventListener' | 'removeEventListener'>;

/**
 * Calls `load` now and then every `every` ms while `doc` is visible, and at once when it becomes
 * visible again; hands each answer to `apply`, or `null` when the load failed (the count is then
 * unknown, and nothing should be claimed). An answer that arrives after a newer one is dropped.
 * Returns the function that stops it.
 */
export function pollWhileVisible<T = number>(
  load: () => Promise<T>,
  apply: (value: T | null) => void,
  { every = AVAILABILITY_EVERY_MS, doc = document as Visibility } = {},
): () => void {
  let timer: ReturnType<typeof setInterval> | null = null;
  let asked = 0;
  let applied = 0;
  let stopped = false;

  const ask = () => {
    const n = ++asked;
    load().then(
      (count) => settle(n, count),
      () => settle(n, null),
    );
  };
  const settle = (n: number, value: T | null) => {
    if (stopped || n < applied) return;
    applied = n;
    apply(value);
  };
  const pause = () => {
    if (timer !== null) clearInterval(timer);
    timer = null;
  };
  const resume = () => {
    pause();
    ask();
    timer = setInterval(ask, every);
  };
  const onVisibility = () => (doc.hidden ? pause() : resume());

  doc.addEventListener('visibilitychange', onVisibility);
  if (!doc.hidden) resume();
  return () => {
    stopped = true;
    pause();
    doc.removeEventListener('visibilitychange', onVisibility);
  };
}
