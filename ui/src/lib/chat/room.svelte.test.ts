import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  BackendError,
  type Backend,
  type Message,
  type Session,
  type SessionHandlers,
  type User,
} from '../backend';
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
  failPosts = 0;
  starts = 0;
  typed = 0;
  closed = false;

  plans = vi.fn(async () => []);
  waiver = vi.fn(async () => ({ version: '1', text: '' }));
  submitIntake = vi.fn();
  signWaiver = vi.fn();
  resumeLink = vi.fn();
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
  async history(_id: string, after: number) {
    return this.stored.filter((m) => m.seq > after);
  }
  async sendMessage(_id: string, body: string, clientId: string) {
    this.posts.push({ body, clientId });
    if (this.failPosts > 0) {
      this.failPosts--;
      throw new BackendError(0, 'network', 'offline');
    }
    const existing = this.stored.find((m) => m.client_id === clientId);
    if (existing) return existing;
    const m = message(this.stored.length + 1, { body, client_id: clientId, sender_id: 'cust-1', sender_role: 'customer' });
    this.stored.push(m);
    return m;
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

  it('retries a failed message with the same client_id', async () => {
    backend.handlers!.session!(session({ status: 'live', mechanic_id: 'mech-1' }));
    backend.failPosts = 1;
    expect(room.send('  Are you there?  ')).toBe(true);
    await settle();
    expect(room.entries[0]).toMatchObject({ delivery: 'failed', body: 'Are you there?' });
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
