import { describe, expect, it } from 'vitest';
import { starsText, summaryText, urgencyLabel, URGENCIES } from './review';

describe('review words', () => {
  it('labels every urgency', () => {
    for (const u of URGENCIES) expect(urgencyLabel(u)).toMatch(/\w/);
    expect(urgencyLabel('stop_driving')).toBe('Stop driving until it is repaired');
  });

  it('writes the summary for the transcript', () => {
    const text = summaryText({
      session_id: 's',
      mechanic_name: 'Sam',
      found: 'Worn pads',
      next_steps: 'Replace them',
      urgency: 'urgent',
      updated_at: '2026-12-07T09:00:00Z',
    });
    expect(text).toContain("Mechanic's summary (Sam)");
    expect(text).toContain('Worn pads');
    expect(text).toContain('How urgent: Urgent: within days');
  });

  it('draws stars', () => {
    expect(starsText(4)).toBe('★★★★☆');
    expect(starsText(9)).toBe('★★★★★');
  });
});
