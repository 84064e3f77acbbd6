import { describe, expect, it } from 'vitest';
import type { Session } from '../lib/backend';
import { DRAFT_KEY, draftFrom, keepDraft } from './again';

const session: Session = {
  id: 's1',
  status: 'cancelled',
  plan: 'standard',
  customer_id: 'c1',
  customer_name: 'Dana Driver',
  mechanic_id: null,
  mechanic_name: null,
  vehicle: { year: 2018, make: 'Honda', model: 'Civic', vin: null, mileage: 84000 },
  concern: 'Grinding noise when braking',
  created_at: '2026-01-01T00:00:00Z',
  waiver_signed_at: '2026-01-01T00:00:01Z',
  accepted_at: null,
  started_at: null,
  ends_at: null,
  ended_at: '2026-01-01T00:30:01Z',
  end_reason: 'not_accepted',
};

describe('a new request after one nobody accepted', () => {
  it('asks again what the session asked, as this browser', () => {
    const form = draftFrom(session, { id: 'c1', role: 'customer', name: 'Dana D.', email: 'dana@example.com' });
    expect(form).toMatchObject({
      name: 'Dana D.',
      email: 'dana@example.com',
      year: '2018',
      make: 'Honda',
      model: 'Civic',
      vin: '',
      mileage: '84000',
      concern: 'Grinding noise when braking',
      plan: 'standard',
      phone: '',
    });
    expect(draftFrom(session, null).name).toBe('Dana Driver');
  });

  it('keeps the draft where the intake reads it', () => {
    const saved = new Map<string, string>();
    expect(keepDraft(draftFrom(session, null), { setItem: (k, v) => void saved.set(k, v) })).toBe(true);
    expect(JSON.parse(saved.get(DRAFT_KEY) ?? '{}').make).toBe('Honda');
    expect(keepDraft(draftFrom(session, null), { setItem: () => { throw new Error('full'); } })).toBe(false);
  });
});
