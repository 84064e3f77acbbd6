import { describe, expect, it } from 'vitest';
import { BackendError } from '../backend';
import {
  OUTBOX_KEY_PREFIX,
  isTransient,
  memoryOutbox,
  retryDelay,
  storageOutbox,
  type KeyValueStorage,
  type QueuedMessage,
} from './outbox';

const queued = (clientId: string): QueuedMessage => ({
  client_id: clientId,
  body: `body of ${clientId}`,
  created_at: '2026-11-25T10:00:00Z',
  sender_id: 'cust-1',
  sender_role: 'customer',
});

function mapStorage(): KeyValueStorage & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return {
    items,
    getItem: (k) => items.get(k) ?? null,
    setItem: (k, v) => void items.set(k, v),
    removeItem: (k) => void items.delete(k),
  };
}

describe('isTransient', () => {
  it.each([
    [new BackendError(0, 'network', 'offline'), true],
    [new BackendError(0, 'timeout', 'slow'), true],
    [new BackendError(408, 'request_timeout', 'slow'), true],
    [new BackendError(429, 'rate_limited', 'slow down'), true],
    [new BackendError(500, 'internal', 'oops'), true],
    [new BackendError(502, 'unexpected', 'bad gateway'), true],
    [new BackendError(503, 'unexpected', 'unavailable'), true],
    // The desktop shell passes the server's code without its status.
    [new BackendError(0, 'rate_limited', 'slow down'), true],
    [new BackendError(0, 'internal', 'oops'), true],
    [new BackendError(0, 'session_ended', 'over'), false],
    [new BackendError(0, 'not_signed_in', 'sign in'), false],
    [new BackendError(400, 'malformed_json', 'bad'), false],
    [new BackendError(401, 'unauthorized', 'who?'), false],
    [new BackendError(403, 'forbidden', 'not yours'), false],
    [new BackendError(404, 'not_found', 'gone'), false],
    [new BackendError(409, 'session_ended', 'over'), false],
    [new BackendError(409, 'not_accepted', 'not yet'), false],
    [new BackendError(422, 'validation_failed', 'bad'), false],
    [new TypeError('a bug'), false],
  ])('%s → %s', (error, transient) => {
    expect(isTransient(error)).toBe(transient);
  });
});

describe('retryDelay', () => {
  it('starts at 1 s, doubles, and stays at 15 s', () => {
    expect([0, 1, 2, 3, 4, 5, 50, 5000].map(retryDelay)).toEqual([1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000]);
  });
});

describe('storageOutbox', () => {
  it('keeps one list per session and forgets a session whose list is empty', () => {
    const storage = mapStorage();
    const outbox = storageOutbox(storage);
    outbox.save('s1', [queued('a'), queued('b')]);
    outbox.save('s2', [queued('c')]);
    expect(outbox.load('s1').map((m) => m.client_id)).toEqual(['a', 'b']);
    expect(storageOutbox(storage).load('s2')).toEqual([queued('c')]);
    outbox.save('s1', []);
    expect(storage.items.has(`${OUTBOX_KEY_PREFIX}s1`)).toBe(false);
    expect(outbox.load('s1')).toEqual([]);
  });

  it('ignores what it cannot read and survives storage that throws', () => {
    const storage = mapStorage();
    storage.setItem(`${OUTBOX_KEY_PREFIX}s1`, '{not json');
    storage.setItem(`${OUTBOX_KEY_PREFIX}s2`, JSON.stringify([queued('ok'), { client_id: 7 }, null, 'x']));
    const outbox = storageOutbox(storage);
    expect(outbox.load('s1')).toEqual([]);
    expect(outbox.load('s2')).toEqual([queued('ok')]);

    const full: KeyValueStorage = {
      getItem: () => {
        throw new Error('SecurityError');
      },
      setItem: () => {
        throw new Error('QuotaExceededError');
      },
      removeItem: () => undefined,
    };
    expect(() => storageOutbox(full).save('s1', [queued('a')])).not.toThrow();
    expect(storageOutbox(full).load('s1')).toEqual([]);
  });
});

describe('memoryOutbox', () => {
  it('keeps copies, so later changes to a list do not leak in', () => {
    const outbox = memoryOutbox();
    const list = [queued('a')];
    outbox.save('s1', list);
    list.push(queued('b'));
    expect(outbox.load('s1').map((m) => m.client_id)).toEqual(['a']);
    outbox.save('s1', []);
    expect(outbox.load('s1')).toEqual([]);
  });
});
