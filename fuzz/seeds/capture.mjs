// Captures the frames the real @supabase/realtime-js sends and writes them as fuzz seed corpora.
//
// A small `ws` server on 127.0.0.1 plays a Supabase-like Realtime server (join replies that echo
// the postgres_changes bindings with an id, presence_state after a presence join, heartbeat,
// presence and acked-broadcast replies, phx_close after a leave) and logs every client frame.
// The unmodified client then runs the same session once with vsn 2.0.0 (JSON arrays, binary
// kind-3 broadcasts) and once with vsn 1.0.0 (JSON objects). What it sent is written as:
//   <out>/frame_v2/      text frames of the 2.0.0 session
//   <out>/frame_v1/      text frames of the 1.0.0 session
//   <out>/binary_frame/  binary frames (kind 3) of the 2.0.0 session
//   <out>/join_config/   the payloads of every phx_join
//   <out>/pg_filter/     the postgres_changes filter strings of every phx_join
//
// Usage: npm ci && node capture.mjs ../corpus   (Node 20+, no network beyond 127.0.0.1)

import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RealtimeClient, postgresChangesFilter as f } from '@supabase/realtime-js';
import WebSocket, { WebSocketServer } from 'ws';

const out = process.argv[2] ?? '../corpus';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the mock server -------------------------------------------------------------------------

/** Every frame a client sent: {vsn, binary, data: string | Buffer}. */
const captured = [];

function startServer() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (ws, req) => {
    const vsn = new URL(req.url, 'http://x').searchParams.get('vsn') ?? '1.0.0';
    const v2 = vsn === '2.0.0';
    const acks = new Map(); // topic -> broadcast.ack
    const send = (joinRef, ref, topic, event, payload) =>
      ws.send(
        v2
          ? JSON.stringify([joinRef, ref, topic, event, payload])
          : JSON.stringify({ topic, event, payload, ref }),
      );
    ws.on('message', (data, isBinary) => {
      captured.push({ vsn, binary: isBinary, data: isBinary ? Buffer.from(data) : data.toString() });
      if (isBinary) {
        // kind 3: 03 join_ref_len ref_len topic_len event_len meta_len enc ...
        const b = Buffer.from(data);
        const [jl, rl, tl] = [b[1], b[2], b[3]];
        const joinRef = b.subarray(7, 7 + jl).toString();
        const ref = b.subarray(7 + jl, 7 + jl + rl).toString();
        const topic = b.subarray(7 + jl + rl, 7 + jl + rl + tl).toString();
        const event = b.subarray(7 + jl + rl + tl, 7 + jl + rl + tl + b[4]).toString();
        if (acks.get(topic)) send(joinRef, ref, topic, 'phx_reply', { status: 'ok', response: {} });
        // Makes the client rejoin, so the join after setAuth() (with `version`) is captured too.
        if (event === 'crash-me') send(joinRef, joinRef, topic, 'phx_error', {});
        return;
      }
      const msg = JSON.parse(data.toString());
      const [joinRef, ref, topic, event, payload] = v2
        ? msg
        : [msg.join_ref ?? null, msg.ref, msg.topic, msg.event, msg.payload];
      const ok = (response = {}) =>
        send(joinRef, ref, topic, 'phx_reply', { status: 'ok', response });
      switch (event) {
        case 'heartbeat':
          ok();
          break;
        case 'phx_join': {
          const config = payload.config ?? {};
          acks.set(topic, config.broadcast?.ack === true);
          const pg = (config.postgres_changes ?? []).map((b, i) => ({ ...b, id: 1000 + i }));
          ok({ postgres_changes: pg });
          if (config.presence?.enabled) send(joinRef, null, topic, 'presence_state', {});
          break;
        }
        case 'presence':
          ok();
          break;
        case 'broadcast':
          if (acks.get(topic)) ok();
          if (payload.event === 'crash-me') send(joinRef, joinRef, topic, 'phx_error', {});
          break;
        case 'phx_leave':
          ok();
          send(joinRef, joinRef, topic, 'phx_close', {});
          break;
        default:
          break; // access_token and the like get no reply, as on Supabase
      }
    });
  });
  return new Promise((resolve) => wss.on('listening', () => resolve(wss)));
}

// ---- the client session ----------------------------------------------------------------------

const SESSION = '7b0e6a52-1f7e-4a43-9a0e-2d3c2f1b9c01';

