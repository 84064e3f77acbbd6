// The seed's Tests 1–3 (reference/seed-chat-session-flow.md) scripted with realtime-js as the
// customer page and the mechanic would use it: presence by payload user_id, the server-authoritative
// waiting → live start, and chat both ways over HTTP + postgres_changes.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  serverForFile,
  withClients,
  createCustomer,
  createMechanic,
  accept,
  api,
  authOf,
  getSession,
  postMessage,
  subscribed,
  waitFor,
  presentUserIds,
  presencePayload,
  topics,
  sleep,
} from '../harness.mjs'

const server = serverForFile({ before, after })
const TRIAL_MS = 10 * 60 * 1000

/** What the chat room opens for one participant: presence (tracking on SUBSCRIBED) + chat channel. */
async function openRoom(ctx, actor, sessionId, name) {
  const client = await ctx.realtime({ token: actor.token, name })
  const presence = client.channel(topics.presence(sessionId))
  presence.on('presence', { event: 'sync' }, () => {})
  const chat = client.channel(topics.session(sessionId))
  const sessionUpdates = []
  const messages = []
  chat.on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'sessions', filter: `id=eq.${sessionId}` }, (p) =>
    sessionUpdates.push({ ...p, receivedAt: Date.now() })
  )
  chat.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'messages', filter: `session_id=eq.${sessionId}` }, (p) =>
    messages.push(p)
  )
  await Promise.all([subscribed(presence), subscribed(chat)])
  return { client, presence, chat, sessionUpdates, messages, actor }
}

async function track(room) {
  const r = await room.presence.track(presencePayload(room.actor))
  assert.equal(r, 'ok', `${room.actor.role} track() → ${r}`)
  return Date.now()
}

function present(room) {
  return presentUserIds(room.presence.presenceState())
}

async function start(server, actor, sessionId) {
  return api(server, 'POST', `/api/sessions/${sessionId}/start`, { auth: authOf(actor) })
}

function assertLive(session, what) {
  assert.equal(session.status, 'live', `${what}: status`)
  assert.equal(typeof session.started_at, 'string', `${what}: started_at`)
  assert.equal(typeof session.ends_at, 'string', `${what}: ends_at`)
  const span = Date.parse(session.ends_at) - Date.parse(session.started_at)
  assert.equal(span, TRIAL_MS, `${what}: ends_at − started_at must be 10 minutes (trial), got ${span} ms`)
}

test(
  'Test 1: customer present, mechanic accepted but absent → session stays waiting; presence shows the customer only',
  withClients(server, async (ctx) => {
    const customer = await createCustomer(ctx.server)
    const mechanic = await createMechanic(ctx.server)
    const sid = customer.sessionId
    const room = await openRoom(ctx, customer, sid, 'customer')
    await track(room)
    await waitFor(() => present(room).has(customer.id), { timeout: 3000, what: 'customerPresent' })

    let r = await start(ctx.server, customer, sid)
    assert.equal(r.status, 409, 'start before any mechanic accepted')

    await accept(ctx.server, mechanic, sid)
    await waitFor(() => room.sessionUpdates.some((u) => u.new.status === 'waiting'), {
      timeout: 3000,
      what: 'the customer sees the acceptance (UPDATE status waiting)',
    })
    assert.equal(room.sessionUpdates.at(-1).new.mechanic_id, mechanic.id)
    await sleep(1500)
    const s = await getSession(ctx.server, customer, sid)
    assert.equal(s.status, 'waiting', 'no live start while the mechanic is absent')
    assert.equal(s.started_at, null)
    assert.ok(!room.sessionUpdates.some((u) => u.new.status === 'live'), 'no live UPDATE published')
    assert.deepEqual(present(room), new Set([customer.id]), 'customerPresent true, mechanicPresent false')

    r = await start(ctx.server, customer, sid)
    assert.equal(r.status, 409)
    assert.equal(r.body.error, 'participants_not_present')
    assert.deepEqual(r.body.missing, ['mechanic'])
  })
)

