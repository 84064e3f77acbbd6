// Messages with files through the room's outbox: upload first (with progress), then the post
// with the attachment ids; a dropped network redoes the upload or, when it was stored already,
// only the post, and the message is stored once under the client_id it was written with; a
// refused file says the server's reason; Cancel stops an upload and nothing is posted; a reload
// keeps what was uploaded.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Attachment } from '../attachments';
import {
  BackendError,
  type Backend,
  type Message,
  type Session,
  type SessionHandlers,
  type UploadOptions,
  type User,
} from '../backend';
import { storageOutbox, type KeyValueStorage } from './outbox';
import { ChatRoom } from './room.svelte';

const customer: User = { id: 'cust-1', role: 'customer', name: 'Dana', email: 'd@example.com' };

const live: Session = {
  id: 's1',
  status: 'live',
  plan: 'trial',
  customer_id: 'cust-1',
  customer_name: 'Dana',
  mechanic_id: 'mech-1',
  mechanic_name: 'Sam',
  vehicle: { year: 2018, make: 'Honda', model: 'Civic', vin: null, mileage: null },
  concern: 'Oil under the car',
  created_at: '2026-11-25T10:00:00Z',
  waiver_signed_at: '2026-11-25T10:01:00Z',
  accepted_at: '2026-11-25T10:02:00Z',
  started_at: '2026-11-25T10:03:00Z',
  ends_at: new Date(Date.now() + 600_000).toISOString(),
  ended_at: null,
  end_reason: null,
};

type Post = { body: string; clientId: string; ids: string[] };

/** The server side, played by hand: uploads and posts can be made to fail or to wait. */
class MediaBackend implements Backend {
  handlers: SessionHandlers | null = null;
  stored: Message[] = [];
  attachments: Attachment[] = [];
  uploads: string[] = [];
  posts: Post[] = [];
  /** The next uploads fail with these errors, one each. */
  uploadErrors: unknown[] = [];
  /** The next posts fail with these errors, one each. */
  postErrors: unknown[] = [];
  /** Uploads wait for `finishUpload()` (or their signal). */
  holdUploads = false;
  private heldUpload: (() => void) | null = null;

