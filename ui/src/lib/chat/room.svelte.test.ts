import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  BackendError,
  type Backend,
  type Message,
  type Session,
  type SessionHandlers,
  type User,
} from '../backend';
import { OUTBOX_KEY_PREFIX, storageOutbox, type KeyValueStorage } from './outbox';
import { ChatRoom } from './room.svelte';

const customer: User = { id: 'cust-1', role: 'customer', name: 'Dana', email: 'd@example.com' };

function session(extra: Partial<Session> = {}): Session {
  return {
    id: 's1',
    status: 'pending',
    plan: 'trial',
    customer_id: 'cust-1',
    customer_name: 'Dana',
    mechanic_id: null,
    mechanic_name: null,
    vehicle: { year: 2018, make: 'Honda', model: 'Civic', vin: null, mileage: null },
    concern: 'Grinding noise when braking',
    created_at: '2026-11-25T10:00:00Z',
    waiver_signed_at: '2026-11-25T10:01:00Z',
    accepted_at: null,
    started_at: null,
    ends_at: null,
    ended_at: null,
    end_reason: null,
    ...extra,
  };
}

function message(seq: number, extra: Partial<Message> = {}): Message {
  return {
    id: `m${seq}`,
    session_id: 's1',
    seq,
    sender_id: 'mech-1',
    sender_role: 'mechanic',
    body: `hello ${seq}`,
    client_id: `c${seq}`,
    created_at: '2026-11-25T10:05:00Z',
    ...extra,
  };
}

/** A backend whose server side the test plays by hand. */
class FakeBackend implements Backend {
  current = session();
  stored: Message[] = [];
  handlers: SessionHandlers | null = null;
  posts: { body: string; clientId: string }[] = [];
  /** While true, every post fails as if the network were down. */
  offline = false;
  /** The next posts fail with these errors, one each. */
  postErrors: unknown[] = [];
  /** Holds every answer (after storing) until `release()`. */
  hold = false;
  private held: (() => void)[] = [];
  /** The next answer is lost on its way back, after the server stored the message. */
  loseAnswer = false;
  inFlight = 0;
  maxInFlight = 0;
  starts = 0;
  typed = 0;
  closed = false;

