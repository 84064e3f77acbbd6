// The web backend's upload: multipart with the part `file`, progress from XMLHttpRequest, the
// server's refusals as the UI's error (with its message), a lost connection as `network`, and
// Cancel as an AbortError that is not a failure.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BackendError } from './index';
import { WebBackend } from './web';

/** A stand-in XMLHttpRequest the test answers by hand. */
class FakeXhr {
  static last: FakeXhr | null = null;
  method = '';
  url = '';
  withCredentials = false;
  headers: Record<string, string> = {};
  body: unknown = null;
  status = 0;
  responseText = '';
  aborted = false;
  upload: { onprogress: ((e: { loaded: number; total: number; lengthComputable: boolean }) => void) | null } = {
    onprogress: null,
  };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;

  constructor() {
    FakeXhr.last = this;
  }
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(name: string, value: string) {
    this.headers[name] = value;
  }
  send(body: unknown) {
    this.body = body;
  }
  abort() {
    this.aborted = true;
    this.onabort?.();
  }
  answer(status: number, body: unknown) {
    this.status = status;
    this.responseText = JSON.stringify(body);
    this.onload?.();
  }
}

describe('WebBackend.uploadAttachment', () => {
  const file = new File([new Uint8Array(1000)], 'dash.jpg', { type: 'image/jpeg' });
  let backend: WebBackend;

  beforeEach(() => {
    vi.stubGlobal('XMLHttpRequest', FakeXhr);
    backend = new WebBackend();
  });

  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('posts the file as the multipart part `file`, reports progress and answers the stored attachment', async () => {
    const seen: number[] = [];
    const done = backend.uploadAttachment('s 1', file, 'dash.jpg', { progress: (p) => seen.push(p.sent) });
    const xhr = FakeXhr.last!;
    expect(xhr.method).toBe('POST');
    expect(xhr.url).toBe('/api/sessions/s%201/attachments');
    expect(xhr.withCredentials).toBe(true);
    const form = xhr.body as FormData;
    expect((form.get('file') as File).name).toBe('dash.jpg');
    xhr.upload.onprogress!({ loaded: 400, total: 1000, lengthComputable: true });
    xhr.upload.onprogress!({ loaded: 1000, total: 1000, lengthComputable: true });
    xhr.answer(201, { id: 'a1', kind: 'image', content_type: 'image/jpeg', bytes: 900 });
    await expect(done).resolves.toMatchObject({ id: 'a1', kind: 'image' });
    expect(seen).toEqual([400, 1000]);
  });

  it("turns the server's refusals into its code and message", async () => {
    const refused = backend.uploadAttachment('s1', file, 'dash.jpg');
    FakeXhr.last!.answer(415, { error: 'unsupported_file_type', message: 'Only photos, videos and voice notes' });
    const e = await refused.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BackendError);
    expect(e).toMatchObject({ status: 415, code: 'unsupported_file_type', message: 'Only photos, videos and voice notes' });

    const tooBig = backend.uploadAttachment('s1', file, 'dash.jpg');
    FakeXhr.last!.answer(413, { error: 'file_too_large', message: 'Photos are limited to 25 MB' });
    await expect(tooBig).rejects.toMatchObject({ status: 413, message: 'Photos are limited to 25 MB' });
  });

  it('a lost connection is a network failure worth retrying; Cancel is an AbortError', async () => {
    const lost = backend.uploadAttachment('s1', file, 'dash.jpg');
    FakeXhr.last!.onerror!();
    await expect(lost).rejects.toMatchObject({ status: 0, code: 'network' });

    const abort = new AbortController();
    const cancelled = backend.uploadAttachment('s1', file, 'dash.jpg', { signal: abort.signal });
    const xhr = FakeXhr.last!;
    abort.abort();
    expect(xhr.aborted).toBe(true);
    await expect(cancelled).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('sends attachment ids with a message only when there are some', async () => {
    const fetch = vi.fn(async () => new Response(JSON.stringify({ id: 'm1' }), { status: 201 }));
    vi.stubGlobal('fetch', fetch);
    await backend.sendMessage('s1', '', 'c1', ['a1', 'a2']);
    await backend.sendMessage('s1', 'hi', 'c2');
    const bodies = fetch.mock.calls.map((c) => JSON.parse((c as unknown as [string, RequestInit])[1].body as string));
    expect(bodies).toEqual([
      { body: '', client_id: 'c1', attachment_ids: ['a1', 'a2'] },
      { body: 'hi', client_id: 'c2' },
    ]);
  });
});
