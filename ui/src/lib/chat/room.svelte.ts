// The state of one chat room, shared by both shells: the session as the server last told it,
// the message list, who is present (by payload user_id, lib/presence.ts), the countdown on the
// server's clock, typing, the realtime link's health and the outbox of messages typed here that
// the server has not acknowledged yet. It talks only to a `Backend` and an `OutboxStore`, so the
// customer's web page and the mechanics' desktop app drive the same room.

import {
  BackendError,
  type Backend,
  type LinkStatus,
  type MechanicSummary,
  type Message,
  type Session,
  type SessionStatus,
  type SessionSubscription,
  type User,
} from '../backend';
import { parseTime, remainingMs } from '../countdown';
import {
  isMessage,
  isStored,
  lastSeq,
  markFailed,
  markQueued,
  markSending,
  mergeMessages,
  newClientId,
  pendingEntry,
  type ChatEntry,
} from '../messages';
import { participants } from '../presence';
import { isTransient, memoryOutbox, queuedReason, retryDelay, type OutboxStore, type QueuedMessage } from './outbox';

/** Statuses only move forward; a stale copy (an old row change, a slow fetch) never wins. */
const RANK: Record<SessionStatus, number> = { pending: 0, waiting: 1, live: 2, completed: 3, cancelled: 3 };

/** How long a typing notice shows. */
const TYPING_SHOWS_MS = 4_000;
/** Both present but still waiting after this long: ask the server to start (it usually has). */
const START_NUDGE_MS = 3_000;
/** After the countdown reached zero, look at the session this often until the server ends it. */
const EXPIRY_POLL_MS = 3_000;
export const MAX_MESSAGE_CHARS = 4_000;
const HISTORY_PAGE = 500;

/** Where the room is, as people see it. */
export type Phase =
  | 'loading'
  | 'unsigned'
  | 'waiting_accept'
  | 'joining'
  | 'live'
  | 'completed'
  | 'cancelled'
  | 'unavailable';

/** Why the server refused a message for good, for people (passing failures only queue it). */
function sendError(e: unknown): string {
  if (e instanceof BackendError) {
    switch (e.code) {
      case 'not_accepted':
        return 'Not sent: you can chat once a mechanic has accepted.';
      case 'session_ended':
        return 'Not sent: this session has ended.';
      default:
        return `Not sent: ${e.message}`;
    }
  }
  return 'Not sent.';
}

export class ChatRoom {
  session = $state<Session | null>(null);
  me = $state<User | null>(null);
  entries = $state<ChatEntry[]>([]);
  presenceState = $state<Record<string, unknown>>({});
  link = $state<LinkStatus>('connecting');
  linkDetail = $state('');
  /** The load failed: not found, not yours, signed out, or the server unreachable. */
  failure = $state<BackendError | null>(null);
  offset = $state(0);
  now = $state(Date.now());
  typingUntil = $state(0);
  endingSoon = $state(false);
  ending = $state(false);
  endError = $state('');
  /** Whether the realtime link has been subscribed at least once (for "reconnecting"). */
  everSubscribed = $state(false);

  readonly participants = $derived(
    participants(this.presenceState, this.session?.customer_id, this.session?.mechanic_id),
  );

  readonly phase: Phase = $derived.by(() => {
    if (this.failure) return 'unavailable';
    const s = this.session;
    if (!s) return 'loading';
    switch (s.status) {
      case 'pending':
        return s.waiver_signed_at ? 'waiting_accept' : 'unsigned';
      case 'waiting':
        return 'joining';
      case 'live':
        return 'live';
      case 'completed':
        return 'completed';
      case 'cancelled':
        return 'cancelled';
    }
  });

  readonly remaining: number = $derived.by(() => {
    const endsAt = parseTime(this.session?.ends_at);
    return endsAt === null ? 0 : remainingMs(endsAt, this.now, this.offset, parseTime(this.session?.started_at));
  });