  plans = vi.fn(async () => []);
  waiver = vi.fn(async () => ({ version: '1', text: '' }));
  submitIntake = vi.fn();
  signWaiver = vi.fn();
  resumeLink = vi.fn();
  checkResume = vi.fn();
  resume = vi.fn();
  async session() {
    return structuredClone(this.current);
  }
  async me() {
    return customer;
  }
  async clockOffset() {
    return 0;
  }
  /** The next history reads fail, one each, as if the server were restarting. */
  historyFailures = 0;
  historyReads: number[] = [];
  async history(_id: string, after: number) {
    this.historyReads.push(after);
    if (this.historyFailures > 0) {
      this.historyFailures--;
      throw new BackendError(503, 'unavailable', 'The server is starting');
    }
    return this.stored.filter((m) => m.seq > after);
  }
  async sendMessage(_id: string, body: string, clientId: string) {
    this.posts.push({ body, clientId });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      // A real request takes a while: give anything else that wants to run the chance to.
      await Promise.resolve();
      if (this.offline) throw new BackendError(0, 'network', 'offline');
      const error = this.postErrors.shift();
      if (error) throw error;
      let m = this.stored.find((s) => s.client_id === clientId);
      if (!m) {
        m = message(this.stored.length + 1, { body, client_id: clientId, sender_id: 'cust-1', sender_role: 'customer' });
        this.stored.push(m);
      }
      if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
      if (this.loseAnswer) {
        this.loseAnswer = false;
        throw new BackendError(0, 'network', 'connection reset');
      }
      return m;
    } finally {
      this.inFlight--;
    }
  }
  uploadAttachment = vi.fn(async () => {
    throw new BackendError(0, 'unexpected', 'no uploads in this test');
  });
  mediaUrl = (id: string) => `/media/${id}`;
  release() {
    this.hold = false;
    for (const resolve of this.held.splice(0)) resolve();
  }
  async startSession() {
    this.starts++;
    this.current = { ...this.current, status: 'live', started_at: new Date().toISOString(), ends_at: new Date(Date.now() + 600_000).toISOString() };
    return this.current;
  }
  async endSession() {
    this.current = { ...this.current, status: 'completed', end_reason: 'ended_by_customer' };
    return this.current;
  }
  subscribeSession(_id: string, handlers: SessionHandlers) {
    this.handlers = handlers;
    return { typing: () => this.typed++, close: () => (this.closed = true) };
  }
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe('ChatRoom', () => {
  let backend: FakeBackend;
  let room: ChatRoom;

  beforeEach(async () => {
    backend = new FakeBackend();
    room = new ChatRoom(backend, 's1');
    await room.start();
  });

  afterEach(() => room.stop());

  it('waits for an accept, then for the mechanic, then goes live', async () => {
    expect(room.phase).toBe('waiting_accept');
    expect(room.canSend).toBe(false);
    backend.handlers!.session!(session({ status: 'waiting', mechanic_id: 'mech-1', mechanic_name: 'Sam' }));
    expect(room.phase).toBe('joining');
    expect(room.canSend).toBe(true);
    // Presence keyed by connection: the mechanic is found by payload user_id.
    backend.handlers!.presence!({ 'conn-a': [{ user_id: 'cust-1' }], 'conn-b': [{ user_id: 'mech-1' }] });
    expect(room.participants).toEqual({ customer_present: true, mechanic_present: true });
    const endsAt = new Date(Date.now() + 600_000).toISOString();
    backend.handlers!.session!(session({ status: 'live', mechanic_id: 'mech-1', started_at: new Date().toISOString(), ends_at: endsAt }));
    expect(room.phase).toBe('live');
    expect(room.remaining).toBeGreaterThan(595_000);
    expect(room.remaining).toBeLessThanOrEqual(600_000);
  });

  it('never lets a stale copy of the session move it backwards', () => {
    backend.handlers!.session!(session({ status: 'live', mechanic_id: 'mech-1' }));
    backend.handlers!.session!(session({ status: 'waiting', mechanic_id: 'mech-1' }));
    expect(room.session?.status).toBe('live');
  });

  it('follows a waiting session back to pending when a fresh read confirms it', async () => {
    backend.current = session({ status: 'waiting', mechanic_id: 'mech-1' });
    backend.handlers!.session!(backend.current);
    expect(room.phase).toBe('joining');
    // A stale pending copy, while the server still says waiting: ignored.
    backend.handlers!.session!(session({ status: 'pending', mechanic_id: null }));
    await settle();
    expect(room.session?.status).toBe('waiting');
    // The mechanic never joined: the server offers the request again, and says so.
    backend.current = session({ status: 'pending', mechanic_id: null });
    backend.handlers!.session!(backend.current);
    await settle();
    expect(room.session?.status).toBe('pending');
    expect(room.phase).toBe('waiting_accept');
  });

  it('catches up on history after every subscription, without duplicates', async () => {
    backend.stored = [message(1), message(2)];
    backend.handlers!.subscribed!();
    await room.catchUp();
    backend.handlers!.message!(message(2));
    backend.stored.push(message(3));
    backend.handlers!.subscribed!();
    await room.catchUp();
    expect(room.entries.map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('catches up from the first missing seq when a message shows one was missed', async () => {
    backend.stored = [message(1)];
    backend.handlers!.subscribed!();
    await room.catchUp();
    // Seq 2 was stored while the link was down; seq 3 arrives live, past it.
    backend.stored.push(message(2), message(3));
    backend.historyReads = [];
    backend.handlers!.message!(message(3));
    await settle();
    expect(room.entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(backend.historyReads).toEqual([1]);
    // In order: nothing to read.
    backend.stored.push(message(4));
    backend.handlers!.message!(message(4));
    await settle();
    expect(backend.historyReads).toEqual([1]);
  });

  it('tries a failed catch-up again by itself, and a later message does not hide the gap', async () => {
    room.stop();
    vi.useFakeTimers();
    try {
      room = new ChatRoom(backend, 's1');
      backend.stored = [message(1)];
      await room.start();
      await room.catchUp();
      expect(room.entries.map((e) => e.seq)).toEqual([1]);
      // Back after a restart: the catch-up's reads fail twice.
      backend.stored.push(message(2));
      backend.historyFailures = 2;
      backend.handlers!.subscribed!();
      await vi.advanceTimersByTimeAsync(0);
      expect(room.entries.map((e) => e.seq)).toEqual([1]);
      // The next message arrives live before any retry: seq 2 is still asked for.
      backend.stored.push(message(3));
      backend.handlers!.message!(message(3));
      await vi.advanceTimersByTimeAsync(0);
      expect(room.entries.map((e) => e.seq)).toEqual([1, 3]);
      await vi.advanceTimersByTimeAsync(2_000);
      expect(room.entries.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(backend.historyFailures).toBe(0);
      // Caught up: no more reads.
      const reads = backend.historyReads.length;
      await vi.advanceTimersByTimeAsync(60_000);
      expect(backend.historyReads).toHaveLength(reads);
    } finally {
      room.stop();
      vi.useRealTimers();
    }
  });

  it('retries a refused message with the same client_id when asked to', async () => {
    backend.handlers!.session!(session({ status: 'live', mechanic_id: 'mech-1' }));
    backend.postErrors = [new BackendError(422, 'validation_failed', 'Some fields need attention')];
    expect(room.send('  Are you there?  ')).toBe(true);
    await settle();
    expect(room.entries[0]).toMatchObject({
      delivery: 'failed',
      body: 'Are you there?',
      error: 'Not sent: Some fields need attention',
    });
    room.retry(room.entries[0].client_id);
    await settle();
    expect(room.entries).toHaveLength(1);
    expect(room.entries[0]).toMatchObject({ delivery: 'sent', seq: 1 });
    expect(new Set(backend.posts.map((p) => p.clientId)).size).toBe(1);
  });

  it('refuses empty and over-long messages and messages before an accept', () => {
    expect(room.send('hello')).toBe(false);
    backend.handlers!.session!(session({ status: 'waiting', mechanic_id: 'mech-1' }));
    expect(room.send('   ')).toBe(false);
    expect(room.send('x'.repeat(4001))).toBe(false);
    expect(room.send('x'.repeat(4000))).toBe(true);
  });

  it("shows the other side's typing, not its own", () => {
    backend.handlers!.typing!({ user_id: 'cust-1', role: 'customer' });
    expect(room.typingUntil).toBe(0);
    backend.handlers!.typing!({ user_id: 'mech-1', role: 'mechanic' });
    expect(room.typingUntil).toBeGreaterThan(Date.now());
  });

  it('stops listening once the session is over', async () => {
    backend.handlers!.session!(session({ status: 'live', mechanic_id: 'mech-1' }));
    await room.end();
    expect(room.phase).toBe('completed');
    expect(backend.closed).toBe(true);
    expect(room.link).toBe('closed');
  });
});

describe('ChatRoom when the session cannot be opened', () => {
  it('reports the failure for the page to explain', async () => {
    const backend = new FakeBackend();
    backend.session = async () => {
      throw new BackendError(404, 'not_found', 'No such session');
    };
    const room = new ChatRoom(backend, 'nope');
    await room.start();
    expect(room.phase).toBe('unavailable');
    expect(room.failure?.status).toBe(404);
    expect(backend.handlers).toBeNull();
    room.stop();
  });
});

/** sessionStorage as the outbox sees it, kept in a Map. */
class MemoryStorage implements KeyValueStorage {
  readonly items = new Map<string, string>();
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.items.set(key, value);
  }
  removeItem(key: string) {
    this.items.delete(key);
  }
}

describe('ChatRoom outbox', () => {
  let backend: FakeBackend;
  let storage: MemoryStorage;
  let room: ChatRoom;
  let win: EventTarget;

  /** Lets pending promises and due timers run, moving the fake clock by `ms`. */
  const pass = (ms = 0) => vi.advanceTimersByTimeAsync(ms);
  const mine = () => room.entries.filter((e) => e.sender_id === 'cust-1');
  const saved = () => JSON.parse(storage.getItem(`${OUTBOX_KEY_PREFIX}s1`) ?? '[]') as { client_id: string; body: string }[];

  async function openRoom(): Promise<ChatRoom> {
    const r = new ChatRoom(backend, 's1', storageOutbox(storage));
    await r.start();
    backend.handlers!.session!(backend.current);
    return r;
  }

  beforeEach(async () => {
    vi.useFakeTimers();
    // The room listens for the browser's `online` event on window, absent under Node.
    win = new EventTarget();
    vi.stubGlobal('window', win);
    backend = new FakeBackend();
    backend.current = session({ status: 'live', mechanic_id: 'mech-1', mechanic_name: 'Sam' });
    storage = new MemoryStorage();
    room = await openRoom();
  });

  afterEach(() => {
    room.stop();
    vi.unstubAllGlobals();
    vi.useRealTimers();
  });

  it('queues a message the network lost and sends it again on resubscribe, same client_id, shown once', async () => {
    backend.offline = true;
    room.send('Are you there?');
    await pass();
    expect(mine()).toHaveLength(1);
    expect(mine()[0]).toMatchObject({ delivery: 'queued', body: 'Are you there?' });
    expect(mine()[0].error).toMatch(/Waiting for connection/);
    expect(room.queuedCount).toBe(1);
    expect(saved().map((m) => m.body)).toEqual(['Are you there?']);

    backend.offline = false;
    backend.handlers!.subscribed!();
    await pass();
    expect(backend.posts).toHaveLength(2);
    expect(new Set(backend.posts.map((p) => p.clientId)).size).toBe(1);
    // The realtime copy of the same row arrives too.
    backend.handlers!.message!(backend.stored[0]);
    expect(room.entries).toHaveLength(1);
    expect(room.entries[0]).toMatchObject({ delivery: 'sent', seq: 1, body: 'Are you there?' });
    expect(room.queuedCount).toBe(0);
    expect(storage.items.size).toBe(0);
  });

  it('tries again on a timer, 1 s doubling up to 15 s, while the page is open', async () => {
    backend.offline = true;
    room.send('Anyone?');
    await pass();
    const attemptsAt = [0];
    for (let t = 1; t <= 60 && attemptsAt.length < 7; t++) {
      const before = backend.posts.length;
      await pass(1_000);
      if (backend.posts.length > before) attemptsAt.push(t);
    }
    // Waits of 1, 2, 4, 8, 15, 15 s.
    expect(attemptsAt).toEqual([0, 1, 3, 7, 15, 30, 45]);
    backend.offline = false;
    await pass(15_000);
    expect(room.entries).toHaveLength(1);
    expect(room.entries[0]).toMatchObject({ delivery: 'sent', seq: 1 });
    const after = backend.posts.length;
    await pass(60_000);
    expect(backend.posts).toHaveLength(after);
  });

  it('sends at once when the browser says it is online again', async () => {
    backend.offline = true;
    room.send('Back?');
    await pass();
    backend.offline = false;
    win.dispatchEvent(new Event('online'));
    await pass();
    expect(room.entries[0]).toMatchObject({ delivery: 'sent', body: 'Back?' });
  });

  it('sends three queued messages one at a time, in the order they were typed', async () => {
    backend.offline = true;
    room.send('first');
    room.send('second');
    room.send('third');
    await pass();
    expect(mine().map((e) => [e.body, e.delivery])).toEqual([
      ['first', 'queued'],
      ['second', 'queued'],
      ['third', 'queued'],
    ]);
    expect(room.queuedCount).toBe(3);
    expect(backend.maxInFlight).toBe(1);
    const clientIds = mine().map((e) => e.client_id);

    backend.offline = false;
    backend.posts = [];
    backend.handlers!.subscribed!();
    await pass();
    expect(backend.posts.map((p) => p.body)).toEqual(['first', 'second', 'third']);
    expect(backend.posts.map((p) => p.clientId)).toEqual(clientIds);
    expect(backend.maxInFlight).toBe(1);
    expect(backend.stored.map((m) => [m.seq, m.body])).toEqual([
      [1, 'first'],
      [2, 'second'],
      [3, 'third'],
    ]);
    expect(room.entries.map((e) => [e.seq, e.body, e.delivery])).toEqual([
      [1, 'first', 'sent'],
      [2, 'second', 'sent'],
      [3, 'third', 'sent'],
    ]);
  });

  it('marks a message refused for good (409 session_ended) as failed and never sends it by itself', async () => {
    const ended = session({ status: 'completed', mechanic_id: 'mech-1', end_reason: 'time_up' });
    backend.postErrors = [new BackendError(409, 'session_ended', 'This session has ended', { session: ended })];
    room.send('One more thing');
    await pass();
    expect(room.entries[0]).toMatchObject({ delivery: 'failed', error: 'Not sent: this session has ended.' });
    expect(room.phase).toBe('completed');
    expect(room.queuedCount).toBe(0);
    expect(storage.items.size).toBe(0);
    backend.handlers!.subscribed!();
    win.dispatchEvent(new Event('online'));
    await pass(120_000);
    expect(backend.posts).toHaveLength(1);
  });

  it('treats 5xx, 429 and timeouts as passing and other 4xx as refusals', async () => {
    backend.postErrors = [
      new BackendError(503, 'unexpected', 'Something went wrong on our side'),
      new BackendError(429, 'rate_limited', 'Slow down'),
      new BackendError(0, 'timeout', 'Too slow'),
      new BackendError(403, 'forbidden', 'Not your session'),
    ];
    room.send('hello');
    await pass();
    expect(room.entries[0].error).toMatch(/Waiting for the server/);
    await pass(1_000);
    expect(room.entries[0].error).toMatch(/too many messages/);
    await pass(2_000);
    expect(room.entries[0].error).toMatch(/Waiting for connection/);
    await pass(4_000);
    expect(room.entries[0]).toMatchObject({ delivery: 'failed', error: 'Not sent: Not your session' });
    expect(new Set(backend.posts.map((p) => p.clientId)).size).toBe(1);
  });

  it('restores the outbox after a reload and sends what the server has not stored, same client_id', async () => {
    backend.offline = true;
    room.send('typed before the reload');
    room.send('also typed before the reload');
    await pass();
    const [first, second] = mine().map((e) => e.client_id);
    expect(saved().map((m) => m.client_id)).toEqual([first, second]);
    room.stop();

    // The first one reached the server just before the reload; its answer never came back.
    backend.stored.push(message(1, { body: 'typed before the reload', client_id: first, sender_id: 'cust-1', sender_role: 'customer' }));
    backend.offline = false;
    backend.posts = [];
    room = await openRoom();
    expect(mine().map((e) => e.body)).toContain('also typed before the reload');
    await pass();
    expect(backend.posts).toEqual([{ body: 'also typed before the reload', clientId: second }]);
    expect(room.entries.map((e) => [e.seq, e.body, e.delivery])).toEqual([
      [1, 'typed before the reload', 'sent'],
      [2, 'also typed before the reload', 'sent'],
    ]);
    expect(storage.items.size).toBe(0);
  });

  it("restores only this user's messages", async () => {
    room.stop();
    storage.setItem(
      `${OUTBOX_KEY_PREFIX}s1`,
      JSON.stringify([
        { client_id: 'x1', body: 'someone else', created_at: '2026-11-25T10:00:00Z', sender_id: 'cust-2', sender_role: 'customer' },
        { client_id: 'x2', body: 'mine', created_at: '2026-11-25T10:00:01Z', sender_id: 'cust-1', sender_role: 'customer' },
        { nonsense: true },
      ]),
    );
    room = await openRoom();
    await pass();
    expect(backend.posts).toEqual([{ body: 'mine', clientId: 'x2' }]);
  });

  it('shows a message once when realtime brings it before the HTTP answer', async () => {
    backend.hold = true;
    room.send('On my way');
    await pass();
    expect(backend.stored).toHaveLength(1);
    expect(room.entries[0].delivery).toBe('sending');
    backend.handlers!.message!(backend.stored[0]);
    expect(room.entries).toHaveLength(1);
    expect(room.entries[0]).toMatchObject({ delivery: 'sent', seq: 1 });
    backend.release();
    await pass();
    expect(room.entries).toHaveLength(1);
    expect(room.entries[0]).toMatchObject({ delivery: 'sent', seq: 1, body: 'On my way' });
    expect(backend.posts).toHaveLength(1);
    expect(storage.items.size).toBe(0);
  });

  it('never sends again a message realtime showed as stored when its answer was lost', async () => {
    backend.hold = true;
    backend.loseAnswer = true;
    room.send('Lost answer');
    room.send('Next one');
    await pass();
    backend.handlers!.message!(backend.stored[0]);
    backend.release();
    await pass();
    // Known to be stored, so the lost answer holds nothing back: the next one goes at once.
    expect(backend.posts.map((p) => p.body)).toEqual(['Lost answer', 'Next one']);
    backend.handlers!.subscribed!();
    await pass(60_000);
    expect(backend.posts).toHaveLength(2);
    expect(room.entries.map((e) => [e.seq, e.body, e.delivery])).toEqual([
      [1, 'Lost answer', 'sent'],
      [2, 'Next one', 'sent'],
    ]);
    expect(room.queuedCount).toBe(0);
  });

  it('drops a queued message that history shows as stored instead of sending it again', async () => {
    backend.offline = true;
    room.send('Made it?');
    await pass();
    const clientId = mine()[0].client_id;
    // Stored by an earlier attempt whose answer was lost.
    backend.stored.push(message(1, { body: 'Made it?', client_id: clientId, sender_id: 'cust-1', sender_role: 'customer' }));
    backend.offline = false;
    const before = backend.posts.length;
    backend.handlers!.subscribed!();
    await pass(60_000);
    expect(backend.posts).toHaveLength(before);
    expect(room.entries).toHaveLength(1);
    expect(room.entries[0]).toMatchObject({ delivery: 'sent', seq: 1 });
  });
});
