// The chat's message list: messages stored by the server (they have an `id` and a `seq`) and this
// client's own messages still on their way (they have only a `client_id`): being sent, queued
// until the connection is back, or refused. Messages arrive from three places — history, realtime
// inserts, the answer to a post — in any order and more than once; merging keeps one entry per id,
// orders by seq, and lets a stored message replace the optimistic entry with the same client_id.

import { attachmentsOf, type Attachment, type LocalFile } from './attachments';
import type { Message, Role } from './backend';

/**
 * `queued`: a send failed for a reason that passes (no connection, server busy) and the room sends
 * it again by itself; `failed`: the server refused it, and only a Retry sends it again.
 */
export type Delivery = 'sending' | 'queued' | 'sent' | 'failed';

export type ChatEntry = {
  /** Stable key for rendering: the message id once stored, else `local:` + client_id. */
  key: string;
  id: string | null;
  seq: number | null;
  client_id: string;
  sender_id: string;
  sender_role: Role;
  body: string;
  /** What a stored message carries. */
  attachments: Attachment[];
  /** The files of a message still on its way (uploaded or not). */
  files: LocalFile[];
  created_at: string;
  delivery: Delivery;
  /** Why the last send failed or is waiting, for people. */
  error?: string;
};

export function storedEntry(m: Message): ChatEntry {
  return {
    key: m.id,
    id: m.id,
    seq: m.seq,
    client_id: m.client_id,
    sender_id: m.sender_id,
    sender_role: m.sender_role,
    body: m.body,
    attachments: attachmentsOf(m),
    files: [],
    created_at: m.created_at,
    delivery: 'sent',
  };
}

export function pendingEntry(
  clientId: string,
  body: string,
  sender: { id: string; role: Role },
  now: Date = new Date(),
  files: readonly LocalFile[] = [],
): ChatEntry {
  return {
    key: `local:${clientId}`,
    id: null,
    seq: null,
    client_id: clientId,
    sender_id: sender.id,
    sender_role: sender.role,
    body,
    attachments: [],
    files: files.map((f) => ({ ...f })),
    created_at: now.toISOString(),
    delivery: 'sending',
  };
}

/** Whether a record has what the list needs of a stored message. */
export function isMessage(value: unknown): value is Message {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return (
    typeof m.id === 'string' &&
    typeof m.seq === 'number' &&
    (m.attachments === undefined || Array.isArray(m.attachments)) &&
    Number.isFinite(m.seq) &&
    typeof m.body === 'string' &&
    typeof m.sender_id === 'string'
  );
}

/**
 * Merges stored messages into the list: one entry per id (a later copy of the same id wins),
 * stored entries in seq order, an optimistic entry dropped once a stored message from the same
 * sender carries its client_id, and the remaining optimistic entries after the stored ones in the
 * order they were written.
 */
export function mergeMessages(current: readonly ChatEntry[], incoming: readonly unknown[]): ChatEntry[] {
  const stored = new Map<string, ChatEntry>();
  for (const e of current) if (e.id !== null) stored.set(e.id, e);
  for (const m of incoming) if (isMessage(m)) stored.set(m.id, storedEntry(m));
  const confirmed = new Set<string>();
  for (const e of stored.values()) confirmed.add(`${e.sender_id}\u0000${e.client_id}`);
  const pending = current.filter(
    (e) => e.id === null && !confirmed.has(`${e.sender_id}\u0000${e.client_id}`),
  );
  const ordered = [...stored.values()].sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  return [...ordered, ...pending];
}

/**
 * The highest seq up to which nothing is missing: from `from` (known complete by an earlier read)
 * on, every following seq is in `entries` up to the answer. Seqs count 1, 2, 3… per session, so a
 * message that arrives past it means one was missed; history is asked from here after a reconnect.
 */
export function seqKnownThrough(entries: readonly ChatEntry[], from = 0): number {
  const seqs = new Set<number>();
  for (const e of entries) if (e.seq !== null && e.seq > from) seqs.add(e.seq);
  let through = from;
  while (seqs.has(through + 1)) through += 1;
  return through;
}

/** Adds a message being sent, or marks an existing (failed) one as sending again. */
export function markSending(entries: readonly ChatEntry[], entry: ChatEntry): ChatEntry[] {
  const at = entries.findIndex((e) => e.id === null && e.client_id === entry.client_id);
  if (at < 0) return [...entries, entry];
  const next = [...entries];
  next[at] = { ...next[at], delivery: 'sending', error: undefined };
  return next;
}

/** Marks an optimistic entry as failed, keeping its body for a retry with the same client_id. */
export function markFailed(entries: readonly ChatEntry[], clientId: string, error: string): ChatEntry[] {
  return entries.map((e) =>
    e.id === null && e.client_id === clientId ? { ...e, delivery: 'failed', error } : e,
  );
}

/** Marks optimistic entries as waiting to be sent again by themselves, with why, for people. */
export function markQueued(entries: readonly ChatEntry[], clientIds: Iterable<string>, reason: string): ChatEntry[] {
  const ids = new Set(clientIds);
  return entries.map((e) =>
    e.id === null && ids.has(e.client_id) ? { ...e, delivery: 'queued', error: reason } : e,
  );
}

/** Whether the server has stored the message this sender wrote under this client_id. */
export function isStored(entries: readonly ChatEntry[], senderId: string, clientId: string): boolean {
  return entries.some((e) => e.id !== null && e.client_id === clientId && e.sender_id === senderId);
}

/** A fresh client_id (letters, digits and dashes, as the server requires). */
export function newClientId(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Sets what is known of the files of an optimistic entry (an upload finished). */
export function setFiles(entries: readonly ChatEntry[], clientId: string, files: readonly LocalFile[]): ChatEntry[] {
  return entries.map((e) => (e.id === null && e.client_id === clientId ? { ...e, files: files.map((f) => ({ ...f })) } : e));
}

/** Drops an optimistic entry (its sending was cancelled). */
export function removePending(entries: readonly ChatEntry[], clientId: string): ChatEntry[] {
  return entries.filter((e) => !(e.id === null && e.client_id === clientId));
}
