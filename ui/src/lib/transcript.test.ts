import { describe, expect, it } from 'vitest';
import type { Session } from './backend';
import { mergeMessages, pendingEntry } from './messages';
import { transcriptFileName, transcriptText } from './transcript';

const session: Session = {
  id: '1a2b3c4d-0000-4000-8000-000000000000',
  status: 'completed',
  plan: 'trial',
  customer_id: 'c',
  customer_name: 'Dana',
  mechanic_id: 'm',
  mechanic_name: 'Sam',
  vehicle: { year: 2018, make: 'Honda', model: 'Civic Type R', vin: null, mileage: null },
  concern: 'Grinding <b>noise</b>',
  created_at: '2026-11-25T10:00:00Z',
  waiver_signed_at: null,
  accepted_at: null,
  started_at: '2026-11-25T10:02:00Z',
  ends_at: '2026-11-25T10:12:00Z',
  ended_at: '2026-11-25T10:07:30Z',
  end_reason: 'ended_by_customer',
};

describe('transcript', () => {
  it('lists the stored messages in order with who said what, as plain text', () => {
    let entries = mergeMessages([], [
      { id: 'b', session_id: session.id, seq: 2, sender_id: 'm', sender_role: 'mechanic', body: 'Worn pads.', client_id: 'y', created_at: '2026-11-25T10:04:00Z' },
      { id: 'a', session_id: session.id, seq: 1, sender_id: 'c', sender_role: 'customer', body: 'It grinds.', client_id: 'x', created_at: '2026-11-25T10:03:00Z' },
    ]);
    entries = [...entries, pendingEntry('z', 'never sent', { id: 'c', role: 'customer' })];
    const text = transcriptText(session, entries);
    expect(text).toContain('Vehicle: 2018 Honda Civic Type R');
    expect(text).toContain('Concern:\nGrinding <b>noise</b>');
    expect(text).toContain('[2026-11-25 10:03:00 UTC] Dana (customer):\nIt grinds.\n\n[2026-11-25 10:04:00 UTC] Sam (mechanic):\nWorn pads.');
    expect(text).not.toContain('never sent');
    expect(text).not.toContain("Mechanic's summary");
  });

  it('carries the mechanic\'s summary before the messages', () => {
    const entries = mergeMessages([], [
      { id: 'a', session_id: session.id, seq: 1, sender_id: 'c', sender_role: 'customer', body: 'It grinds.', client_id: 'x', created_at: '2026-11-25T10:03:00Z' },
    ]);
    const text = transcriptText(session, entries, {
      session_id: session.id,
      mechanic_name: 'Sam',
      found: 'Front pads worn',
      next_steps: 'Replace pads',
      urgency: 'soon',
      updated_at: '2026-11-25T10:10:00Z',
    });
    const summaryAt = text.indexOf("Mechanic's summary (Sam)");
    expect(summaryAt).toBeGreaterThan(text.indexOf('Concern:'));
    expect(summaryAt).toBeLessThan(text.indexOf('It grinds.'));
    expect(text).toContain('How urgent: Soon: within a few weeks');
  });

  it('names the file after the vehicle and the session', () => {
    expect(transcriptFileName(session)).toBe('wrenchline-2018-honda-civic-type-r-1a2b3c4d.txt');
  });
});