  /** Messages are taken while a mechanic is assigned and the session is not over. */
  readonly canSend = $derived(this.session?.status === 'waiting' || this.session?.status === 'live');

  readonly otherTyping = $derived(this.now < this.typingUntil);

  /** My messages waiting to be sent again by themselves (no connection, server busy). */
  readonly queuedCount = $derived(this.entries.filter((e) => e.id === null && e.delivery === 'queued').length);

  readonly reconnecting = $derived(
    this.everSubscribed && (this.link === 'reconnecting' || this.link === 'connecting'),
  );

  private subscription: SessionSubscription | null = null;
  private ticker: ReturnType<typeof setInterval> | undefined;
  private bothSince = 0;
  private nudged = false;
  private lastExpiryPoll = 0;
  private stopped = false;
  /** Bumped on every applied copy of the session (see `applySession`). */
  private sessionVersion = 0;
  private catchingUp: Promise<void> | null = null;
  private catchUpAgain = false;
  /**
   * The outbox: my messages not yet acknowledged, in the order they were typed. They are sent one
   * at a time from its head, so the server numbers them in that order.
   */
  private queue: QueuedMessage[] = [];
  private sendingNow = false;
  private retries = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly onOnline = () => this.sendQueuedNow();

  constructor(
    private readonly backend: Backend,
    readonly sessionId: string,
    private readonly outbox: OutboxStore = memoryOutbox(),
  ) {}

  /** The mechanic's summary for the transcript, or null when none (or it could not be loaded). */
  async summary(): Promise<MechanicSummary | null> {
    try {
      return (await this.backend.outcome?.(this.sessionId))?.summary ?? null;
    } catch {
      return null;
    }
  }

