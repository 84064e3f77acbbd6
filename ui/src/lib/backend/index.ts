// The one interface through which the UI reaches the outside world. Its implementations (desktop:
// Tauri commands and events; web: HTTP and realtime-js, `web.ts`) live in this folder, and this
// folder is the only place allowed to import `@tauri-apps/*`, so the rest of the UI runs in a
// plain browser too. The wire types are generated from crates/protocol (lib/generated, see
// docs/architecture.md) and re-exported here.

import type {
  Attachment,
  AttachmentKind,
  HistoryEntry,
  IntakeRequest,
  IntakeResponse,
  MechanicAvailability,
  MechanicNotes,
  MechanicSummary,
  Message,
  Plan,
  PublicConfig,
  Rating,
  ResumeCheck,
  ResumeLink,
  ResumeResponse,
  Role,
  Session,
  SessionEnding,
  SessionOutcome,
  SessionStatus,
  SummaryRequest,
  Typing,
  Urgency,
  User,
  Vehicle,
  WaitingRoom,
  Waiver,
  WaiverResponse,
} from '../generated';

export type {
  Attachment,
  AttachmentKind,
  HistoryEntry,
  IntakeRequest,
  IntakeResponse,
  MechanicAvailability,
  MechanicNotes,
  MechanicSummary,
  Message,
  Plan,
  PublicConfig,
  Rating,
  ResumeCheck,
  ResumeLink,
  ResumeResponse,
  Role,
  Session,
  SessionEnding,
  SessionOutcome,
  SessionStatus,
  SummaryRequest,
  Typing,
  Urgency,
  User,
  Vehicle,
  WaitingRoom,
  Waiver,
  WaiverResponse,
};

/**
 * Every failure reaches the UI as this one shape: the server's `{error, message, fields?,
 * missing?, session?}` plus the HTTP status. `error` is `network` when the server was not reached
 * and `unexpected` for an answer that was not the API's error JSON.
 */
export class BackendError extends Error {
  readonly status: number;
  readonly code: string;
  readonly fields: Record<string, string>;
  readonly missing: Role[];
  readonly session: Session | null;

  constructor(
    status: number,
    code: string,
    message: string,
    extra: { fields?: Record<string, string>; missing?: Role[]; session?: Session | null } = {},
  ) {
    super(message);
    this.name = 'BackendError';
    this.status = status;
    this.code = code;
    this.fields = extra.fields ?? {};
    this.missing = extra.missing ?? [];
    this.session = extra.session ?? null;
  }
}

/** How the realtime link of one session is doing. */
export type LinkStatus = 'connecting' | 'subscribed' | 'reconnecting' | 'closed';

/**
 * Callbacks of one session subscription. `presence` gets the raw presence state (connection key →
 * payloads) so the caller decides who is present by payload `user_id` (lib/presence.ts) and can
 * show it in the debug view. `subscribed` fires after every (re)subscription: the moment to fetch
 * the history after the last seq and the session, so nothing missed while away stays missing.
 */
export type SessionHandlers = {
  status?(status: LinkStatus, detail?: string): void;
  subscribed?(): void;
  session?(session: Session): void;
  message?(message: Message): void;
  presence?(state: Record<string, unknown>): void;
  typing?(typing: Typing): void;
  ending?(ending: SessionEnding): void;
};

/** A live subscription: send typing notices through it and close it when leaving the page. */
export type SessionSubscription = {
  typing(): void;
  close(): void;
};

/** How far an upload is, in bytes. */
export type UploadProgress = { sent: number; total: number };

/** How an upload reports progress and is cancelled. */
export type UploadOptions = {
  progress?(progress: UploadProgress): void;
  signal?: AbortSignal;
};

export interface Backend {
  plans(): Promise<Plan[]>;
  waiver(): Promise<Waiver>;
  /** Files an intake; the web implementation receives the identity cookie with the answer. */
  submitIntake(body: IntakeRequest): Promise<IntakeResponse>;
  signWaiver(sessionId: string, signedName: string, agree: boolean): Promise<WaiverResponse>;
  session(sessionId: string): Promise<Session>;
  resumeLink(sessionId: string): Promise<ResumeLink>;
  /** Looks at a resume link without using it: is it usable, would it replace this browser's identity. */
  checkResume(token: string): Promise<ResumeCheck>;
  /** Uses a resume link (once); `replaceIdentity` after the person agreed to switch identities. */
  resume(token: string, replaceIdentity?: boolean): Promise<ResumeResponse>;
  /** Who this client is (customer: from the identity cookie; mechanic: from the sign-in). */
  me(): Promise<User>;
  /** The server clock minus the local clock, in ms. */
  clockOffset(): Promise<number>;
  /** Messages with a seq greater than `afterSeq`, in seq order. */
  history(sessionId: string, afterSeq: number): Promise<Message[]>;
  /**
   * Posts a message; repeating a `clientId` returns the message already stored under it. A
   * message has a body, attachments (ids from `uploadAttachment`), or both.
   */
  sendMessage(sessionId: string, body: string, clientId: string, attachmentIds?: readonly string[]): Promise<Message>;
  /**
   * Uploads one file for the session (stored, not sent: a message sends it). `progress` hears
   * of the bytes sent where the transport tells; `signal` cancels the upload.
   */
  uploadAttachment(sessionId: string, file: Blob, name: string, options?: UploadOptions): Promise<Attachment>;
  /** Where the page loads an attachment (or its thumbnail) from: never a URL with a token in it. */
  mediaUrl(attachmentId: string, variant?: 'file' | 'thumbnail'): string;
  /**
   * A URL an audio or video element can play, where `mediaUrl` is not one: the desktop app reads
   * the bytes through the shell into a `blob:` URL (WebKitGTK's players cannot read the shell's
   * scheme). The caller revokes it.
   */
  playableUrl?(attachmentId: string, contentType: string): Promise<string>;
  /** Saves an attachment to the computer's disk, answering where (the desktop app only). */
  saveAttachment?(attachmentId: string, fileName: string): Promise<string>;
  startSession(sessionId: string): Promise<Session>;
  endSession(sessionId: string): Promise<Session>;
  /** Joins the session's chat and presence topics and tracks this user as present. */
  subscribeSession(sessionId: string, handlers: SessionHandlers): SessionSubscription;
  /**
   * How many mechanics are online, for the customer's pages. Only the web shell has it: the
   * desktop app shows the mechanic's own availability instead.
   */
  availability?(): Promise<MechanicAvailability>;
  /** What the server offers the customer's pages (whether it mails them). Web shell only. */
  publicConfig?(): Promise<PublicConfig>;
  /** The request's place in line, expected wait and mechanics available (the customer's page). */
  waitingRoom?(sessionId: string): Promise<WaitingRoom>;
  /** The mechanic's summary and the customer's rating of a session. */
  outcome?(sessionId: string): Promise<SessionOutcome>;
  /** Rates a completed session (its customer; changeable for a day). */
  rate?(sessionId: string, stars: number, comment: string): Promise<Rating>;
}
