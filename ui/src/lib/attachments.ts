// Attachments as the UI sees them: the server's description of a stored file (photo, video
// clip, voice note), the files a person picked and has not sent yet, what each kind is called for
// people ("Photo", "Video", "Voice note"), sizes and durations in words, and what an upload the
// server refused says. The bytes themselves travel through the `Backend`; the server decides
// what a file really is (it sniffs the bytes), so the kind guessed here is only for the preview.

import { BackendError, type Attachment, type AttachmentKind, type Message } from './backend';

export type { Attachment, AttachmentKind, UploadProgress } from './backend';

/** A file picked, pasted, dropped or recorded here, on its way to (or stored by) the server. */
export type LocalFile = {
  /** Stable key for this file while it is on its way. */
  local_id: string;
  name: string;
  type: string;
  size: number;
  kind: AttachmentKind;
  /** Set once the server has stored it: a retry sends the message with it, not the bytes again. */
  attachment?: Attachment;
};

const KINDS: readonly AttachmentKind[] = ['image', 'video', 'audio'];

export function isAttachment(value: unknown): value is Attachment {
  if (typeof value !== 'object' || value === null) return false;
  const a = value as Record<string, unknown>;
  return (
    typeof a.id === 'string' &&
    KINDS.includes(a.kind as AttachmentKind) &&
    typeof a.content_type === 'string' &&
    typeof a.bytes === 'number'
  );
}

/** The attachments a stored message carries (none for a text message or an older server). */
export function attachmentsOf(message: Message): Attachment[] {
  const list = (message as { attachments?: unknown }).attachments;
  return Array.isArray(list) ? list.filter(isAttachment) : [];
}

/** The kind a picked file looks like from its declared type (the server has the last word). */
export function kindOf(type: string, name = ''): AttachmentKind | null {
  const t = type.toLowerCase();
  if (t.startsWith('image/')) return 'image';
  if (t.startsWith('video/')) return 'video';
  if (t.startsWith('audio/')) return 'audio';
  const ext = name.toLowerCase().split('.').pop() ?? '';
  if (['jpg', 'jpeg', 'png', 'webp', 'heic', 'heif'].includes(ext)) return 'image';
  if (['mp4', 'mov', 'webm', 'm4v'].includes(ext)) return 'video';
  if (['m4a', 'aac', 'ogg', 'opus', 'weba'].includes(ext)) return 'audio';
  return null;
}

/** What a kind is called in the chat and in notifications. */
export function kindLabel(kind: AttachmentKind): string {
  switch (kind) {
    case 'image':
      return 'Photo';
    case 'video':
      return 'Video';
    case 'audio':
      return 'Voice note';
  }
}

/** 950 B, 12 KB, 3.4 MB. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '';
  if (bytes < 1000) return `${Math.round(bytes)} B`;
  if (bytes < 1_000_000) return `${Math.round(bytes / 1000)} KB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

/** 0:07, 1:23. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '';
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}

/** "Photo, 1.2 MB", "Voice note, 0:12, 40 KB". */
export function describe(a: Pick<Attachment, 'kind' | 'bytes' | 'duration_ms'>): string {
  const parts = [kindLabel(a.kind)];
  const duration = formatDuration(a.duration_ms);
  if (duration) parts.push(duration);
  parts.push(formatBytes(a.bytes));
  return parts.join(', ');
}

/**
 * Why an upload was refused, for people: the server's own sentence for a file it does not take
 * (415) or one over a limit (413: it names the limit), prefixed with the file's name.
 */
export function uploadRefusal(e: unknown, name: string): string {
  const file = name ? `“${name}”` : 'The file';
  if (e instanceof BackendError) {
    if (e.status === 415 || e.code === 'unsupported_file_type') {
      return `${file} was not sent: ${e.message || 'only photos, videos and voice notes can be sent'}`;
    }
    if (e.status === 413 || e.code === 'file_too_large' || e.code === 'payload_too_large') {
      return `${file} was not sent: ${e.message || 'it is too large'}`;
    }
    return `${file} was not sent: ${e.message}`;
  }
  return `${file} was not sent.`;
}

/** A new local id for a picked file. */
export function newLocalId(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  return `f${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
}

/** The name a recorded voice note gets. */
export function voiceNoteName(type: string, now: Date = new Date()): string {
  const ext = type.includes('mp4') ? 'm4a' : type.includes('ogg') ? 'ogg' : 'webm';
  const stamp = now.toISOString().replace(/[-:]/g, '').slice(0, 15);
  return `voice-note-${stamp}.${ext}`;
}

/** The recording format to ask MediaRecorder for: WebM/Opus, else MP4/AAC (Safari), else its default. */
export function recordingType(isSupported: (type: string) => boolean): string {
  for (const type of ['audio/webm;codecs=opus', 'audio/webm', 'audio/mp4', 'audio/ogg;codecs=opus']) {
    if (isSupported(type)) return type;
  }
  return '';
}
