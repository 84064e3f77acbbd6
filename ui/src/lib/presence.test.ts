import { describe, expect, it } from 'vitest';
import { isPresent, participants, presenceEntries, presentUserIds } from './presence';

type Fixture = {
  description: string;
  customer_id: string;
  mechanic_id: string | null;
  state: unknown;
  expect: { customer_present: boolean; mechanic_present: boolean; present_user_ids: string[] };
};

// The fixtures shared with crates/protocol (Rust runs the same files).
const files = import.meta.glob<Fixture>('../../../tests/fixtures/presence/*.json', {
  eager: true,
  import: 'default',
});
const fixtures = Object.entries(files).sort(([a], [b]) => a.localeCompare(b));

describe('presence matching on the shared fixtures', () => {
  it('finds the shared fixture set', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(8);
  });

  for (const [path, f] of fixtures) {
    const name = `${path.split('/').pop()}: ${f.description}`;
    it(name, () => {
      const got = participants(f.state, f.customer_id, f.mechanic_id);
      expect(got).toEqual({
        customer_present: f.expect.customer_present,
        mechanic_present: f.expect.mechanic_present,
      });
      expect([...presentUserIds(f.state)].sort()).toEqual([...f.expect.present_user_ids].sort());
    });
  }
});

describe('presence matching', () => {
  it('never answers from keys', () => {
    const state = { 'user-1': [{ role: 'customer' }] };
    expect(isPresent(state, 'user-1')).toBe(false);
  });

  it('treats a missing id as absent and tolerates junk states', () => {
    expect(isPresent({ k: [{ user_id: 'a' }] }, null)).toBe(false);
    expect(isPresent({ k: [{ user_id: '' }] }, '')).toBe(false);
    for (const junk of [null, undefined, 42, 'x', [], [[{ user_id: 'a' }]]]) {
      expect(presenceEntries(junk)).toEqual([]);
    }
  });

  it('keeps the key of each entry for the debug view', () => {
    const state = { c1: { metas: [{ user_id: 'a', phx_ref: 'r' }] }, c2: [{ user_id: 'b' }] };
    expect(presenceEntries(state).map((e) => [e.key, e.payload.user_id])).toEqual([
      ['c1', 'a'],
      ['c2', 'b'],
    ]);
  });
});
