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
import { kindOf, newLocalId, uploadRefusal, type LocalFile, type UploadProgress } from '../attachments';
import { parseTime, remainingMs } from '../countdown';
import {
  isMessage,
  isStored,
  markFailed,
  markQueued,
  markSending,
  mergeMessages,
  newClientId,
  pendingEntry,
  removePending,
  seqKnownThrough,
  setFiles,
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
/** Files one message may carry. */
export const MAX_FILES = 10;
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

/** An upload the person cancelled (not a failure). */
function isCancelled(e: unknown): boolean {
  return e instanceof DOMException && e.name === 'AbortError';
}

/** A file the room could not upload: its bytes are gone (the page was reloaded before it was). */
class LostFile extends Error {}

/** The server refused a file (its type, its size): the message says which and why. */
class UploadRefused extends Error {}

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
  /** Uploads under way, by the file's local id. */
  progress = $state<Record<string, UploadProgress>>({});
  /** Players' URLs of stored attachments where the backend makes them (see `playable`). */
  private playableUrls = $state<Record<string, string>>({});
  private readonly readingPlayable = new Set<string>();
  /** Object URLs of the files on their way, by local id, for previews. */
  previews = $state<Record<string, string>>({});

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
  /** Every message up to this seq has been read: the last catch-up read history that far. */
  private readThrough = 0;
  /** Catch-ups failed in a row, and the timer of the next attempt. */
  private catchUpFailures = 0;
  private catchUpTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * The outbox: my messages not yet acknowledged, in the order they were typed. They are sent one
   * at a time from its head, so the server numbers them in that order.
   */
  private queue: QueuedMessage[] = [];
  private sendingNow = false;
  private retries = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** The bytes of files not stored yet, by local id (memory only: a store keeps text). */
  private readonly blobs = new Map<string, Blob>();
  /** The upload in flight, so that Cancel can stop it. */
  private uploading: { clientId: string; abort: AbortController } | null = null;
  /** The message whose post is in flight: too late to cancel it. */
  private posting: string | null = null;
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
      message: (m) => {
        this.applyMessages([m]);
        // Past a seq not seen yet: a message was missed on the way (a reconnect raced it).
        if (m.seq > seqKnownThrough(this.entries, this.readThrough)) void this.catchUp();
      },
      presence: (state) => (this.presenceState = state),
      typing: (t) => {
        if (t.user_id !== this.me?.id) this.typingUntil = Date.now() + TYPING_SHOWS_MS;
      },
      ending: () => (this.endingSoon = true),
    });
  }

  stop(): void {
    this.stopped = true;
    this.uploading?.abort.abort();
    for (const url of Object.values(this.previews)) URL.revokeObjectURL(url);
    for (const url of Object.values(this.playableUrls)) if (url) URL.revokeObjectURL(url);
    clearInterval(this.ticker);
    clearTimeout(this.retryTimer);
    clearTimeout(this.catchUpTimer);
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
   * After every (re)subscription, and whenever a message shows that one was missed: the session
   * and the messages after the last seq with none missing before it (all pages), so whatever
   * happened while away shows up with no gap and no duplicate. A failed read is tried again,
   * 1 s doubling to 15 s apart, until one succeeds or the room stops.
   */
  catchUp(): Promise<void> {
    if (this.catchingUp) {
      this.catchUpAgain = true;
      return this.catchingUp;
    }
    clearTimeout(this.catchUpTimer);
    this.catchUpTimer = undefined;
    this.catchingUp = (async () => {
      let failed = false;
      do {
        this.catchUpAgain = false;
        failed = false;
        try {
          const askedAt = this.sessionVersion;
          const session = await this.backend.session(this.sessionId);
          this.applySession(session, askedAt);
          let after = seqKnownThrough(this.entries, this.readThrough);
          for (;;) {
            const page = await this.backend.history(this.sessionId, after);
            this.applyMessages(page);
            for (const m of page) after = Math.max(after, m.seq);
            if (page.length < HISTORY_PAGE) break;
          }
          this.readThrough = Math.max(this.readThrough, after);
          this.catchUpFailures = 0;
        } catch {
          failed = true;
        }
      } while (this.catchUpAgain && !this.stopped);
      if (failed && !this.stopped) {
        this.catchUpTimer = setTimeout(() => {
          this.catchUpTimer = undefined;
          void this.catchUp();
        }, retryDelay(this.catchUpFailures));
        this.catchUpFailures += 1;
      }
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

  /**
   * Sends a new message, with files if any; it shows at once, as "sending" or, behind waiting
   * ones, as queued. The files are uploaded first, then the message is posted with them.
   */
  send(text: string, files: readonly File[] = []): boolean {
    const body = text.trim();
    const me = this.me;
    if ((!body && files.length === 0) || !me || !this.canSend) return false;
    if ([...body].length > MAX_MESSAGE_CHARS || files.length > MAX_FILES) return false;
    const local: LocalFile[] = files.map((file) => {
      const local_id = newLocalId();
      this.blobs.set(local_id, file);
      if (typeof URL.createObjectURL === 'function') {
        this.previews = { ...this.previews, [local_id]: URL.createObjectURL(file) };
      }
      return {
        local_id,
        name: file.name,
        type: file.type,
        size: file.size,
        kind: kindOf(file.type, file.name) ?? 'image',
      };
    });
    this.enqueue(pendingEntry(newClientId(), body, me, new Date(), local));
    return true;
  }

  /** Where the page loads an attachment, or its thumbnail, from. */
  mediaUrl(attachmentId: string, variant: 'file' | 'thumbnail' = 'file'): string {
    return this.backend.mediaUrl(attachmentId, variant);
  }

  /**
   * Where an audio or video element plays an attachment from: `mediaUrl`, or (desktop) a `blob:`
   * URL of its bytes, read once per room and revoked when the room stops. `undefined` while it is
   * being read.
   */
  playable(attachmentId: string, contentType: string): string | undefined {
    const load = this.backend.playableUrl;
    if (!load) return this.backend.mediaUrl(attachmentId);
    const known = this.playableUrls[attachmentId];
    if (known) return known;
    // Asked while rendering: only the answer, later, changes the room's state.
    if (this.readingPlayable.has(attachmentId)) return undefined;
    this.readingPlayable.add(attachmentId);
    load.call(this.backend, attachmentId, contentType).then(
      (url) => {
        if (this.stopped) URL.revokeObjectURL(url);
        else this.playableUrls = { ...this.playableUrls, [attachmentId]: url };
      },
      () => this.readingPlayable.delete(attachmentId),
    );
    return undefined;
  }

  /** Whether attachments can be saved to disk through the backend (the desktop app). */
  get canSaveToDisk(): boolean {
    return typeof this.backend.saveAttachment === 'function';
  }

  /** Saves an attachment to disk (the desktop app), answering where. */
  saveToDisk(attachmentId: string, fileName: string): Promise<string> {
    if (!this.backend.saveAttachment) return Promise.reject(new BackendError(0, 'unsupported', 'Saving is not available here'));
    return this.backend.saveAttachment(attachmentId, fileName);
  }

  /** Whether a message of mine may still be taken back: not stored, and its post not in flight. */
  canCancel(clientId: string): boolean {
    return this.posting !== clientId && this.entries.some((e) => e.id === null && e.client_id === clientId);
  }

  /** Takes back a message not sent yet (stopping its upload): it is never posted. */
  cancel(clientId: string): void {
    if (!this.canCancel(clientId)) return;
    const entry = this.entries.find((e) => e.id === null && e.client_id === clientId);
    if (this.uploading?.clientId === clientId) this.uploading.abort.abort();
    this.forget(clientId);
    this.entries = removePending(this.entries, clientId);
    for (const f of entry?.files ?? []) this.dropFile(f.local_id);
  }

  private dropFile(localId: string): void {
    this.blobs.delete(localId);
    const url = this.previews[localId];
    if (url) {
      URL.revokeObjectURL(url);
      const { [localId]: _, ...rest } = this.previews;
      this.previews = rest;
    }
    if (this.progress[localId]) {
      const { [localId]: _, ...rest } = this.progress;
      this.progress = rest;
    }
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
        ...(entry.files.length > 0 ? { files: entry.files.map((f) => ({ ...f })) } : {}),
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
      const entry = pendingEntry(m.client_id, m.body, { id: m.sender_id, role: m.sender_role }, new Date(), m.files ?? []);
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
          const ids = await this.uploadFiles(next);
          if (!this.queue.includes(next)) continue;
          this.posting = next.client_id;
          try {
            stored = await this.backend.sendMessage(this.sessionId, next.body, next.client_id, ids);
          } finally {
            this.posting = null;
          }
        } catch (e) {
          // Cancelled meanwhile: it is gone from the queue already.
          if (isCancelled(e) || !this.queue.includes(next)) continue;
          if (e instanceof LostFile) {
            this.forget(next.client_id);
            this.entries = markFailed(this.entries, next.client_id, e.message);
            continue;
          }
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
          this.entries = markFailed(this.entries, next.client_id, e instanceof UploadRefused ? e.message : sendError(e));
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
        for (const f of next.files ?? []) this.dropFile(f.local_id);
        this.applyMessages([stored]);
      }
    } finally {
      this.sendingNow = false;
    }
  }

  /**
   * Uploads the files of a queued message that the server has not stored yet, one after the
   * other, remembering each stored one in the outbox (a retry or a reload does not upload it
   * again), and answers the ids to post the message with.
   */
  private async uploadFiles(next: QueuedMessage): Promise<string[]> {
    const files = next.files ?? [];
    for (const file of files) {
      if (file.attachment) continue;
      const blob = this.blobs.get(file.local_id);
      if (!blob) {
        throw new LostFile(`Not sent: “${file.name}” was not uploaded before the page was reloaded. Attach it again.`);
      }
      const abort = new AbortController();
      this.uploading = { clientId: next.client_id, abort };
      this.progress = { ...this.progress, [file.local_id]: { sent: 0, total: blob.size } };
      try {
        file.attachment = await this.backend.uploadAttachment(this.sessionId, blob, file.name, {
          signal: abort.signal,
          progress: (p) => {
            if (!abort.signal.aborted) this.progress = { ...this.progress, [file.local_id]: p };
          },
        });
      } catch (e) {
        if (isCancelled(e) || isTransient(e)) throw e;
        throw new UploadRefused(uploadRefusal(e, file.name));
      } finally {
        if (this.uploading?.abort === abort) this.uploading = null;
      }
      this.outbox.save(this.sessionId, this.queue);
      this.entries = setFiles(this.entries, next.client_id, files);
    }
    return files.flatMap((f) => (f.attachment ? [f.attachment.id] : []));
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
