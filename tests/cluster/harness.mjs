// The cluster suite's helpers: a cluster of real `wrenchline-server serve` nodes for one test
// file (tests/support/server.mjs `startCluster`, on the PostgreSQL and Redis that
// scripts/with-postgres.sh and scripts/with-redis.sh started), and a chat room that behaves like
// the customer page and the desktop app: realtime-js channels on one node, presence tracked again
// on every SUBSCRIBED, and the history after the last `seq` fetched again on every rejoin. The
// realtime-js client, its frame log and the waiting helpers are tests/realtime's.

import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import * as support from '../support/server.mjs'
import { withClients, waitFor, presentUserIds, presencePayload, topics, sleep } from '../realtime/harness.mjs'

export { waitFor, presentUserIds, presencePayload, topics, sleep, support }

/**
 * Limits for the suite: every test signs in and files intakes from 127.0.0.1, and the counters
 * are shared by the whole cluster and kept in Redis across test files, so the per-address budgets
 * are raised; sign-in failures per account keep a small limit that `limits.test.mjs` proves.
 */
export const LIMITS = {
  login_per_address_per_minute: 5000,
  intakes_per_address_per_hour: 50000,
  login_failures_per_account_and_address_per_minute: 4,
}

/** One cluster for a whole test file: a getter for it, started in `before`, stopped in `after`. */
export function clusterForFile({ before, after }, { nodes = 3, args = [] } = {}) {
  const holder = { cluster: null, dir: null }
  before(async () => {
    holder.dir = mkdtempSync(path.join(tmpdir(), 'wl-cluster-'))
    const limitsFile = path.join(holder.dir, 'limits.toml')
    writeFileSync(limitsFile, Object.entries(LIMITS).map(([k, v]) => `${k} = ${v}\n`).join(''))
    holder.cluster = await support.startCluster({ nodes, args: ['--limits-file', limitsFile, ...args] })
  })
  after(async () => {
    if (holder.cluster) await holder.cluster.stop()
    if (holder.dir) rmSync(holder.dir, { recursive: true, force: true })
  })
  return () => holder.cluster
}

/** `withClients` whose failure report carries every node's log. */
export function withCluster(getCluster, fn) {
  const diagnostics = () => ({
    tail: (n) => getCluster()?.tail(n) ?? '',
    get wsBase() {
      return getCluster().node(0).wsBase
    },
  })
  return withClients(diagnostics, (ctx) => fn(ctx, getCluster()))
}

/** A customer with a session offered to mechanics, made through `node`. */
export function customerOn(node) {
  return support.createCustomerSession(node)
}

/** A mechanic added with the CLI and signed in through `node`. */
export function mechanicOn(node) {
  return support.createMechanic(node)
}

export function authOf(actor) {
  return actor.role === 'customer' ? { cookie: actor.cookie } : { token: actor.token }
}

/** `POST /api/sessions/{id}/accept` through `node`: `{status, body}`. */
export function acceptOn(node, mechanic, sessionId) {
  return support.request(node, 'POST', `/api/sessions/${sessionId}/accept`, { token: mechanic.token })
}

export async function sessionOn(node, actor, sessionId) {
  return support.expectStatus(node, 'GET', `/api/sessions/${sessionId}`, 200, authOf(actor))
}

/** Posts a chat message through `node`; resolves the stored message (201). */
export function postOn(node, actor, sessionId, body, clientId = randomUUID()) {
  return support.expectStatus(node, 'POST', `/api/sessions/${sessionId}/messages`, 201, {
    ...authOf(actor),
    body: { body, client_id: clientId },
  })
}

/**
 * A participant's chat room on `node`: the session's presence channel (tracking on every
 * SUBSCRIBED) and chat channel (session UPDATEs and message INSERTs). On every rejoin after the
 * first the history after the highest `seq` seen is fetched, as the pages do.
 *
 * The room: `messages` (a Map seq → message, from either path), `live` (message INSERTs as
 * delivered, duplicates included), `updates` (session UPDATEs), `presence` events (`joins`,
 * `leaves`), `statuses`, `present()` (user ids in the presence state), `lastSeq()`,
 * `seqs()`.
 */
