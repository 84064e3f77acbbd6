// The waiting room as the customer reads it: their place in line, the expected wait and, when no
// mechanic is online, when one usually is. The numbers come from the server
// (`GET /api/sessions/{id}/waiting-room`); this file only words them.

/** "You are next" or "2 requests ahead of you". */
export function placeInLineText(ahead: number): string {
  if (!Number.isInteger(ahead) || ahead < 0) {
    throw new RangeError(`a place in line is a non-negative whole number, got ${ahead}`);
  }
  if (ahead === 0) return 'You are next in line';
  return ahead === 1 ? '1 request ahead of you' : `${ahead} requests ahead of you`;
}

/** A wait in seconds as people say it: "under a minute", "about 4 minutes", "about 1 h 20 min". */
export function waitText(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new RangeError(`a wait is a non-negative number of seconds, got ${seconds}`);
  }
  if (seconds < 60) return 'under a minute';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return minutes === 1 ? 'about 1 minute' : `about ${minutes} minutes`;
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return m === 0 ? `about ${h} h` : `about ${h} h ${m} min`;
}

/** The expected-wait sentence. */
export function expectedWaitText(seconds: number): string {
  return `Expected wait: ${waitText(seconds)}`;
}

/**
 * When a mechanic is usually online, in the reader's time zone: "Mechanics are usually online
 * from Monday 09:00". `now` decides between "today", "tomorrow" and a weekday.
 */
export function usuallyOnlineText(iso: string, now: Date = new Date(), locale?: string): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) throw new RangeError(`not a time: ${iso}`);
  const time = at.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' });
  const dayStart = (d: Date) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((dayStart(at) - dayStart(now)) / 86_400_000);
  const day =
    days === 0
      ? 'today'
      : days === 1
        ? 'tomorrow'
        : at.toLocaleDateString(locale, { weekday: 'long' });
  return `Mechanics are usually online from ${day} at ${time}.`;
}
