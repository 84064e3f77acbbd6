// The desktop implementation of `Backend`: Tauri commands and events of the Rust shell
// (src-tauri/commands.rs, events.rs). The shell owns the tokens and the realtime connection, so
// nothing here sees a token or opens a socket; this file only invokes commands and listens to
// events. It is the only file of the UI that imports `@tauri-apps/*`. Besides `Backend` (what the
// shared chat room needs) it offers the desktop's own calls: sign-in, the request feed, accept,
// availability, settings and navigation.

import { convertFileSrc, invoke, type InvokeArgs, type InvokeOptions } from '@tauri-apps/api/core';
import { listen, type Event, type UnlistenFn } from '@tauri-apps/api/event';
import { sampleClockOffset } from '../countdown';
import type {
  Availability,
  HistoryEntry,
  MechanicNotes,
  MechanicSummary,
  Rating,
  Role,
  SummaryRequest,
} from '../generated';
import {
  BackendError,
  type Attachment,
  type Backend,
  type UploadOptions,
  type LinkStatus,
  type Message,
  type Plan,
  type ResumeCheck,
  type ResumeLink,
  type Session,
  type SessionHandlers,
  type SessionSubscription,
  type User,
  type Waiver,
} from './index';

/** The sign-in as the shell reports it (`auth` event, `app_state`). */
export type AuthView =
  | { state: 'restoring'; server_url: string; error: string | null }
  | { state: 'signed_out'; server_url: string; email: string | null; notice: string | null }
  | { state: 'signed_in'; server_url: string; user: User };

export type { Availability } from '../generated';

/** One past session as the History view opens it (`session_record`, crates/client). */
export type SessionRecord = {
  session: Session;
  transcript: Message[];
  summary: MechanicSummary | null;
  notes: MechanicNotes;
  rating: Rating | null;
};

/** The request feed's connection: `connecting`, `live`, `reconnecting`. */
export type FeedStatus = string;

export type CredentialStore = { available: boolean; reason: string | null };

export type SettingsValues = {
  server_url: string;
  notifications: boolean;
  notification_sound: boolean;
  start_at_login: boolean;
  updates: boolean;
};

export type SettingKey = keyof SettingsValues;

export type SettingsView = {
  values: SettingsValues;
  /** Keys set by the IT-managed file: shown, not editable. */
  locked: SettingKey[];
  managed_path: string;
  managed_error: string | null;
  last_email: string | null;
};

export type SettingChange =
  | { key: 'server_url'; value: string }
  | { key: 'notifications' | 'notification_sound' | 'start_at_login' | 'updates'; value: boolean };

/** Updates of the app itself (`update` event), see `UpdateView` in crates/desk-core/src/view.rs. */
export type UpdateView =
  | { state: 'off'; reason: string }
  | { state: 'idle' }
  | { state: 'checking' }
  | { state: 'up_to_date' }
  | { state: 'available'; version: string; notes: string | null }
  | { state: 'downloading'; version: string; received: number; total: number | null }
  | { state: 'installed'; version: string }
  | { state: 'failed'; version: string | null; message: string };

export type AppState = {
  auth: AuthView;
  credential_store: CredentialStore;
  availability: Availability;
  feed_status: FeedStatus;
  settings: SettingsView;
  update: UpdateView;
  version: string;
  /** `make run`'s demo mechanic (debug builds): pre-fills the sign-in form. */
  demo_sign_in: { server_url: string; email: string; password: string } | null;
};

/** Where to go: a request in the list (a notification's click) or a session (a deep link). */
export type Navigation = { kind: 'request' | 'session'; id: string };

/** What the shell sends about an open chat (`session-event`), see `ChatEvent` in crates/client/src/mechanic/chat.rs. */
type SessionEvent =
  | { kind: 'status'; session_id: string; status: LinkStatus; detail: string | null }
  | { kind: 'subscribed'; session_id: string }
  | { kind: 'session'; session_id: string; session: Session }
  | { kind: 'message'; session_id: string; message: Message }
  | { kind: 'presence'; session_id: string; state: Record<string, unknown> }
  | { kind: 'typing'; session_id: string; user_id: string; role: Role }
  | { kind: 'ending'; session_id: string; ends_at: string; seconds_left: number };

/** Least time between two typing notices. */
const TYPING_EVERY_MS = 2_000;

function isErrorShape(e: unknown): e is { code: string; message: string } {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { code?: unknown }).code === 'string' &&
    typeof (e as { message?: unknown }).message === 'string'
  );
}

