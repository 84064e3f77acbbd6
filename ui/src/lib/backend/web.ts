// The web implementation of `Backend`: JSON over `fetch` to the same origin (the customer is
// identified by the server's HttpOnly cookie) and realtime over the unmodified
// `@supabase/realtime-js`, loaded only when a chat opens so the intake pages stay small.

import type { RealtimeChannel, RealtimeClient } from '@supabase/realtime-js';
import { sampleClockOffset } from '../countdown';
import {
  BackendError,
  type Attachment,
  type Backend,
  type UploadOptions,
  type IntakeRequest,
  type MechanicAvailability,
  type Message,
  type Plan,
  type PublicConfig,
  type Rating,
  type ResumeCheck,
  type ResumeLink,
  type Session,
  type SessionHandlers,
  type SessionOutcome,
  type SessionSubscription,
  type User,
  type WaitingRoom,
  type Waiver,
} from './index';
import type { AccessToken, PresencePayload, Typing } from '../generated';

type Token = AccessToken;

/** Refresh the realtime token this long before it runs out (a quarter of its life if shorter). */
const REFRESH_MARGIN_MS = 60_000;
/** Least time between two typing notices. */
const TYPING_EVERY_MS = 2_000;
/** After the server closed a channel for good (expired token, …), start over after this long. */
const RESTART_AFTER_MS = 2_000;

/**
 * A request with no answer after this long is given up as a `timeout` (status 0). A connection
 * that died without a reset never fails by itself, and a chat message stuck on one would hold
 * back every message typed after it; posting again is safe, the server dedupes by client_id.
 */
const REQUEST_TIMEOUT_MS = 20_000;

const NETWORK_MESSAGE = 'Could not reach Wrenchline. Check your connection and try again.';
const TIMEOUT_MESSAGE = 'Wrenchline took too long to answer. Check your connection and try again.';
/** The `apikey` realtime-js puts in the socket URL: a constant the server ignores. */
const REALTIME_APIKEY = 'wrenchline';

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
  let response: Response;
  let text: string;
  try {
    try {
      response = await fetch(path, {
        method,
        credentials: 'same-origin',
        headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: abort.signal,
      });
    } catch {
      if (abort.signal.aborted) throw new BackendError(0, 'timeout', TIMEOUT_MESSAGE);
      throw new BackendError(0, 'network', NETWORK_MESSAGE);
    }
    try {
      text = await response.text();
    } catch {
      // The answer was cut off on its way: whether the server acted is unknown, which is a
      // failure to try again, not an answer (an empty one would pass for success).
      if (abort.signal.aborted) throw new BackendError(0, 'timeout', TIMEOUT_MESSAGE);
      throw new BackendError(0, 'network', NETWORK_MESSAGE);
    }
  } finally {
    clearTimeout(timer);
  }
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (response.ok) return parsed as T;
  const err = (parsed ?? {}) as Record<string, unknown>;
  if (typeof err.error === 'string') {
    throw new BackendError(
      response.status,
      err.error,
      typeof err.message === 'string' ? err.message : 'Something went wrong',
      {
        fields: (err.fields as Record<string, string>) ?? {},
        missing: Array.isArray(err.missing) ? err.missing : [],
        session: (err.session as Session) ?? null,
      },
    );
  }
  throw new BackendError(response.status, 'unexpected', 'Something went wrong on our side; please try again');
}

const enc = encodeURIComponent;

type PostMessage = { body: string; client_id: string; attachment_ids?: string[] };

/** An upload that has sent nothing for this long is given up as a `timeout` (see REQUEST_TIMEOUT_MS). */
const UPLOAD_STALL_MS = 30_000;

/** The server's `{error, message}` (or a generic one) as the UI's error. */
function errorFrom(status: number, text: string): BackendError {
  let err: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object') err = parsed as Record<string, unknown>;
  } catch {
    err = {};
  }
  if (typeof err.error === 'string') {
    return new BackendError(status, err.error, typeof err.message === 'string' ? err.message : 'Something went wrong');
  }
  if (status === 413) return new BackendError(413, 'payload_too_large', 'The file is too large to send.');
  return new BackendError(status, 'unexpected', 'Something went wrong on our side; please try again');
}

