#!/usr/bin/env node
// A stand-in for crates/client's `mechanic` example, speaking the same contract, so the browser
// suite can run before (or beside) the Rust client: selected with WRENCHLINE_MECHANIC=node.
//
//   node mechanic-standin.mjs --server http://ADDR --email E --password P
//
// stdin, one command a line:  accept <id> | join <id> | say <id> <text> | leave <id> | end <id>
// stdout, one JSON object a line:
//   {"event":"ready"}
//   {"event":"accepted","session":{…}} | {"event":"error","code":…,"message":…}
//   {"event":"joined","session_id":…}
//   {"event":"presence","customer_present":bool}
//   {"event":"session","status":…}
//   {"event":"message","body":…,"sender_role":…}
// It signs in over HTTP and joins realtime with the unmodified @supabase/realtime-js (over `ws`,
// since Node 20 has no global WebSocket), tracking presence as the mechanic.

import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { RealtimeClient } from '@supabase/realtime-js';

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= process.argv.length) {
    process.stderr.write(`usage: mechanic-standin.mjs --server URL --email E --password P (missing --${name})\n`);
    process.exit(2);
  }
  return process.argv[i + 1];
}

const server = arg('server').replace(/\/+$/, '');
const email = arg('email');
const password = arg('password');

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

let auth = null; // {access_token, refresh_token, expires_in, user}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (auth) headers.authorization = `Bearer ${auth.access_token}`;
  const res = await fetch(server + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = new Error(json?.message ?? `HTTP ${res.status}`);
    err.code = json?.error ?? `http_${res.status}`;
    throw err;
  }
  return json;
}

async function refresh() {
  auth = await api('POST', '/api/auth/refresh', { refresh_token: auth.refresh_token });
  await realtime.setAuth(auth.access_token);
  scheduleRefresh();
}

let refreshTimer;
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const ms = Math.max(5000, (auth.expires_in - 60) * 1000);
  refreshTimer = setTimeout(() => refresh().catch((e) => emit({ event: 'error', code: e.code ?? 'refresh_failed', message: e.message })), ms);
  refreshTimer.unref();
}

auth = await api('POST', '/api/auth/login', { email, password });
const realtime = new RealtimeClient(server.replace(/^http/, 'ws') + '/realtime/v1', {
  transport: WebSocket,
  params: { apikey: auth.access_token },
});
await realtime.setAuth(auth.access_token);
scheduleRefresh();
emit({ event: 'ready' });

/** session id → {presence, chat, customerId, lastCustomerPresent} */
const joined = new Map();

function customerPresent(state, customerId) {
  // By payload user_id, across every connection key: never by key.
  return Object.values(state).some(
    (entries) => Array.isArray(entries) && entries.some((e) => e && e.user_id === customerId),
  );
}

async function join(id) {
  if (joined.has(id)) {
    emit({ event: 'joined', session_id: id });
    return;
  }
  const session = await api('GET', `/api/sessions/${id}`);
  const entry = { customerId: session.customer_id, lastCustomerPresent: null, presence: null, chat: null };
  joined.set(id, entry);
  emit({ event: 'session', status: session.status });

  const presence = realtime.channel(`chat:session-${id}:presence`);
  presence.on('presence', { event: 'sync' }, () => {
    const present = customerPresent(presence.presenceState(), entry.customerId);
    if (present !== entry.lastCustomerPresent) {
      entry.lastCustomerPresent = present;
      emit({ event: 'presence', customer_present: present });
    }
  });
  const chat = realtime.channel(`chat:session-${id}`);
  chat.on('postgres_changes', { event: '*', schema: 'public', table: 'sessions', filter: `id=eq.${id}` }, (change) => {
    emit({ event: 'session', status: change.new?.status });
  });
  chat.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'messages', filter: `session_id=eq.${id}` }, (change) => {
    emit({ event: 'message', body: change.new?.body, sender_role: change.new?.sender_role, message: change.new });
  });
  entry.presence = presence;
  entry.chat = chat;

  const subscribed = (channel, onEvery) =>
    new Promise((resolve, reject) => {
      let first = true;
      channel.subscribe((status, err) => {
        if (status === 'SUBSCRIBED') {
          onEvery?.();
          if (first) {
            first = false;
            resolve();
          }
        } else if (first && (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT' || status === 'CLOSED')) {
          first = false;
          reject(Object.assign(new Error(err?.message ?? status), { code: 'join_failed' }));
        }
      });
    });
  await Promise.all([
    subscribed(chat),
    subscribed(presence, () =>
      presence.track({ user_id: auth.user.id, role: 'mechanic', online_at: new Date().toISOString() }),
    ),
  ]);
  emit({ event: 'joined', session_id: id });
}

async function leave(id) {
  const entry = joined.get(id);
  if (!entry) return;
  joined.delete(id);
  await Promise.all([realtime.removeChannel(entry.presence), realtime.removeChannel(entry.chat)]);
  emit({ event: 'left', session_id: id });
}

async function run(line) {
  const m = /^(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(line.trim());
  if (!m) {
    if (line.trim()) emit({ event: 'error', code: 'bad_command', message: line });
    return;
  }
  const [, cmd, id, rest] = m;
  try {
    switch (cmd) {
      case 'accept':
        emit({ event: 'accepted', session: await api('POST', `/api/sessions/${id}/accept`) });
        break;
      case 'join':
        await join(id);
        break;
      case 'say':
        await api('POST', `/api/sessions/${id}/messages`, { body: rest ?? '', client_id: randomUUID() });
        break;
      case 'leave':
        await leave(id);
        break;
      case 'end': {
        const session = await api('POST', `/api/sessions/${id}/end`);
        if (!joined.has(id)) emit({ event: 'session', status: session.status });
        break;
      }
      default:
        emit({ event: 'error', code: 'bad_command', message: line });
    }
  } catch (e) {
    emit({ event: 'error', code: e.code ?? 'failed', message: e.message });
  }
}

// Commands run one after another, in the order given.
let queue = Promise.resolve();
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  queue = queue.then(() => run(line));
});
rl.on('close', async () => {
  await queue;
  clearTimeout(refreshTimer);
  for (const id of [...joined.keys()]) await leave(id).catch(() => undefined);
  realtime.disconnect();
  setTimeout(() => process.exit(0), 200).unref();
});