/** The shell's `{code, message}` as the UI's one error type. */
export function toBackendError(e: unknown): BackendError {
  if (e instanceof BackendError) return e;
  if (isErrorShape(e)) return new BackendError(0, e.code, e.message);
  return new BackendError(0, 'unexpected', 'Something went wrong; please try again');
}

/** The URI scheme the shell serves attachments on (src-tauri/media.rs). */
const MEDIA_SCHEME = 'wlmedia';

async function call<T>(command: string, args?: InvokeArgs, options?: InvokeOptions): Promise<T> {
  try {
    return await invoke<T>(command, args, options);
  } catch (e) {
    throw toBackendError(e);
  }
}

function unsupported(what: string): Promise<never> {
  return Promise.reject(new BackendError(0, 'unsupported', `${what} is not part of the desktop app`));
}

/** Listens to one of the shell's events; resolves to the function that stops listening. */
function on<T>(event: string, handler: (payload: T) => void): Promise<UnlistenFn> {
  return listen<T>(event, (e: Event<T>) => handler(e.payload));
}

export class TauriBackend implements Backend {
  // --- Backend (the shared chat room) ---------------------------------------------------------

  plans(): Promise<Plan[]> {
    return unsupported('Plans');
  }

  waiver(): Promise<Waiver> {
    return unsupported('The waiver');
  }

  submitIntake(): Promise<{ session: Session; user: User }> {
    return unsupported('An intake');
  }

  signWaiver(): Promise<{ session: Session; next: string }> {
    return unsupported('Signing the waiver');
  }

  resumeLink(): Promise<ResumeLink> {
    return unsupported('A resume link');
  }

  checkResume(): Promise<ResumeCheck> {
    return unsupported('Resuming');
  }

  resume(): Promise<{ session: Session; user: User; next: string }> {
    return unsupported('Resuming');
  }

  session(sessionId: string): Promise<Session> {
    return call('session', { id: sessionId });
  }

  me(): Promise<User> {
    return call('me');
  }

  clockOffset(): Promise<number> {
    return sampleClockOffset(() => call<string>('server_time'));
  }

  history(sessionId: string, afterSeq: number): Promise<Message[]> {
    return call('messages', { id: sessionId, after: Math.max(0, Math.floor(afterSeq)) });
  }

  sendMessage(sessionId: string, body: string, clientId: string, attachmentIds: readonly string[] = []): Promise<Message> {
    return call('send_message', { id: sessionId, body, client_id: clientId, attachment_ids: [...attachmentIds] });
  }

  /**
   * The bytes go to the shell as the command's raw body (no JSON number arrays), the session and
   * the file's name and type in headers; the shell uploads them with the mechanic's token. The
   * IPC reports no progress, so there is one step: all sent once the shell answers.
   */
  async uploadAttachment(sessionId: string, file: Blob, name: string, options: UploadOptions = {}): Promise<Attachment> {
    const { signal, progress } = options;
    const cancelled = () => new DOMException('The upload was cancelled', 'AbortError');
    if (signal?.aborted) throw cancelled();
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (signal?.aborted) throw cancelled();
    progress?.({ sent: 0, total: bytes.byteLength });
    const stored = await call<Attachment>('upload_attachment', bytes, {
      headers: {
        'x-session-id': sessionId,
        'x-file-name': encodeURIComponent(name),
        'x-content-type': file.type || 'application/octet-stream',
      },
    });
    if (signal?.aborted) throw cancelled();
    progress?.({ sent: bytes.byteLength, total: bytes.byteLength });
    return stored;
  }

  /** Served by the shell's `wlmedia` protocol, which fetches it with the mechanic's token. */
  mediaUrl(attachmentId: string, variant: 'file' | 'thumbnail' = 'file'): string {
    const path = variant === 'thumbnail' ? `${attachmentId}/thumbnail` : attachmentId;
    return convertFileSrc(path, MEDIA_SCHEME);
  }

  async playableUrl(attachmentId: string, contentType: string): Promise<string> {
    const bytes = await call<ArrayBuffer>('attachment_bytes', { id: attachmentId });
    return URL.createObjectURL(new Blob([bytes], { type: contentType }));
  }

  saveAttachment(attachmentId: string, fileName: string): Promise<string> {
    return call('save_attachment', { id: attachmentId, file_name: fileName });
  }

  startSession(sessionId: string): Promise<Session> {
    return call('start_session', { id: sessionId });
  }

  endSession(sessionId: string): Promise<Session> {
    return call('end_session', { id: sessionId });
  }

