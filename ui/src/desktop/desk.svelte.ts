// The desktop shell's state: the sign-in, the request feed, availability, settings, notices and
// which view is open. It is fed by the shell's events (through the Tauri backend) and changes
// only through the backend's commands; views read it and call its methods.

import { BackendError, type Session } from '../lib/backend';
import { memoryOutbox } from '../lib/chat/outbox';
import { Heard } from './snapshot';
import {
  TauriBackend,
  toBackendError,
  type AppState,
  type AuthView,
  type Availability,
  type CredentialStore,
  type FeedStatus,
  type Navigation,
  type SettingChange,
  type SettingsView,
  type UpdateView,
} from '../lib/backend/tauri';

export type View =
  | { name: 'requests' }
  | { name: 'settings' }
  | { name: 'history' }
  | { name: 'chat'; sessionId: string };

/** A chat kept open (and the mechanic present in it) while other views show. */
export type OpenChat = { id: string; label: string };

/** How long a notice stays. */
const NOTICE_MS = 8_000;

export class Desk {
  readonly backend = new TauriBackend();
  /** Messages not yet acknowledged, per session: closing a chat and opening it again keeps them. */
  readonly outbox = memoryOutbox();

  loaded = $state(false);
  auth = $state<AuthView>({ state: 'restoring', server_url: '', error: null });
  credentialStore = $state<CredentialStore>({ available: true, reason: null });
  availability = $state<Availability>('online');
  feedStatus = $state<FeedStatus>('connecting');
  settings = $state<SettingsView | null>(null);
  update = $state<UpdateView>({ state: 'idle' });
  requests = $state<Session[]>([]);
  version = $state('');
  demoSignIn = $state<AppState['demo_sign_in']>(null);
  view = $state<View>({ name: 'requests' });
  /** The request a notification pointed at, highlighted in the list. */
  focused = $state<string | null>(null);
  /** Requests being accepted right now (their button is busy). */
  accepting = $state<string[]>([]);
  notice = $state<string | null>(null);
  now = $state(Date.now());
  /** Chats stay mounted while open, so switching views does not leave them. */
  chats = $state<OpenChat[]>([]);

  private noticeTimer: ReturnType<typeof setTimeout> | undefined;
  /** How many request lists the feed has sent. */
  private requestsTold = 0;

  /**
   * Listens to every event first, then reads the state once, so nothing falls in between; what an
   * event told meanwhile is newer than the state read (see `snapshot.ts`).
   */
  async start(): Promise<void> {
    const b = this.backend;
    const heard = new Heard<keyof AppState>();
    await Promise.all([
      b.onAuth(heard.on('auth', (auth: AuthView) => this.applyAuth(auth))),
      b.onRequests((rows) => {
        this.requestsTold += 1;
        this.requests = rows;
      }),
      b.onFeedStatus(heard.on('feed_status', (status: FeedStatus) => (this.feedStatus = status))),
      b.onAvailability(heard.on('availability', (a: Availability) => (this.availability = a))),
      b.onSettings(heard.on('settings', (s: SettingsView) => (this.settings = s))),
      b.onUpdate(heard.on('update', (u: UpdateView) => (this.update = u))),
      b.onNotice((message) => this.say(message)),
      b.onNavigate(() => void this.navigate()),
    ]);
    const state = heard.untold(await b.appState());
    if (state.credential_store) this.credentialStore = state.credential_store;
    if (state.availability) this.availability = state.availability;
    if (state.feed_status) this.feedStatus = state.feed_status;
    if (state.settings) this.settings = state.settings;
    if (state.update) this.update = state.update;
    if (state.version) this.version = state.version;
    if (state.demo_sign_in) this.demoSignIn = state.demo_sign_in;
    if (state.auth) this.applyAuth(state.auth);
    this.loaded = true;
    setInterval(() => (this.now = Date.now()), 1_000);
    await this.navigate();
  }

  private applyAuth(auth: AuthView): void {
    const wasSignedIn = this.auth.state === 'signed_in';
    this.auth = auth;
    if (auth.state === 'signed_in') {
      // A list the feed sent while this one was on its way is newer.
      const told = this.requestsTold;
      void this.backend.requests().then((rows) => {
        if (this.requestsTold === told) this.requests = rows;
      });
      void this.navigate();
    } else if (wasSignedIn) {
      this.requests = [];
      this.chats = [];
      this.view = { name: 'requests' };
    }
  }

