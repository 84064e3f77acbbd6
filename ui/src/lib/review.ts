// Words and rules of what a session leaves behind, shared by both shells: the urgency of a
// mechanic's summary, the summary as transcript text, and the rating's limits.

import type { MechanicSummary, Urgency } from './generated';

/** Longest rating comment, as the server checks it (crates/protocol RATING_COMMENT_MAX). */
export const RATING_COMMENT_MAX = 1000;

export const URGENCIES: readonly Urgency[] = ['routine', 'soon', 'urgent', 'stop_driving'];

/** The urgency as the customer reads it (the same words as the server's `Urgency::label`). */
export function urgencyLabel(urgency: Urgency): string {
  switch (urgency) {
    case 'routine':
      return 'Routine: at the next service';
    case 'soon':
      return 'Soon: within a few weeks';
    case 'urgent':
      return 'Urgent: within days';
    case 'stop_driving':
      return 'Stop driving until it is repaired';
  }
}

/** The summary as a block of the plain-text transcript. */
export function summaryText(summary: MechanicSummary): string {
  return [
    `Mechanic's summary (${summary.mechanic_name})`,
    'What was found:',
    summary.found,
    '',
    'What to do next:',
    summary.next_steps,
    '',
    `How urgent: ${urgencyLabel(summary.urgency)}`,
  ].join('\n');
}

/** "★★★★☆" for 4 of 5. */
export function starsText(stars: number): string {
  const n = Math.max(0, Math.min(5, Math.round(stars)));
  return '★'.repeat(n) + '☆'.repeat(5 - n);
}