  /** Loads the session, then (unless it is over) joins it in realtime. */
  async start(): Promise<void> {
    try {
      const [session, me] = await Promise.all([
        this.backend.session(this.sessionId),
        this.backend.me(),
        this.backend.clockOffset().then(
          (offset) => (this.offset = offset),
          () => undefined,
        ),
      ]);
      if (this.stopped) return;
      this.me = me;
      this.applySession(session);
      this.restoreOutbox(me);
    } catch (e) {
      this.failure =
        e instanceof BackendError ? e : new BackendError(0, 'unexpected', 'Something went wrong; please try again');
      return;
    }
    this.ticker = setInterval(() => this.tick(), 500);
    if (this.queue.length > 0) {
      // Restored from before a reload: what was stored meanwhile comes with the history and is
      // not sent again; the server answers the rest (a session that ended refuses them).
      void this.catchUp().then(() => this.sendQueuedNow());
    }
    if (this.phase === 'completed' || this.phase === 'cancelled') {
      await this.catchUp();
      this.link = 'closed';
      return;
    }
    if (typeof window !== 'undefined') window.addEventListener('online', this.onOnline);
    this.subscription = this.backend.subscribeSession(this.sessionId, {
      status: (status, detail) => {
        this.link = status;
        this.linkDetail = detail ?? '';
        if (status === 'subscribed') this.everSubscribed = true;
      },
      // Back in touch with the server: first learn what it stored meanwhile, then send the rest.
      subscribed: () => void this.catchUp().then(() => this.sendQueuedNow()),
      session: (s) => this.applySession(s),
      message: (m) => this.applyMessages([m]),
      presence: (state) => (this.presenceState = state),
      typing: (t) => {
        if (t.user_id !== this.me?.id) this.typingUntil = Date.now() + TYPING_SHOWS_MS;
      },
      ending: () => (this.endingSoon = true),
    });
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.ticker);
    clearTimeout(this.retryTimer);
    if (typeof window !== 'undefined') window.removeEventListener('online', this.onOnline);
    this.subscription?.close();
    this.subscription = null;
  }

  /**
   * Applies a copy of the session. `askedAt` is `sessionVersion` when the copy was asked for: a
   * copy read after the current one was applied is newer whatever its status, which is how a
   * waiting session whose mechanic never joined is seen going back to pending.
   */
  private applySession(next: Session, askedAt?: number): void {
    const current = this.session;
    const freshRead = askedAt !== undefined && askedAt === this.sessionVersion;
    if (!freshRead && current && current.id === next.id && RANK[next.status] < RANK[current.status]) {
      // An older copy, or a real step back (pending again): a read now tells which.
      if (current.status === 'waiting' && next.status === 'pending') this.reread();
      return;
    }
    this.sessionVersion += 1;
    this.session = next;
    if (RANK[next.status] >= 3) {
      // Over: nothing more to say or hear.
      this.subscription?.close();
      this.subscription = null;
      this.link = 'closed';
    }
  }

  /** Reads the session afresh; the answer wins unless another copy was applied meanwhile. */
  private reread(): void {
    const askedAt = this.sessionVersion;
    this.backend.session(this.sessionId).then(
      (fresh) => {
        if (!this.stopped) this.applySession(fresh, askedAt);
      },
      () => undefined,
    );
  }

  private applyMessages(messages: readonly Message[]): void {
    this.entries = mergeMessages(this.entries, messages);
    this.dropStored();
  }

  /**
   * After every (re)subscription: the messages after the last seq (all pages) and the session,
   * so whatever happened while away shows up with no gap and no duplicate.
   */
  catchUp(): Promise<void> {
    if (this.catchingUp) {
      this.catchUpAgain = true;
      return this.catchingUp;
    }
    this.catchingUp = (async () => {
      do {
        this.catchUpAgain = false;
        try {
          const askedAt = this.sessionVersion;
          const session = await this.backend.session(this.sessionId);
          this.applySession(session, askedAt);
          for (;;) {
            const page = await this.backend.history(this.sessionId, lastSeq(this.entries));
            this.applyMessages(page);
            if (page.length < HISTORY_PAGE) break;
          }
        } catch {
          // The next (re)subscription tries again.
        }
      } while (this.catchUpAgain && !this.stopped);
    })().finally(() => (this.catchingUp = null));
    return this.catchingUp;
  }

  private tick(): void {
    this.now = Date.now();
    const s = this.session;
    if (!s || !this.me) return;
    // The server starts the session itself when both are present; nudge it once if that lags.
    if (s.status === 'waiting' && this.participants.customer_present && this.participants.mechanic_present) {
      if (!this.bothSince) this.bothSince = this.now;
      if (!this.nudged && this.now - this.bothSince > START_NUDGE_MS) {
        this.nudged = true;
        this.backend.startSession(s.id).then(
          (live) => this.applySession(live),
          () => undefined,
        );
      }
    } else {
      this.bothSince = 0;
    }
    // Time is up on the server clock: the server completes the session; fetch it until it has.
    if (s.status === 'live' && this.remaining === 0 && this.now - this.lastExpiryPoll > EXPIRY_POLL_MS) {
      this.lastExpiryPoll = this.now;
      this.backend.session(s.id).then(
        (fresh) => this.applySession(fresh),
        () => undefined,
      );
    }
  }

  /** Sends a new message; it shows at once, as "sending" or, behind waiting ones, as queued. */
  send(text: string): boolean {
    const body = text.trim();
    const me = this.me;
    if (!body || !me || !this.canSend || [...body].length > MAX_MESSAGE_CHARS) return false;
    this.enqueue(pendingEntry(newClientId(), body, me));
    return true;
  }

  /** Sends a refused message again under the same client_id, so it can never be stored twice. */
  retry(clientId: string): void {
    const entry = this.entries.find((e) => e.id === null && e.client_id === clientId && e.delivery === 'failed');
    if (entry && !this.queue.some((q) => q.client_id === clientId)) this.enqueue(entry);
  }

  private enqueue(entry: ChatEntry): void {
    const waiting = this.entries.find((e) => e.id === null && e.delivery === 'queued');
    this.entries = markSending(this.entries, entry);
    // It cannot overtake the messages already waiting, so it says it waits too.
    if (waiting) this.entries = markQueued(this.entries, [entry.client_id], waiting.error ?? queuedReason(null));
    this.queue = [
      ...this.queue,
      {
        client_id: entry.client_id,
        body: entry.body,
        created_at: entry.created_at,
        sender_id: entry.sender_id,
        sender_role: entry.sender_role,
      },
    ];
    this.outbox.save(this.sessionId, this.queue);
    void this.flush();
  }

  /** Takes back the messages a previous page left unacknowledged (only the ones this user wrote). */
  private restoreOutbox(me: User): void {
    const mine = this.outbox.load(this.sessionId).filter((m) => m.sender_id === me.id);
    const known = new Set(this.entries.map((e) => e.client_id));
    const fresh = mine.filter((m) => !known.has(m.client_id));
    if (fresh.length === 0) return;
    for (const m of fresh) {
      const entry = pendingEntry(m.client_id, m.body, { id: m.sender_id, role: m.sender_role });
      this.entries = markSending(this.entries, { ...entry, created_at: m.created_at });
    }
    this.queue = [...this.queue, ...fresh];
    this.outbox.save(this.sessionId, this.queue);
  }

  /** The connection is back (or may be): send the queue now and start the backoff over. */
  private sendQueuedNow(): void {
    this.retries = 0;
    void this.flush();
  }

  /** Forgets queued messages the server is known to have stored, whoever told us. */
  private dropStored(): void {
    if (this.queue.length === 0) return;
    const left = this.queue.filter((q) => !isStored(this.entries, q.sender_id, q.client_id));
    if (left.length === this.queue.length) return;
    this.queue = left;
    this.outbox.save(this.sessionId, this.queue);
  }

  private forget(clientId: string): void {
    this.queue = this.queue.filter((q) => q.client_id !== clientId);
    this.outbox.save(this.sessionId, this.queue);
  }

  /**
   * Sends the queue from its head, one message at a time (never two in flight), until it is empty
   * or a send fails for a passing reason; then the whole queue waits for the next attempt: the
   * backoff timer, a resubscription or the browser coming online.
   */
  private async flush(): Promise<void> {
    if (this.sendingNow || this.stopped) return;
    this.sendingNow = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    try {
      for (;;) {
        this.dropStored();
        const next = this.queue[0];
        if (!next || this.stopped) return;
        let stored: Message;
        try {
          stored = await this.backend.sendMessage(this.sessionId, next.body, next.client_id);
        } catch (e) {
          // Stored after all, and told so by realtime or history while the answer was lost.
          if (isStored(this.entries, next.sender_id, next.client_id)) continue;
          if (isTransient(e)) {
            this.entries = markQueued(
              this.entries,
              this.queue.map((q) => q.client_id),
              queuedReason(e),
            );
            this.scheduleRetry();
            return;
          }
          this.forget(next.client_id);
          this.entries = markFailed(this.entries, next.client_id, sendError(e));
          if (e instanceof BackendError && e.session) this.applySession(e.session);
          continue;
        }
        if (!isMessage(stored)) {
          // Not the stored message the API promises: nothing is known, so try again later.
          this.entries = markQueued(this.entries, this.queue.map((q) => q.client_id), queuedReason(null));
          this.scheduleRetry();
          return;
        }
        this.retries = 0;
        this.forget(next.client_id);
        this.applyMessages([stored]);
      }
    } finally {
      this.sendingNow = false;
    }
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.flush();
    }, retryDelay(this.retries));
    this.retries += 1;
  }

  typing(): void {
    this.subscription?.typing();
  }

  /** Ends a live session, or cancels one that has not started. */
  async end(): Promise<void> {
    this.ending = true;
    this.endError = '';
    try {
      this.applySession(await this.backend.endSession(this.sessionId));
      await this.catchUp();
    } catch (e) {
      if (e instanceof BackendError && e.session) this.applySession(e.session);
      else this.endError = e instanceof Error ? e.message : 'Could not end the session';
    } finally {
      this.ending = false;
    }
  }
}