/**
 * Posts one file as `multipart/form-data` (part `file`) with XMLHttpRequest, the one browser API
 * that reports upload progress everywhere. Cancelled through `signal` (an `AbortError`); a
 * transfer that stalls is a `timeout`, a lost connection `network`, both worth retrying.
 */
function upload(path: string, file: Blob, name: string, options: UploadOptions): Promise<Attachment> {
  return new Promise((resolve, reject) => {
    const { signal, progress } = options;
    if (signal?.aborted) {
      reject(new DOMException('The upload was cancelled', 'AbortError'));
      return;
    }
    const xhr = new XMLHttpRequest();
    let stalled = false;
    let stallTimer: ReturnType<typeof setTimeout> | undefined;
    const watch = () => {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => {
        stalled = true;
        xhr.abort();
      }, UPLOAD_STALL_MS);
    };
    const onAbort = () => xhr.abort();
    const done = () => {
      clearTimeout(stallTimer);
      signal?.removeEventListener('abort', onAbort);
    };
    xhr.open('POST', path);
    xhr.withCredentials = true;
    xhr.setRequestHeader('accept', 'application/json');
    xhr.upload.onprogress = (e) => {
      watch();
      progress?.({ sent: e.loaded, total: e.lengthComputable ? e.total : file.size });
    };
    xhr.onload = () => {
      done();
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText) as Attachment);
        } catch {
          reject(new BackendError(0, 'network', NETWORK_MESSAGE));
        }
      } else {
        reject(errorFrom(xhr.status, xhr.responseText));
      }
    };
    xhr.onerror = () => {
      done();
      reject(new BackendError(0, 'network', NETWORK_MESSAGE));
    };
    xhr.onabort = () => {
      done();
      if (stalled) reject(new BackendError(0, 'timeout', TIMEOUT_MESSAGE));
      else reject(new DOMException('The upload was cancelled', 'AbortError'));
    };
    signal?.addEventListener('abort', onAbort);
    const form = new FormData();
    form.append('file', file, name);
    watch();
    xhr.send(form);
  });
}

export class WebBackend implements Backend {
  private tokenCache: { token: Token; expiresAt: number } | null = null;

  plans(): Promise<Plan[]> {
    return request('GET', '/api/plans');
  }

  waiver(): Promise<Waiver> {
    return request('GET', '/api/waiver');
  }

  availability(): Promise<MechanicAvailability> {
    return request('GET', '/api/availability');
  }

  publicConfig(): Promise<PublicConfig> {
    return request('GET', '/api/config');
  }

  waitingRoom(sessionId: string): Promise<WaitingRoom> {
    return request('GET', `/api/sessions/${enc(sessionId)}/waiting-room`);
  }

  outcome(sessionId: string): Promise<SessionOutcome> {
    return request('GET', `/api/sessions/${enc(sessionId)}/outcome`);
  }

  rate(sessionId: string, stars: number, comment: string): Promise<Rating> {
    return request('PUT', `/api/sessions/${enc(sessionId)}/rating`, { stars, comment });
  }

  submitIntake(body: IntakeRequest): Promise<{ session: Session; user: User }> {
    this.tokenCache = null;
    return request('POST', '/api/intake', body);
  }

  signWaiver(sessionId: string, signedName: string, agree: boolean) {
    return request<{ session: Session; next: string }>('POST', `/api/sessions/${enc(sessionId)}/waiver`, {
      signed_name: signedName,
      agree,
    });
  }

  session(sessionId: string): Promise<Session> {
    return request('GET', `/api/sessions/${enc(sessionId)}`);
  }

  resumeLink(sessionId: string): Promise<ResumeLink> {
    return request('POST', `/api/sessions/${enc(sessionId)}/resume-link`);
  }

  checkResume(token: string): Promise<ResumeCheck> {
    return request('POST', '/api/resume/check', { token });
  }

  async resume(token: string, replaceIdentity = false) {
    this.tokenCache = null;
    return request<{ session: Session; user: User; next: string }>('POST', '/api/resume', {
      token,
      replace_identity: replaceIdentity,
    });
  }

  /** A realtime token for this browser's customer, reused while it has a while to live. */
  private async token(fresh = false): Promise<Token> {
    const cached = this.tokenCache;
    if (!fresh && cached && cached.expiresAt - Date.now() > Math.min(REFRESH_MARGIN_MS, cached.token.expires_in * 250)) {
      return cached.token;
    }
    const token = await request<Token>('POST', '/api/auth/token');
    this.tokenCache = { token, expiresAt: Date.now() + token.expires_in * 1000 };
    return token;
  }