  subscribeSession(sessionId: string, handlers: SessionHandlers): SessionSubscription {
    let closed = false;
    let lastTyping = 0;
    handlers.status?.('connecting');
    const unlisten = on<SessionEvent>('session-event', (event) => {
      if (closed || event.session_id !== sessionId) return;
      switch (event.kind) {
        case 'status':
          handlers.status?.(event.status, event.detail ?? undefined);
          break;
        case 'subscribed':
          handlers.subscribed?.();
          break;
        case 'session':
          handlers.session?.(event.session);
          break;
        case 'message':
          handlers.message?.(event.message);
          break;
        case 'presence':
          handlers.presence?.(event.state);
          break;
        case 'typing':
          handlers.typing?.({ user_id: event.user_id, role: event.role });
          break;
        case 'ending':
          handlers.ending?.({ session_id: sessionId, ends_at: event.ends_at, seconds_left: event.seconds_left });
          break;
      }
    });
    // Listen first, then join: nothing the shell sends about this chat is missed.
    void unlisten
      .then(() => (closed ? undefined : call('open_chat', { id: sessionId })))
      .catch((e) => handlers.status?.('closed', toBackendError(e).message));
    return {
      typing() {
        const now = Date.now();
        if (closed || now - lastTyping < TYPING_EVERY_MS) return;
        lastTyping = now;
        void call('typing', { id: sessionId }).catch(() => undefined);
      },
      close() {
        if (closed) return;
        closed = true;
        void unlisten.then((stop) => stop());
        void call('close_chat', { id: sessionId }).catch(() => undefined);
      },
    };
  }

  // --- The desktop's own calls ----------------------------------------------------------------

  appState(): Promise<AppState> {
    return call('app_state');
  }

  signIn(serverUrl: string, email: string, password: string): Promise<User> {
    return call('sign_in', { server_url: serverUrl, email, password });
  }

  signOut(): Promise<void> {
    return call('sign_out');
  }

  requests(): Promise<Session[]> {
    return call('requests');
  }

  /** Accepts a request; a lost race rejects with code `already_accepted`. */
  accept(sessionId: string): Promise<Session> {
    return call('accept', { id: sessionId });
  }

  setAvailability(availability: Availability): Promise<void> {
    return call('set_availability', { availability });
  }

  /** A page of the mechanic's sessions, latest first, matching every word of `q`. */
  pastSessions(q: string, after: string | null = null): Promise<HistoryEntry[]> {
    return call('history', { q, after });
  }

  /** One session with its transcript, summary, private notes and rating. */
  sessionRecord(sessionId: string): Promise<SessionRecord> {
    return call('session_record', { id: sessionId });
  }

  writeSummary(sessionId: string, summary: SummaryRequest): Promise<MechanicSummary> {
    return call('write_summary', { id: sessionId, summary });
  }

  writeNotes(sessionId: string, body: string): Promise<MechanicNotes> {
    return call('write_notes', { id: sessionId, body });
  }

  changeSetting(change: SettingChange): Promise<SettingsView> {
    return call('change_setting', { change });
  }

  takeNavigation(): Promise<Navigation | null> {
    return call('take_navigation');
  }

  checkForUpdate(): Promise<UpdateView> {
    return call('check_for_update');
  }

  /** Downloads, verifies and installs the update the last check found. */
  installUpdate(): Promise<UpdateView> {
    return call('install_update');
  }

  restartApp(): Promise<void> {
    return call('restart_app');
  }

  onUpdate(handler: (update: UpdateView) => void): Promise<UnlistenFn> {
    return on('update', handler);
  }

  onAuth(handler: (auth: AuthView) => void): Promise<UnlistenFn> {
    return on('auth', handler);
  }

  onRequests(handler: (requests: Session[]) => void): Promise<UnlistenFn> {
    return on('requests', handler);
  }

  onFeedStatus(handler: (status: FeedStatus) => void): Promise<UnlistenFn> {
    return on('feed-status', handler);
  }

  onAvailability(handler: (availability: Availability) => void): Promise<UnlistenFn> {
    return on('availability', handler);
  }

  onSettings(handler: (settings: SettingsView) => void): Promise<UnlistenFn> {
    return on('settings', handler);
  }

  /** A sentence the shell wants shown (e.g. a lost accept from a notification). */
  onNotice(handler: (message: string) => void): Promise<UnlistenFn> {
    return on('notice', handler);
  }

  /** A deep link or a notification asks to go somewhere: call `takeNavigation`. */
  onNavigate(handler: () => void): Promise<UnlistenFn> {
    return on('navigate', () => handler());
  }
}