function subscribed(channel) {
  return new Promise((resolve, reject) => {
    channel.subscribe((status, err) => {
      if (status === 'SUBSCRIBED') resolve();
      else if (status !== 'CLOSED') reject(new Error(`${channel.topic}: ${status} ${err ?? ''}`));
    });
  });
}

async function session(port, vsn) {
  const client = new RealtimeClient(`ws://127.0.0.1:${port}/realtime/v1`, {
    transport: WebSocket,
    params: { apikey: 'anon-key' },
    vsn,
    logLevel: 'info',
    heartbeatIntervalMs: 400,
  });
  client.setAuth('tok-1');

  // What Wrenchline's own UI joins: the session chat with its row changes, its presence topic,
  // and the mechanics' request feed.
  const chat = client.channel(`chat:session-${SESSION}`, {
    config: { broadcast: { self: true, ack: true }, private: true },
  });
  chat
    .on('postgres_changes', { event: '*', schema: 'public', table: 'sessions', filter: `id=eq.${SESSION}` }, () => {})
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'messages', filter: `session_id=eq.${SESSION}` }, () => {})
    .on('broadcast', { event: 'typing' }, () => {});
  const presence = client.channel(`chat:session-${SESSION}:presence`, {
    config: { presence: { key: 'mechanic-42' } },
  });
  presence.on('presence', { event: 'sync' }, () => {});
  const feed = client.channel('requests');
  feed.on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'requests', filter: 'status=eq.pending' }, () => {});

  // The protocol reference's example channel and a few other PostgREST filters realtime-js allows.
  const room = client.channel('room1', {
    config: { broadcast: { self: true, ack: true }, presence: { key: 'me' } },
  });
  room
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'todos', filter: 'id=eq.5' }, () => {})
    .on('postgres_changes', { event: 'DELETE', schema: 'public', table: 'todos', filter: 'id=in.(1,2,3)' }, () => {})
    .on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'todos', filter: 'price=gte.10' }, () => {})
    .on('postgres_changes', { event: '*', schema: 'public', table: 'todos', filter: 'name=neq.Zoë' }, () => {})
    .on('postgres_changes', { event: '*', schema: 'audit' }, () => {})
    .on('presence', { event: 'join' }, () => {});
  const minimal = client.channel('lobby');

  // Every operator realtime-js' filter builder knows, with its quoting; Wrenchline accepts only
  // `eq`, the rest are seeds for the refusal paths.
  const filters = client.channel('filters', {
    config: { broadcast: { self: true }, presence: { enabled: true }, postgres_changes_options: { wait: true, timeout: 3000 } },
  });
  for (const [table, filter] of [
    ['a', f().eq('status', 'in_progress')],
    ['b', f().eq('title', 'a, b (c)')],
    ['c', f().eq('note', ' padded ')],
    ['d', f().eq('quote', 'say "hi" \\ bye')],
    ['e', f().neq('id', 0).lt('seq', 100)],
    ['f', f().gt('created_at', '2025-01-01T00:00:00Z').lte('seq', 9)],
    ['g', f().in('status', ['pending', 'accepted', 'in,progress'])],
    ['h', f().like('name', 'Jo%')],
    ['i', f().ilike('email', '%@EXAMPLE.com')],
    ['j', f().match('plate', '^[A-Z]{2}[0-9]+$')],
    ['k', f().imatch('vin', '^1hg')],
    ['l', f().is('ended_at', null)],
    ['m', f().isDistinct('mechanic_id', null)],
    ['n', f().not('status', 'eq', 'ended')],
    ['o', f().not('kind', 'in', ['a', 'b'])],
    ['p', f().eq('amount_cents', 1250).eq('currency', 'EUR')],
    ['q', f().eq('emoji', '🚗')],
  ]) {
    filters.on('postgres_changes', { event: '*', schema: 'public', table, filter }, () => {});
  }
  filters.on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'sessions', select: ['id', 'status'] }, () => {});
  // A private channel asking for replayed broadcasts.
  const replay = client.channel(`chat:session-${SESSION}:replay`, {
    config: { private: true, broadcast: { self: false, ack: true, replay: { since: 1735689600000, limit: 25 } } },
  });

  const channels = [chat, presence, feed, room, minimal, filters, replay];
  await Promise.all(channels.map(subscribed));

  await presence.track({ name: 'Dana', role: 'mechanic', online_at: '2025-01-01T00:00:00Z' });
  await room.track({ name: 'me!' });
  await room.track({ name: 'me!', status: 'typing…' }); // an update
  await chat.send({ type: 'broadcast', event: 'typing', payload: { typing: true, by: 'mechanic' } });
  await chat.send({ type: 'broadcast', event: 'note', payload: { text: 'kept' }, persist: true });
  await replay.send({ type: 'broadcast', event: 'note', payload: { text: 'kept' }, persist: { ttl: 60 } });
  await room.send({ type: 'broadcast', event: 'hi', payload: { a: 1 } });
  await room.send({ type: 'broadcast', event: 'hi', payload: { text: 'héllo ✓', n: [1, 2.5, -3e-7, null], ok: false } });
  await room.send({ type: 'broadcast', event: 'bytes', payload: new Uint8Array([1, 2, 3, 0, 255]).buffer });
  await room.send({ type: 'broadcast', event: 'empty' });
  await minimal.send({ type: 'broadcast', event: 'ping', payload: {} });
  await minimal.send({ type: 'broadcast', event: 'nested', payload: { a: { b: { c: [[], {}, ''] } } } });
  client.setAuth('tok-2'); // pushes access_token on every joined channel
  await room.send({ type: 'broadcast', event: 'crash-me', payload: {} }); // → phx_error → rejoin
  await sleep(1600); // the rejoin after ~1 s, and heartbeats every 400 ms
  await room.untrack();
  await presence.untrack();
  for (const ch of channels) await ch.unsubscribe();
  await sleep(100);
  client.disconnect();
  await sleep(100);

  // A client with an accessToken callback: its first join carries no access_token (see
  // docs/realtime-protocol.md §5.1).
  const cb = new RealtimeClient(`ws://127.0.0.1:${port}/realtime/v1`, {
    transport: WebSocket,
    params: { apikey: 'anon-key' },
    vsn,
    accessToken: async () => 'cb-token-const',
  });
  const requests = cb.channel('requests', { config: { private: true } });
  requests.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'requests' }, () => {});
  await subscribed(requests);
  await requests.unsubscribe();
  cb.disconnect();
  await sleep(100);
}

