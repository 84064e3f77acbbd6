// Countdown arithmetic. Time is the server's: a client measures its clock offset against
// `GET /api/time` and counts down to the session's `ends_at` on the corrected clock, so a phone
// whose clock is minutes off still shows the right time left.

/**
 * The server clock minus the local clock, in ms, from one round trip: the server read its clock
 * somewhere between sending and receiving, best guessed as the midpoint.
 */
export function clockOffset(serverNowMs: number, sentAtMs: number, receivedAtMs: number): number {
  const midpoint = sentAtMs + (receivedAtMs - sentAtMs) / 2;
  return Math.round(serverNowMs - midpoint);
}

/**
 * The server clock's offset from this one, from two readings of the server's time (`readServerNow`
 * answers its `now` as text); the reading with the shorter round trip has the smaller error. 0 when
 * no reading parses.
 */
export async function sampleClockOffset(
  readServerNow: () => Promise<string>,
  localNow: () => number = Date.now,
): Promise<number> {
  let best: { rtt: number; offset: number } | null = null;
  for (let i = 0; i < 2; i++) {
    const sent = localNow();
    const now = await readServerNow();
    const received = localNow();
    const server = parseTime(now);
    if (server === null) continue;
    const rtt = received - sent;
    if (!best || rtt < best.rtt) best = { rtt, offset: clockOffset(server, sent, received) };
  }
  return best?.offset ?? 0;
}

/**
 * Milliseconds left until `endsAtMs` on the server clock; never negative, and never more than the
 * session's length when its start is known (a clock offset a few ms off must not show 10:01 for a
 * 10-minute plan).
 */
export function remainingMs(
  endsAtMs: number,
  localNowMs: number,
  offsetMs: number,
  startedAtMs: number | null = null,
): number {
  let left = endsAtMs - (localNowMs + offsetMs);
  if (startedAtMs !== null && Number.isFinite(startedAtMs)) left = Math.min(left, endsAtMs - startedAtMs);
  return Number.isFinite(left) && left > 0 ? left : 0;
}

/**
 * "mm:ss" for people (minutes may pass 59: a 60-minute plan starts at "60:00"). Seconds are
 * rounded up so the display reaches "00:00" only when the time is really up.
 */
export function formatRemaining(ms: number): string {
  const total = Number.isFinite(ms) && ms > 0 ? Math.ceil(ms / 1000) : 0;
  const minutes = Math.floor(total / 60);
  const seconds = total % 60;
  return `${String(minutes).padStart(2, '0')}:${String(seconds).padStart(2, '0')}`;
}

/** Parses an RFC 3339 timestamp to ms since the epoch, or null. */
export function parseTime(value: string | null | undefined): number | null {
  if (!value) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}