  plans = async () => [];
  waiver = async () => ({ version: '1', text: '' });
  submitIntake = () => Promise.reject(new Error('unused'));
  signWaiver = () => Promise.reject(new Error('unused'));
  resumeLink = () => Promise.reject(new Error('unused'));
  checkResume = () => Promise.reject(new Error('unused'));
  resume = () => Promise.reject(new Error('unused'));
  async session() {
    return structuredClone(live);
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
  async startSession() {
    return live;
  }
  async endSession() {
    return live;
  }
  subscribeSession(_id: string, handlers: SessionHandlers) {
    this.handlers = handlers;
    return { typing: () => undefined, close: () => undefined };
  }
  mediaUrl(id: string, variant: 'file' | 'thumbnail' = 'file') {
    return `/api/attachments/${id}${variant === 'thumbnail' ? '/thumbnail' : ''}`;
  }

  async uploadAttachment(_id: string, file: Blob, name: string, options: UploadOptions = {}): Promise<Attachment> {
    this.uploads.push(name);
    options.progress?.({ sent: Math.floor(file.size / 2), total: file.size });
    if (this.holdUploads) {
      await new Promise<void>((resolve, reject) => {
        this.heldUpload = resolve;
        options.signal?.addEventListener('abort', () => reject(new DOMException('cancelled', 'AbortError')));
      });
    }
    const error = this.uploadErrors.shift();
    if (error) throw error;
    options.progress?.({ sent: file.size, total: file.size });
    const stored: Attachment = {
      id: `att-${this.attachments.length + 1}`,
      kind: file.type.startsWith('audio/') ? 'audio' : 'image',
      content_type: file.type,
      bytes: file.size,
      has_thumbnail: file.type.startsWith('image/'),
      created_at: new Date().toISOString(),
    };
    this.attachments.push(stored);
    return stored;
  }

  finishUpload() {
    this.holdUploads = false;
    this.heldUpload?.();
    this.heldUpload = null;
  }

  async sendMessage(_id: string, body: string, clientId: string, ids: readonly string[] = []): Promise<Message> {
    this.posts.push({ body, clientId, ids: [...ids] });
    await Promise.resolve();
    const error = this.postErrors.shift();
    if (error) throw error;
    let m = this.stored.find((s) => s.client_id === clientId);
    if (!m) {
      m = {
        id: `m${this.stored.length + 1}`,
        session_id: 's1',
        seq: this.stored.length + 1,
        sender_id: 'cust-1',
        sender_role: 'customer',
        body,
        client_id: clientId,
        created_at: new Date().toISOString(),
        attachments: ids.map((id) => this.attachments.find((a) => a.id === id)!),
      } as Message;
      this.stored.push(m);
    }
    return m;
  }
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
};

const photo = (name = 'leak.jpg') => new File([new Uint8Array(2048)], name, { type: 'image/jpeg' });
const offline = () => new BackendError(0, 'network', 'offline');

class MemoryStorage implements KeyValueStorage {
  items = new Map<string, string>();
  getItem = (k: string) => this.items.get(k) ?? null;
  setItem = (k: string, v: string) => void this.items.set(k, v);
  removeItem = (k: string) => void this.items.delete(k);
}

describe('a message with files', () => {
  let backend: MediaBackend;
  let room: ChatRoom;

  beforeEach(async () => {
    backend = new MediaBackend();
    room = new ChatRoom(backend, 's1');
    await room.start();
  });

  afterEach(() => room.stop());

  it('uploads the file, then posts the message with its id, and shows the stored attachment', async () => {
    expect(room.send('', [photo()])).toBe(true);
    await settle();
    expect(backend.uploads).toEqual(['leak.jpg']);
    expect(backend.posts).toHaveLength(1);
    expect(backend.posts[0].ids).toEqual(['att-1']);
    const entry = room.entries[0];
    expect(entry.id).toBe('m1');
    expect(entry.attachments.map((a) => a.kind)).toEqual(['image']);
    expect(entry.files).toEqual([]);
  });

  it('refuses an empty message without files', () => {
    expect(room.send('   ', [])).toBe(false);
    expect(backend.posts).toHaveLength(0);
  });

  it('shows upload progress while the file is on its way', async () => {
    backend.holdUploads = true;
    room.send('the leak', [photo()]);
    await settle();
    const [local] = room.entries[0].files;
    expect(room.progress[local.local_id]).toEqual({ sent: 1024, total: 2048 });
    expect(room.entries[0].delivery).toBe('sending');
    backend.finishUpload();
    await settle();
    expect(room.entries[0].id).toBe('m1');
  });

  it('redoes an upload the network cut, and stores the message once under its client_id', async () => {
    backend.uploadErrors.push(offline());
    room.send('under the engine', [photo()]);
    await settle();
    expect(room.entries[0].delivery).toBe('queued');
    expect(backend.posts).toHaveLength(0);
    const clientId = room.entries[0].client_id;
    backend.handlers!.subscribed!();
    await settle();
    expect(backend.uploads).toEqual(['leak.jpg', 'leak.jpg']);
    expect(backend.posts.map((p) => p.clientId)).toEqual([clientId]);
    expect(backend.stored).toHaveLength(1);
    expect(room.entries[0].attachments).toHaveLength(1);
  });

  it('does not upload a stored file again when only the post failed', async () => {
    backend.postErrors.push(offline());
    room.send('', [photo('a.jpg'), photo('b.jpg')]);
    await settle();
    expect(room.entries[0].delivery).toBe('queued');
    expect(room.entries[0].files.every((f) => f.attachment)).toBe(true);
    backend.handlers!.subscribed!();
    await settle();
    expect(backend.uploads).toEqual(['a.jpg', 'b.jpg']);
    expect(backend.posts).toHaveLength(2);
    expect(backend.posts[0].clientId).toBe(backend.posts[1].clientId);
    expect(backend.posts[1].ids).toEqual(['att-1', 'att-2']);
    expect(backend.stored).toHaveLength(1);
  });

  it('says what the server said about a file it refuses, and posts nothing', async () => {
    backend.uploadErrors.push(
      new BackendError(415, 'unsupported_file_type', 'Only photos (JPEG, PNG, WebP), video clips and voice notes can be sent'),
    );
    room.send('', [photo('notes.jpg')]);
    await settle();
    const entry = room.entries[0];
    expect(entry.delivery).toBe('failed');
    expect(entry.error).toContain('“notes.jpg” was not sent');
    expect(entry.error).toContain('Only photos (JPEG, PNG, WebP)');
    expect(backend.posts).toHaveLength(0);
    // Remove takes it away for good.
    room.cancel(entry.client_id);
    expect(room.entries).toHaveLength(0);
  });

  it('names the limit of a file over it (413)', async () => {
    backend.uploadErrors.push(new BackendError(413, 'file_too_large', 'Photos are limited to 25 MB'));
    room.send('', [photo('huge.jpg')]);
    await settle();
    expect(room.entries[0].error).toBe('“huge.jpg” was not sent: Photos are limited to 25 MB');
  });

  it('cancels an upload under way: it stops, and the message is never posted', async () => {
    backend.holdUploads = true;
    room.send('', [photo()]);
    await settle();
    const clientId = room.entries[0].client_id;
    expect(room.canCancel(clientId)).toBe(true);
    room.cancel(clientId);
    await settle();
    expect(room.entries).toHaveLength(0);
    expect(backend.posts).toHaveLength(0);
    // The queue goes on with the next message.
    room.send('never mind');
    await settle();
    expect(backend.posts.map((p) => p.body)).toEqual(['never mind']);
  });

  it('sends messages in the order written: text typed during an upload waits behind it', async () => {
    backend.holdUploads = true;
    room.send('look', [photo()]);
    room.send('see?');
    await settle();
    expect(backend.posts).toHaveLength(0);
    backend.finishUpload();
    await settle();
    expect(backend.posts.map((p) => p.body)).toEqual(['look', 'see?']);
  });
});

describe('a message with files across a reload', () => {
  it('keeps what was uploaded, and posts it after the reload without uploading again', async () => {
    const storage = new MemoryStorage();
    const backend = new MediaBackend();
    backend.postErrors.push(offline());
    const first = new ChatRoom(backend, 's1', storageOutbox(storage));
    await first.start();
    first.send('the dash', [photo()]);
    await settle();
    first.stop();
    expect(backend.uploads).toHaveLength(1);

    const second = new ChatRoom(backend, 's1', storageOutbox(storage));
    await second.start();
    await settle();
    expect(backend.uploads).toHaveLength(1);
    expect(backend.stored).toHaveLength(1);
    expect(backend.stored[0].body).toBe('the dash');
    expect(second.entries[0].attachments).toHaveLength(1);
    second.stop();
  });

  it('says a file whose bytes were lost in the reload must be attached again', async () => {
    const storage = new MemoryStorage();
    const backend = new MediaBackend();
    backend.uploadErrors.push(offline());
    const first = new ChatRoom(backend, 's1', storageOutbox(storage));
    await first.start();
    first.send('', [photo('gone.jpg')]);
    await settle();
    first.stop();

    const second = new ChatRoom(backend, 's1', storageOutbox(storage));
    await second.start();
    await settle();
    expect(second.entries[0].delivery).toBe('failed');
    expect(second.entries[0].error).toContain('“gone.jpg” was not uploaded before the page was reloaded');
    expect(backend.posts).toHaveLength(0);
    second.stop();
  });
});