  /** Goes where a deep link or a notification asked, once signed in. */
  async navigate(): Promise<void> {
    if (this.auth.state !== 'signed_in') return;
    const to: Navigation | null = await this.backend.takeNavigation();
    if (!to) return;
    if (to.kind === 'session') {
      this.openChat(to.id);
    } else {
      this.view = { name: 'requests' };
      this.focused = to.id;
    }
  }

  say(message: string): void {
    this.notice = message;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => (this.notice = null), NOTICE_MS);
  }

  async signIn(serverUrl: string, email: string, password: string): Promise<void> {
    await this.backend.signIn(serverUrl, email, password);
  }

  async signOut(): Promise<void> {
    try {
      await this.backend.signOut();
    } catch (e) {
      this.say(toBackendError(e).message);
    }
  }

  /** Accepts and opens the chat; a lost race drops the row with a clear word. */
  async accept(id: string): Promise<void> {
    if (this.accepting.includes(id)) return;
    this.accepting = [...this.accepting, id];
    try {
      const session = await this.backend.accept(id);
      this.requests = this.requests.filter((r) => r.id !== id);
      this.openChat(id, `${session.vehicle.year} ${session.vehicle.make} ${session.vehicle.model}`);
    } catch (e) {
      const err = toBackendError(e);
      if (err.code === 'already_accepted') {
        this.requests = this.requests.filter((r) => r.id !== id);
        this.say('Another mechanic took this request.');
      } else {
        this.say(err instanceof BackendError ? err.message : 'Could not accept the request.');
      }
    } finally {
      this.accepting = this.accepting.filter((a) => a !== id);
    }
  }

  /** Shows a session's chat, opening it if needed. */
  openChat(id: string, label?: string): void {
    if (!this.chats.some((c) => c.id === id)) {
      const r = this.requests.find((q) => q.id === id);
      const fallback = r ? `${r.vehicle.year} ${r.vehicle.make} ${r.vehicle.model}` : 'Session';
      this.chats = [...this.chats, { id, label: label ?? fallback }];
    }
    this.view = { name: 'chat', sessionId: id };
  }

  /** Leaves a chat: the mechanic is no longer present in it. */
  closeChat(id: string): void {
    this.chats = this.chats.filter((c) => c.id !== id);
    if (this.view.name === 'chat' && this.view.sessionId === id) this.view = { name: 'requests' };
  }

  labelChat(id: string, label: string): void {
    this.chats = this.chats.map((c) => (c.id === id && c.label !== label ? { ...c, label } : c));
  }

  async setAvailability(availability: Availability): Promise<void> {
    await this.backend.setAvailability(availability);
    this.availability = availability;
  }

  async changeSetting(change: SettingChange): Promise<void> {
    try {
      this.settings = await this.backend.changeSetting(change);
    } catch (e) {
      this.say(toBackendError(e).message);
    }
  }

  async checkForUpdate(): Promise<void> {
    try {
      this.update = await this.backend.checkForUpdate();
    } catch (e) {
      this.say(toBackendError(e).message);
    }
  }

  async installUpdate(): Promise<void> {
    try {
      this.update = await this.backend.installUpdate();
    } catch (e) {
      this.say(toBackendError(e).message);
    }
  }

  async restartApp(): Promise<void> {
    await this.backend.restartApp();
  }

  isLocked(key: keyof SettingsView['values']): boolean {
    return this.settings?.locked.includes(key) ?? false;
  }
}

/** "just now", "4 min", "1 h 5 min": how long a request has waited. */
export function waited(sinceIso: string | null | undefined, now: number): string {
  const since = sinceIso ? Date.parse(sinceIso) : NaN;
  if (Number.isNaN(since)) return '';
  const minutes = Math.floor(Math.max(0, now - since) / 60_000);
  if (minutes < 1) return 'just now';
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest ? `${hours} h ${rest} min` : `${hours} h`;
}