// ---- writing the corpora ---------------------------------------------------------------------

function writeCorpus(target, items) {
  const dir = join(out, target);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) rmSync(join(dir, f));
  const seen = new Set();
  let n = 0;
  for (const { name, data } of items) {
    const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
    const hash = createHash('sha1').update(bytes).digest('hex');
    if (seen.has(hash)) continue;
    seen.add(hash);
    n += 1;
    const slug = name.replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 40);
    writeFileSync(join(dir, `${String(n).padStart(2, '0')}-${slug}-${hash.slice(0, 8)}`), bytes);
  }
  console.log(`${target}: ${n} files`);
}

function eventOf(f) {
  const m = JSON.parse(f.data);
  return f.vsn === '2.0.0' ? [m[3], m[4]] : [m.event, m.payload];
}

const wss = await startServer();
const port = wss.address().port;
for (const vsn of ['2.0.0', '1.0.0']) await session(port, vsn);
wss.close();

const text = captured.filter((f) => !f.binary);
const named = (f) => {
  const [event, payload] = eventOf(f);
  return { name: payload?.event ? `${event}-${payload.event}` : event, data: f.data };
};
writeCorpus('frame_v2', text.filter((f) => f.vsn === '2.0.0').map(named));
writeCorpus('frame_v1', text.filter((f) => f.vsn === '1.0.0').map(named));
writeCorpus(
  'binary_frame',
  captured.filter((f) => f.binary).map((f) => {
    const event = f.data.subarray(7 + f.data[1] + f.data[2] + f.data[3]).subarray(0, f.data[4]);
    return { name: `kind${f.data[0]}-${event}`, data: f.data };
  }),
);
const joins = text.map(eventOf).filter(([event]) => event === 'phx_join').map(([, p]) => p);
writeCorpus('join_config', joins.map((p) => ({ name: 'phx_join', data: JSON.stringify(p) })));
writeCorpus(
  'pg_filter',
  joins
    .flatMap((p) => p.config?.postgres_changes ?? [])
    .filter((b) => typeof b.filter === 'string')
    .map((b) => ({ name: b.filter.split('=')[0], data: b.filter })),
);