export async function openRoom(ctx, node, actor, sessionId, name, { track = true } = {}) {
  const room = {
    actor,
    sessionId,
    name,
    node,
    messages: new Map(),
    live: [],
    updates: [],
    joins: [],
    leaves: [],
    statuses: [],
    client: null,
    presence: null,
    chat: null,
    present() {
      return presentUserIds(room.presence.presenceState())
    },
    lastSeq() {
      return room.messages.size ? Math.max(...room.messages.keys()) : 0
    },
    seqs() {
      return [...room.messages.keys()].sort((a, b) => a - b)
    },
  }

  async function catchUp() {
    const after = room.lastSeq()
    const res = await support.request(room.node, 'GET', `/api/sessions/${sessionId}/messages?after=${after}`, authOf(actor))
    if (res.status === 200) for (const m of res.body) room.messages.set(m.seq, m)
  }

  async function connect(target) {
    room.node = target
    const client = await ctx.realtime({ token: actor.token, name: `${name}@${target.nodeId ?? target.base}`, server: target })
    const presence = client.channel(topics.presence(sessionId))
    presence.on('presence', { event: 'sync' }, () => {})
    presence.on('presence', { event: 'join' }, ({ newPresences }) =>
      room.joins.push(...newPresences.map((p) => ({ user_id: p.user_id, at: Date.now() }))),
    )
    presence.on('presence', { event: 'leave' }, ({ leftPresences }) =>
      room.leaves.push(...leftPresences.map((p) => ({ user_id: p.user_id, at: Date.now() }))),
    )
    const chat = client.channel(topics.session(sessionId))
    chat.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'messages', filter: `session_id=eq.${sessionId}` }, (p) => {
      room.live.push(p.new)
      room.messages.set(p.new.seq, p.new)
    })
    chat.on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'sessions', filter: `id=eq.${sessionId}` }, (p) =>
      room.updates.push({ ...p.new, receivedAt: Date.now() }),
    )
    let chatJoins = 0
    presence.subscribe((status, err) => {
      room.statuses.push(`presence ${status}${err ? `: ${err.message}` : ''}`)
      if (status === 'SUBSCRIBED' && track) presence.track(presencePayload(actor))
    })
    chat.subscribe((status, err) => {
      room.statuses.push(`chat ${status}${err ? `: ${err.message}` : ''}`)
      if (status === 'SUBSCRIBED') {
        chatJoins += 1
        catchUp().catch(() => {})
      }
    })
    Object.assign(room, { client, presence, chat })
    const before = room.statuses.length
    await waitFor(
      () => {
        const since = room.statuses.slice(before)
        return since.includes('presence SUBSCRIBED') && since.includes('chat SUBSCRIBED')
      },
      { timeout: 15000, what: `${name}: both channels SUBSCRIBED on ${target.base} (${room.statuses.join(', ')})` },
    )
    return chatJoins
  }

  await connect(node)
  return room
}

/** Waits until `room` holds every message in `acked` (stored messages); `what` names the check. */
export async function waitDelivered(room, acked, { timeout = 20000 } = {}) {
  await waitFor(() => acked.every((m) => room.messages.get(m.seq)?.id === m.id), {
    timeout,
    what: `${room.name} holds all ${acked.length} acknowledged messages (has seqs ${room.seqs().join(',')})`,
  })
}

/** Delivered INSERTs of `room` are each once and in `seq` order. */
export function assertExactlyOnceInOrder(assert, room) {
  const seqs = room.live.map((m) => m.seq)
  assert.equal(new Set(seqs).size, seqs.length, `${room.name}: a message delivered twice: ${seqs.join(',')}`)
  const sorted = [...seqs].sort((a, b) => a - b)
  assert.deepEqual(seqs, sorted, `${room.name}: messages out of order`)
}

/** A customer on `customerNode` and a mechanic on `mechanicNode`, accepted, both in the room, live. */
export async function livePair(ctx, customerNode, mechanicNode) {
  const customer = await customerOn(customerNode)
  const mechanic = await mechanicOn(mechanicNode)
  const accepted = await acceptOn(mechanicNode, mechanic, customer.sessionId)
  if (accepted.status !== 200) throw new Error(`accept: ${accepted.status} ${JSON.stringify(accepted.body)}`)
  const c = await openRoom(ctx, customerNode, customer, customer.sessionId, 'customer')
  const m = await openRoom(ctx, mechanicNode, mechanic, customer.sessionId, 'mechanic')
  await waitFor(() => c.updates.some((u) => u.status === 'live') && m.updates.some((u) => u.status === 'live'), {
    timeout: 10000,
    what: 'the live UPDATE at both participants',
  })
  return { customer, mechanic, sessionId: customer.sessionId, c, m }
}