test(
  'Test 2: the mechanic accepts and joins → both present by payload → live within 1 s, trial = 10 minutes',
  withClients(server, async (ctx) => {
    const customer = await createCustomer(ctx.server)
    const mechanic = await createMechanic(ctx.server)
    const sid = customer.sessionId
    const cRoom = await openRoom(ctx, customer, sid, 'customer')
    await track(cRoom)
    await accept(ctx.server, mechanic, sid)
    const mRoom = await openRoom(ctx, mechanic, sid, 'mechanic')
    // Before the mechanic tracks: the mechanic sees the customer; start names the mechanic as missing.
    await waitFor(() => present(mRoom).has(customer.id), { timeout: 3000, what: 'mechanic sees the customer' })
    const early = await start(ctx.server, mechanic, sid)
    assert.equal(early.status, 409)
    assert.deepEqual(early.body.missing, ['mechanic'])

    const trackedAt = await track(mRoom)
    await waitFor(
      () => cRoom.sessionUpdates.some((u) => u.new.status === 'live') && mRoom.sessionUpdates.some((u) => u.new.status === 'live'),
      { timeout: 3000, what: 'the live UPDATE at both participants' }
    )
    const cLive = cRoom.sessionUpdates.find((u) => u.new.status === 'live')
    const mLive = mRoom.sessionUpdates.find((u) => u.new.status === 'live')
    const delay = Math.max(cLive.receivedAt, mLive.receivedAt) - trackedAt
    assert.ok(delay <= 1000, `live within 1 s of both being present (took ${delay} ms)`)
    assertLive(cLive.new, 'customer UPDATE')
    assert.deepEqual(mLive.new, cLive.new, 'both participants see the same record')
    assert.equal(cLive.new.mechanic_id, mechanic.id)

    for (const room of [cRoom, mRoom]) {
      assert.deepEqual(present(room), new Set([customer.id, mechanic.id]), `${room.actor.role}: both present by payload`)
    }
    const s = await getSession(ctx.server, customer, sid)
    assertLive(s, 'GET /api/sessions/{id}')
    assert.equal(s.started_at, cLive.new.started_at)

    // POST /start is idempotent once live.
    for (const actor of [customer, mechanic]) {
      const r = await start(ctx.server, actor, sid)
      assert.equal(r.status, 200, `start by ${actor.role}: ${JSON.stringify(r.body)}`)
      assertLive(r.body, 'start response')
      assert.equal(r.body.started_at, s.started_at, 'started_at does not move')
    }
    await sleep(300)
    assert.equal(cRoom.sessionUpdates.filter((u) => u.new.status === 'live').length, 1, 'exactly one live UPDATE')
  })
)

test(
  'Test 2 (other order): the mechanic is present first, the customer joins later → live',
  withClients(server, async (ctx) => {
    const customer = await createCustomer(ctx.server)
    const mechanic = await createMechanic(ctx.server)
    const sid = customer.sessionId
    await accept(ctx.server, mechanic, sid)
    const mRoom = await openRoom(ctx, mechanic, sid, 'mechanic')
    await track(mRoom)
    await sleep(300)
    const r = await start(ctx.server, mechanic, sid)
    assert.equal(r.status, 409)
    assert.deepEqual(r.body.missing, ['customer'])
    assert.equal((await getSession(ctx.server, mechanic, sid)).status, 'waiting')

    const cRoom = await openRoom(ctx, customer, sid, 'customer')
    const trackedAt = await track(cRoom)
    await waitFor(() => mRoom.sessionUpdates.some((u) => u.new.status === 'live'), {
      timeout: 3000,
      what: 'the live UPDATE at the mechanic',
    })
    const live = mRoom.sessionUpdates.find((u) => u.new.status === 'live')
    assert.ok(live.receivedAt - trackedAt <= 1000, `live within 1 s (took ${live.receivedAt - trackedAt} ms)`)
    assertLive(live.new, 'mechanic UPDATE')
  })
)

