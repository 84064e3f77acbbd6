import { describe, expect, it } from 'vitest';
import type { Message } from './backend';
import {
  isStored,
  markFailed,
  markQueued,
  markSending,
  mergeMessages,
  newClientId,
  pendingEntry,
  seqKnownThrough,
} from './messages';

const me = { id: 'cust-1', role: 'customer' as const };

function msg(seq: number, extra: Partial<Message> = {}): Message {
  return {
    id: `m${seq}`,
    session_id: 's1',
    seq,
    sender_id: 'mech-1',
    sender_role: 'mechanic',
    body: `message ${seq}`,
    client_id: `c${seq}`,
    created_at: `2026-11-25T10:00:0${seq % 10}Z`,
    ...extra,
  };
}

const seqs = (list: { seq: number | null }[]) => list.map((e) => e.seq);

describe('mergeMessages', () => {
  it('orders by seq whatever the arrival order', () => {
    const list = mergeMessages([], [msg(3), msg(1), msg(2)]);
    expect(seqs(list)).toEqual([1, 2, 3]);
  });

  it('keeps one entry per id when a message arrives twice', () => {
    let list = mergeMessages([], [msg(1), msg(2)]);
    // The realtime insert and the history after a reconnect overlap.
    list = mergeMessages(list, [msg(2), msg(3)]);
    list = mergeMessages(list, [msg(3)]);
    expect(seqs(list)).toEqual([1, 2, 3]);
    expect(list.map((e) => e.key)).toEqual(['m1', 'm2', 'm3']);
  });

  it('fills a gap when history arrives after later realtime inserts', () => {
    let list = mergeMessages([], [msg(1), msg(4)]);
    list = mergeMessages(list, [msg(2), msg(3)]);
    expect(seqs(list)).toEqual([1, 2, 3, 4]);
  });

  it('replaces the optimistic entry by the stored message with the same client_id', () => {
    let list = mergeMessages([], [msg(1)]);
    list = markSending(list, pendingEntry('mine-1', 'hello', me));
    expect(list.map((e) => e.delivery)).toEqual(['sent', 'sending']);
    const stored = msg(2, { sender_id: 'cust-1', sender_role: 'customer', client_id: 'mine-1', body: 'hello' });
    list = mergeMessages(list, [stored]);
    expect(list).toHaveLength(2);
    expect(list[1]).toMatchObject({ id: 'm2', seq: 2, delivery: 'sent', body: 'hello' });
  });

  it('keeps pending messages after the stored ones, in the order they were written', () => {
    let list = markSending([], pendingEntry('a', 'first', me));
    list = markSending(list, pendingEntry('b', 'second', me));
    list = mergeMessages(list, [msg(1), msg(2)]);
    expect(list.map((e) => e.body)).toEqual(['message 1', 'message 2', 'first', 'second']);
  });

  it('only lets the same sender confirm an optimistic entry', () => {
    let list = markSending([], pendingEntry('same-id', 'mine', me));
    list = mergeMessages(list, [msg(1, { client_id: 'same-id' })]);
    expect(list.map((e) => e.body)).toEqual(['message 1', 'mine']);
  });

  it('ignores malformed records', () => {
    const list = mergeMessages([], [null, { id: 'x' }, { ...msg(1), seq: 'one' }, msg(2)]);
    expect(seqs(list)).toEqual([2]);
  });
});

describe('sending and retry', () => {
  it('marks a failure and retries with the same client_id', () => {
    let list = markSending([], pendingEntry('c-9', 'are you there?', me));
    list = markFailed(list, 'c-9', 'No connection');
    expect(list[0]).toMatchObject({ delivery: 'failed', error: 'No connection' });
    list = markSending(list, pendingEntry('c-9', 'are you there?', me));
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ delivery: 'sending', client_id: 'c-9', error: undefined });
  });

  it('marks messages as queued with why, leaving stored and other entries alone', () => {
    let list = mergeMessages([], [msg(1)]);
    list = markSending(list, pendingEntry('q-1', 'one', me));
    list = markSending(list, pendingEntry('q-2', 'two', me));
    list = markQueued(list, ['q-1', 'c1'], 'Waiting for connection');
    expect(list.map((e) => [e.client_id, e.delivery, e.error])).toEqual([
      ['c1', 'sent', undefined],
      ['q-1', 'queued', 'Waiting for connection'],
      ['q-2', 'sending', undefined],
    ]);
  });

  it('knows a message is stored only from the same sender', () => {
    const list = mergeMessages([], [msg(1, { client_id: 'x', sender_id: 'cust-1' })]);
    expect(isStored(list, 'cust-1', 'x')).toBe(true);
    expect(isStored(list, 'mech-1', 'x')).toBe(false);
    expect(isStored(markSending(list, pendingEntry('y', 'y', me)), 'cust-1', 'y')).toBe(false);
  });

  it('knows up to which seq nothing is missing', () => {
    expect(seqKnownThrough([])).toBe(0);
    const list = markSending(mergeMessages([], [msg(1), msg(2), msg(4), msg(5)]), pendingEntry('p', 'x', me));
    expect(seqKnownThrough(list)).toBe(2);
    // Seq 3 read as gone by an earlier catch-up that reached 3: complete through 5.
    expect(seqKnownThrough(list, 3)).toBe(5);
    expect(seqKnownThrough(list, 9)).toBe(9);
    expect(seqKnownThrough(mergeMessages([], [msg(5), msg(7)]))).toBe(0);
  });

  it('makes client ids the server accepts', () => {
    const id = newClientId();
    expect(id).toMatch(/^[A-Za-z0-9_.:-]{1,64}$/);
    expect(newClientId()).not.toBe(id);
  });
});
