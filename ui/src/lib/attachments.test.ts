import { describe as group, expect, it } from 'vitest';
import {
  attachmentsOf,
  describe,
  formatBytes,
  formatDuration,
  kindLabel,
  kindOf,
  recordingType,
  uploadRefusal,
  voiceNoteName,
} from './attachments';
import { BackendError, type Message } from './backend';
import { transcriptText } from './transcript';
import { storedEntry } from './messages';

group('attachments', () => {
  it('guesses the kind from the declared type, else the name', () => {
    expect(kindOf('image/jpeg')).toBe('image');
    expect(kindOf('video/quicktime')).toBe('video');
    expect(kindOf('audio/webm;codecs=opus')).toBe('audio');
    expect(kindOf('', 'IMG_0001.HEIC')).toBe('image');
    expect(kindOf('application/pdf', 'manual.pdf')).toBeNull();
  });

  it('names each kind as the chat and notifications do', () => {
    expect(['image', 'video', 'audio'].map((k) => kindLabel(k as 'image'))).toEqual(['Photo', 'Video', 'Voice note']);
  });

  it('says sizes and durations in words', () => {
    expect(formatBytes(950)).toBe('950 B');
    expect(formatBytes(12_345)).toBe('12 KB');
    expect(formatBytes(3_400_000)).toBe('3.4 MB');
    expect(formatDuration(7_400)).toBe('0:07');
    expect(formatDuration(83_000)).toBe('1:23');
    expect(describe({ kind: 'audio', bytes: 40_000, duration_ms: 12_000 })).toBe('Voice note, 0:12, 40 KB');
  });

  it("shows the server's reason for a refused file", () => {
    const e = new BackendError(415, 'unsupported_file_type', 'That file is not a photo, video or voice note');
    expect(uploadRefusal(e, 'x.jpg')).toBe('“x.jpg” was not sent: That file is not a photo, video or voice note');
  });

  it('records WebM/Opus where it can, else what the browser has', () => {
    expect(recordingType(() => true)).toBe('audio/webm;codecs=opus');
    expect(recordingType((t) => t === 'audio/mp4')).toBe('audio/mp4');
    expect(recordingType(() => false)).toBe('');
    expect(voiceNoteName('audio/webm', new Date('2026-12-07T08:30:05Z'))).toBe('voice-note-20261207T083005.webm');
  });

  it('reads only well-formed attachments from a message, and lists them in the transcript', () => {
    const m = {
      id: 'm1',
      session_id: 's1',
      seq: 1,
      sender_id: 'c',
      sender_role: 'customer',
      body: '',
      client_id: 'k',
      created_at: '2026-12-07T08:30:00Z',
      attachments: [{ id: 'a1', kind: 'image', content_type: 'image/jpeg', bytes: 2_000_000 }, { id: 2 }],
    } as unknown as Message;
    expect(attachmentsOf(m).map((a) => a.id)).toEqual(['a1']);
    const session = {
      id: 's1',
      vehicle: { year: 2018, make: 'Honda', model: 'Civic', vin: null, mileage: null },
      customer_name: 'Dana',
      mechanic_name: 'Sam',
      started_at: null,
      ended_at: null,
      concern: 'Leak',
    } as never;
    expect(transcriptText(session, [storedEntry(m)])).toContain('[Photo, 2.0 MB, attachment a1]');
  });
});
