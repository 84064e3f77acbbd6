// The chat's outbox, as data: which of this client's messages the server has not acknowledged
// yet, where they are kept between page loads (a small store interface: the web shell keeps them
// in the tab's sessionStorage, the desktop shell in memory), which send failures are worth
// waiting out and how long to wait between attempts. `ChatRoom` drives the sending.

import { isAttachment, type LocalFile } from '../attachments';
import { BackendError, type Role } from '../backend';

/** A message typed here and not yet acknowledged by the server. */
export type QueuedMessage = {
  client_id: string;
  body: string;
  created_at: string;
  sender_id: string;
  sender_role: Role;
  /**
   * Its files: described here (the store keeps text only), each with the stored attachment once
   * uploaded; the bytes of the others live in the page's memory until they are.
   */
  files?: LocalFile[];
};

/** Where a room keeps its unacknowledged messages, per session, in the order they were typed. */
export interface OutboxStore {
  load(sessionId: string): QueuedMessage[];
  /** Replaces the session's list; an empty list forgets the session. */
  save(sessionId: string, queued: readonly QueuedMessage[]): void;
}

/** An outbox that lives as long as the page (the desktop app: its window is not reloaded). */
export function memoryOutbox(): OutboxStore {
  const lists = new Map<string, QueuedMessage[]>();
  return {
    load: (sessionId) => (lists.get(sessionId) ?? []).map((m) => ({ ...m })),
    save: (sessionId, queued) => {
      if (queued.length === 0) lists.delete(sessionId);
      else lists.set(sessionId, queued.map((m) => ({ ...m })));
    },
  };
}

/** The part of the Web Storage API the outbox needs. */
export type KeyValueStorage = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

export const OUTBOX_KEY_PREFIX = 'wrenchline:outbox:';

function isLocalFile(value: unknown): value is LocalFile {
  if (typeof value !== 'object' || value === null) return false;
  const f = value as Record<string, unknown>;
  return (
    typeof f.local_id === 'string' &&
    typeof f.name === 'string' &&
    typeof f.type === 'string' &&
    typeof f.size === 'number' &&
    (f.kind === 'image' || f.kind === 'video' || f.kind === 'audio') &&
    (f.attachment === undefined || isAttachment(f.attachment))
  );
}

function isQueuedMessage(value: unknown): value is QueuedMessage {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return (
    typeof m.client_id === 'string' &&
    m.client_id !== '' &&
    typeof m.body === 'string' &&
    typeof m.created_at === 'string' &&
    typeof m.sender_id === 'string' &&
    (m.sender_role === 'customer' || m.sender_role === 'mechanic') &&
    (m.files === undefined || (Array.isArray(m.files) && m.files.every(isLocalFile)))
  );
}

/**
 * An outbox kept in a Web Storage area, one JSON list per session. Storage that throws (full,
 * disabled by the browser) or holds something unreadable costs the reload survival only: the room
 * keeps its queue in memory either way.
 */
export function storageOutbox(storage: KeyValueStorage): OutboxStore {
  return {
    load(sessionId) {
      try {
        const parsed: unknown = JSON.parse(storage.getItem(OUTBOX_KEY_PREFIX + sessionId) ?? '[]');
        return Array.isArray(parsed) ? parsed.filter(isQueuedMessage) : [];
      } catch {
        return [];
      }
    },
    save(sessionId, queued) {
      try {
        if (queued.length === 0) storage.removeItem(OUTBOX_KEY_PREFIX + sessionId);
        else storage.setItem(OUTBOX_KEY_PREFIX + sessionId, JSON.stringify(queued));
      } catch {
        // See above: only the survival of a reload is lost.
      }
    },
  };
}

/**
 * Codes that mean "not now" when there is no HTTP status: the web backend's transport failures,
 * and the desktop shell's errors, which carry the server's code without its status.
 */
const TRANSIENT_CODES = new Set(['network', 'timeout', 'rate_limited', 'internal', 'service_unavailable']);

/**
 * Whether a failed send may succeed later as it is: the server was not reached, took too long,
 * was overloaded or asked to slow down. Anything else is a refusal that repeating cannot change
 * (the session ended, the message is invalid, not signed in), so it is shown with a Retry instead
 * of being retried for ever.
 */
export function isTransient(e: unknown): boolean {
  if (!(e instanceof BackendError)) return false;
  if (e.status === 408 || e.status === 429 || e.status >= 500) return true;
  return e.status === 0 && TRANSIENT_CODES.has(e.code);
}

/** What a queued message says, for people, after a transient failure (the view adds that it sends by itself). */
export function queuedReason(e: unknown): string {
  if (e instanceof BackendError) {
    if (e.status === 429 || e.code === 'rate_limited') return 'Waiting: too many messages at once…';
    if (e.status >= 500 || e.code === 'internal' || e.code === 'service_unavailable') return 'Waiting for the server…';
  }
  return 'Waiting for connection…';
}

export const FIRST_RETRY_MS = 1_000;
export const MAX_RETRY_MS = 15_000;

/** The wait before the next automatic attempt, after `retries` of them in a row: 1 s doubling to 15 s. */
export function retryDelay(retries: number): number {
  return Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.min(Math.max(0, retries), 16));
}
