// The plain-text transcript a customer can download when a session is over; each attachment is
// listed in place (kind, size), under its message's time.

import { describe } from './attachments';
import type { MechanicSummary, Session } from './backend';
import type { ChatEntry } from './messages';
import { summaryText } from './review';

function stamp(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

/**
 * The transcript: a header about the session, the mechanic's summary when there is one, then one
 * block per stored message, in seq order.
 */
export function transcriptText(
  session: Session,
  entries: readonly ChatEntry[],
  summary: MechanicSummary | null = null,
): string {
  const v = session.vehicle;
  const lines = [
    'Wrenchline session transcript',
    `Session: ${session.id}`,
    `Vehicle: ${v.year} ${v.make} ${v.model}${v.vin ? ` (VIN ${v.vin})` : ''}`,
    `Customer: ${session.customer_name}`,
    `Mechanic: ${session.mechanic_name ?? '—'}`,
    `Started: ${session.started_at ? stamp(session.started_at) : '—'}`,
    `Ended: ${session.ended_at ? stamp(session.ended_at) : '—'}`,
    '',
    'Concern:',
    session.concern,
    '',
    ...(summary ? ['---', '', summaryText(summary), ''] : []),
    '---',
    '',
  ];
  const name = (e: ChatEntry) =>
    e.sender_role === 'mechanic'
      ? `${session.mechanic_name ?? 'Mechanic'} (mechanic)`
      : `${session.customer_name} (customer)`;
  for (const e of entries) {
    if (e.id === null) continue;
    lines.push(`[${stamp(e.created_at)}] ${name(e)}:`);
    if (e.body) lines.push(e.body);
    for (const a of e.attachments) lines.push(`[${describe(a)}, attachment ${a.id}]`);
    lines.push('');
  }
  return lines.join('\n');
}

/** A file name like `wrenchline-2018-honda-civic-1a2b3c4d.txt`. */
export function transcriptFileName(session: Session): string {
  const v = session.vehicle;
  const slug = `${v.year}-${v.make}-${v.model}`
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
  return `wrenchline-${slug || 'session'}-${session.id.slice(0, 8)}.txt`;
}