  async me(): Promise<User> {
    return (await this.token()).user;
  }

  clockOffset(): Promise<number> {
    return sampleClockOffset(async () => (await request<{ now: string }>('GET', '/api/time')).now);
  }

  history(sessionId: string, afterSeq: number): Promise<Message[]> {
    return request('GET', `/api/sessions/${enc(sessionId)}/messages?after=${Math.max(0, Math.floor(afterSeq))}`);
  }

  sendMessage(sessionId: string, body: string, clientId: string, attachmentIds: readonly string[] = []): Promise<Message> {
    const message: PostMessage = { body, client_id: clientId };
    if (attachmentIds.length > 0) message.attachment_ids = [...attachmentIds];
    return request('POST', `/api/sessions/${enc(sessionId)}/messages`, message);
  }

  uploadAttachment(sessionId: string, file: Blob, name: string, options: UploadOptions = {}): Promise<Attachment> {
    return upload(`/api/sessions/${enc(sessionId)}/attachments`, file, name, options);
  }

  mediaUrl(attachmentId: string, variant: 'file' | 'thumbnail' = 'file'): string {
    const path = `/api/attachments/${enc(attachmentId)}`;
    return variant === 'thumbnail' ? `${path}/thumbnail` : path;
  }

  startSession(sessionId: string): Promise<Session> {
    return request('POST', `/api/sessions/${enc(sessionId)}/start`);
  }

  endSession(sessionId: string): Promise<Session> {
    return request('POST', `/api/sessions/${enc(sessionId)}/end`);
  }

  subscribeSession(sessionId: string, handlers: SessionHandlers): SessionSubscription {
    const link = new SessionLink(sessionId, handlers, (fresh) => this.token(fresh));
    void link.open();
    return link;
  }
}

/**
 * One session's realtime link: a socket with the presence topic (where this user is tracked) and
 * the chat topic (row changes of the session and its messages, typing, `session_ending`). It keeps
 * the token fresh, and starts over when the server closes a channel for good.
 */
class SessionLink implements SessionSubscription {
  private client: RealtimeClient | null = null;
  private chat: RealtimeChannel | null = null;
  private presence: RealtimeChannel | null = null;
  private user: User | null = null;
  private closed = false;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private lastTyping = 0;

  constructor(
    private readonly sessionId: string,
    private readonly handlers: SessionHandlers,
    private readonly token: (fresh: boolean) => Promise<Token>,
  ) {}

  async open(): Promise<void> {
    this.handlers.status?.('connecting');
    try {
      const { RealtimeClient } = await import('@supabase/realtime-js');
      if (this.closed) return;
      const token = await this.token(false);
      if (this.closed) return;
      this.user = token.user;
      const origin = location.origin.replace(/^http/, 'ws');
      // realtime-js always puts an `apikey` in the socket URL; the server ignores it, and no
      // token goes in a URL (URLs end up in logs).
      const client = new RealtimeClient(`${origin}/realtime/v1`, { params: { apikey: REALTIME_APIKEY } });
      // Before any subscribe, so the token is in every join (and every rejoin): the server reads
      // it there only.
      await client.setAuth(token.access_token);
      this.client = client;
      this.scheduleRefresh(token.expires_in);
      this.joinPresence(client, token.user);
      this.joinChat(client);
    } catch (e) {
      const detail = e instanceof Error ? e.message : String(e);
      if (e instanceof BackendError && (e.status === 401 || e.status === 403)) {
        this.handlers.status?.('closed', detail);
        return;
      }
      this.handlers.status?.('reconnecting', detail);
      this.restart();
    }
  }

  private joinPresence(client: RealtimeClient, user: User): void {
    const channel = client.channel(`chat:session-${this.sessionId}:presence`);
    this.presence = channel;
    // Bound before subscribe: only then does the join ask for presence at all.
    channel.on('presence', { event: 'sync' }, () => {
      this.handlers.presence?.(channel.presenceState() as Record<string, unknown>);
    });
    channel.subscribe((status) => {
      if (this.closed || this.presence !== channel) return;
      if (status === 'SUBSCRIBED') {
        // Every (re)join is a new connection to the server: track again.
        const me: PresencePayload = { user_id: user.id, role: user.role, online_at: new Date().toISOString() };
        void channel.track(me);
      } else if (status === 'CLOSED') {
        this.restart();
      }
    });
  }