test(
  'the start is by payload user_id: a second mechanic connection and custom presence keys do not matter',
  withClients(server, async (ctx) => {
    const customer = await createCustomer(ctx.server)
    const mechanic = await createMechanic(ctx.server)
    const sid = customer.sessionId
    await accept(ctx.server, mechanic, sid)
    // The customer tracks under a custom key that looks like nobody's user id.
    const c = await ctx.realtime({ token: customer.token, name: 'customer (custom key)' })
    const cp = c.channel(topics.presence(sid), { config: { presence: { key: 'tab-1' } } })
    cp.on('presence', { event: 'sync' }, () => {})
    await subscribed(cp)
    assert.equal(await cp.track(presencePayload(customer)), 'ok')
    const mRoom = await openRoom(ctx, mechanic, sid, 'mechanic')
    // The mechanic's first connection only watches; its second connection tracks.
    const m2 = await ctx.realtime({ token: mechanic.token, name: 'mechanic conn 2' })
    const mp2 = m2.channel(topics.presence(sid))
    await subscribed(mp2)
    assert.equal(await mp2.track(presencePayload(mechanic)), 'ok')
    await waitFor(() => mRoom.sessionUpdates.some((u) => u.new.status === 'live'), {
      timeout: 3000,
      what: 'live start with presence under non-user keys',
    })
    assertLive(mRoom.sessionUpdates.find((u) => u.new.status === 'live').new, 'UPDATE')
  })
)

test(
  'Test 3: chat both ways — HTTP post → postgres_changes INSERT at the other side',
  withClients(server, async (ctx) => {
    const customer = await createCustomer(ctx.server)
    const mechanic = await createMechanic(ctx.server)
    const sid = customer.sessionId
    const cRoom = await openRoom(ctx, customer, sid, 'customer')
    await track(cRoom)
    await accept(ctx.server, mechanic, sid)
    const mRoom = await openRoom(ctx, mechanic, sid, 'mechanic')
    await track(mRoom)
    await waitFor(() => cRoom.sessionUpdates.some((u) => u.new.status === 'live'), { timeout: 3000, what: 'live' })

    const m1 = await postMessage(ctx.server, customer, sid, 'Hi, the brakes grind at low speed')
    await waitFor(() => mRoom.messages.some((e) => e.new.id === m1.id), { timeout: 3000, what: 'mechanic receives the customer message' })
    const m2 = await postMessage(ctx.server, mechanic, sid, 'Sounds like worn pads. Any squeal too?')
    await waitFor(() => cRoom.messages.some((e) => e.new.id === m2.id), { timeout: 3000, what: 'customer receives the mechanic message' })
    const m3 = await postMessage(ctx.server, customer, sid, 'Yes, a squeal first')
    await waitFor(() => mRoom.messages.length === 3 && cRoom.messages.length === 3, {
      timeout: 3000,
      what: `all three INSERTs on both sides (customer ${cRoom.messages.length}, mechanic ${mRoom.messages.length})`,
    })
    for (const room of [cRoom, mRoom]) {
      const got = room.messages.map((e) => [e.new.seq, e.new.sender_role, e.new.body])
      assert.deepEqual(got, [
        [m1.seq, 'customer', m1.body],
        [m2.seq, 'mechanic', m2.body],
        [m3.seq, 'customer', m3.body],
      ])
      assert.deepEqual(
        room.messages.map((e) => e.new.seq),
        [1, 2, 3],
        'seq 1, 2, 3 in order'
      )
    }
    // Idempotent post (same client_id) publishes nothing new.
    const again = await api(ctx.server, 'POST', `/api/sessions/${sid}/messages`, {
      auth: authOf(customer),
      body: { body: m3.body, client_id: m3.client_id },
    })
    assert.ok([200, 201].includes(again.status), `repeat post: ${again.status}`)
    assert.equal(again.body.id, m3.id)
    await sleep(500)
    assert.equal(mRoom.messages.length, 3, 'a repeated client_id publishes no second INSERT')
  })
)
