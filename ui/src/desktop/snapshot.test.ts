import { describe, expect, it } from 'vitest';
import { Heard } from './snapshot';

type State = { feed_status: string; availability: string; version: string };

describe('the load-time snapshot and the events', () => {
  it('keeps what an event told while the snapshot was on its way', () => {
    const heard = new Heard<keyof State>();
    let feed = 'connecting';
    const onFeed = heard.on('feed_status', (status: string) => (feed = status));
    onFeed('live'); // sent after the snapshot was read, arrived before its answer
    const snapshot: State = { feed_status: 'connecting', availability: 'away', version: '1.2.3' };
    expect(heard.untold(snapshot)).toEqual({ availability: 'away', version: '1.2.3' });
    expect(feed).toBe('live');
  });

  it('takes the whole snapshot when no event came', () => {
    const heard = new Heard<keyof State>();
    heard.on('availability', () => undefined); // registered, never called
    const snapshot: State = { feed_status: 'reconnecting', availability: 'online', version: '2.0.0' };
    expect(heard.untold(snapshot)).toEqual(snapshot);
  });
});