  private joinChat(client: RealtimeClient): void {
    const id = this.sessionId;
    const channel = client.channel(`chat:session-${id}`, { config: { broadcast: { self: false, ack: false } } });
    this.chat = channel;
    channel.on('postgres_changes', { event: '*', schema: 'public', table: 'sessions', filter: `id=eq.${id}` }, (change) => {
      const row = change.new as Session | undefined;
      if (row && typeof row === 'object' && row.id === id) this.handlers.session?.(row);
    });
    channel.on(
      'postgres_changes',
      { event: 'INSERT', schema: 'public', table: 'messages', filter: `session_id=eq.${id}` },
      (change) => {
        const row = change.new as Message | undefined;
        if (row && typeof row === 'object') this.handlers.message?.(row);
      },
    );
    channel.on('broadcast', { event: 'typing' }, (event) => {
      const payload = event.payload as { user_id?: unknown; role?: unknown } | undefined;
      if (payload && typeof payload.user_id === 'string' && (payload.role === 'customer' || payload.role === 'mechanic')) {
        this.handlers.typing?.({ user_id: payload.user_id, role: payload.role });
      }
    });
    channel.on('broadcast', { event: 'session_ending' }, (event) => {
      const payload = event.payload as { session_id?: unknown; ends_at?: unknown; seconds_left?: unknown };
      if (payload && typeof payload.ends_at === 'string') {
        this.handlers.ending?.({
          session_id: String(payload.session_id ?? id),
          ends_at: payload.ends_at,
          seconds_left: Number(payload.seconds_left ?? 0),
        });
      }
    });
    channel.subscribe((status, err) => {
      if (this.closed || this.chat !== channel) return;
      switch (status) {
        case 'SUBSCRIBED':
          this.handlers.status?.('subscribed');
          this.handlers.subscribed?.();
          break;
        case 'CHANNEL_ERROR':
        case 'TIMED_OUT':
          this.handlers.status?.('reconnecting', err?.message ?? status);
          break;
        case 'CLOSED':
          // The server ended the channel for good (an expired token, a refused join): realtime-js
          // does not rejoin by itself, so start over with a fresh token.
          this.handlers.status?.('reconnecting', 'channel closed');
          this.restart();
          break;
      }
    });
  }

  private scheduleRefresh(expiresIn: number): void {
    clearTimeout(this.refreshTimer);
    const lifetime = expiresIn * 1000;
    // A minute before expiry, or a quarter of the lifetime before it for short-lived tokens.
    const wait = Math.max(1_000, lifetime - Math.min(REFRESH_MARGIN_MS, lifetime / 4));
    this.refreshTimer = setTimeout(() => void this.refresh(), wait);
  }

  private async refresh(): Promise<void> {
    if (this.closed || !this.client) return;
    try {
      const token = await this.token(true);
      if (this.closed || !this.client) return;
      // Pushes `access_token` to joined channels and puts it in every later rejoin.
      await this.client.setAuth(token.access_token);
      this.scheduleRefresh(token.expires_in);
    } catch (e) {
      if (e instanceof BackendError && (e.status === 401 || e.status === 403)) {
        this.handlers.status?.('closed', e.message);
        return;
      }
      this.refreshTimer = setTimeout(() => void this.refresh(), 10_000);
    }
  }

  /** Tears the socket down and opens a new one shortly after (at most one pending restart). */
  private restart(): void {
    if (this.closed || this.restartTimer !== undefined) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.closed) void this.open();
    }, RESTART_AFTER_MS);
    this.teardown();
  }

  private teardown(): void {
    clearTimeout(this.refreshTimer);
    const client = this.client;
    this.client = null;
    this.chat = null;
    this.presence = null;
    if (client) void client.removeAllChannels().catch(() => undefined);
  }

  typing(): void {
    const chat = this.chat;
    const user = this.user;
    const now = Date.now();
    if (!chat || !user || chat.state !== 'joined' || now - this.lastTyping < TYPING_EVERY_MS) return;
    this.lastTyping = now;
    const typing: Typing = { user_id: user.id, role: user.role };
    void chat.send({ type: 'broadcast', event: 'typing', payload: typing });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.restartTimer);
    this.teardown();
  }
}
