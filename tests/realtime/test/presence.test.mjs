// Presence on chat:session-{id}:presence: keys per connection, "present" answered by payload
// user_id across every key, presence_state after each join, and forged tracks refused.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  serverForFile,
  withClients,
  acceptedPair,
  api,
  authOf,
  getSession,
  subscribed,
  waitFor,
  presentUserIds,
  countMetasFor,
  presencePayload,
  topics,
  sleep,
  dropConnection,
} from '../harness.mjs'

const server = serverForFile({ before, after })
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** A presence channel with sync/join/leave listeners registered before subscribe (presence enabled). */
function presenceChannel(client, sessionId, config) {
  const ch = client.channel(topics.presence(sessionId), config ? { config } : undefined)
  ch.__events = []
  ch.on('presence', { event: 'sync' }, () => ch.__events.push({ event: 'sync' }))
  ch.on('presence', { event: 'join' }, (p) => ch.__events.push(p))
  ch.on('presence', { event: 'leave' }, (p) => ch.__events.push(p))
  return ch
}

function describeState(ch) {
  return JSON.stringify(ch.presenceState())
}

test(
  'two users, two connections for one user: presence by payload user_id, per-connection keys',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const c = await ctx.realtime({ token: customer.token, name: 'customer' })
    const m1 = await ctx.realtime({ token: mechanic.token, name: 'mechanic conn 1' })
    const m2 = await ctx.realtime({ token: mechanic.token, name: 'mechanic conn 2' })
    const cc = presenceChannel(c, sessionId)
    const c1 = presenceChannel(m1, sessionId)
    const c2 = presenceChannel(m2, sessionId)
    await Promise.all([subscribed(cc), subscribed(c1), subscribed(c2)])
    for (const [ch, actor] of [
      [cc, customer],
      [c1, mechanic],
      [c2, mechanic],
    ]) {
      assert.equal(await ch.track(presencePayload(actor)), 'ok', 'track() must be acknowledged ok')
    }

    for (const [name, ch] of [
      ['customer', cc],
      ['mechanic conn 1', c1],
      ['mechanic conn 2', c2],
    ]) {
      await waitFor(
        () => {
          const s = ch.presenceState()
          return Object.keys(s).length === 3 && countMetasFor(s, mechanic.id) === 2 && countMetasFor(s, customer.id) === 1
        },
        { timeout: 5000, what: `${name}: 3 keys (customer ×1, mechanic ×2) — state ${describeState(ch)}` }
      ).catch((e) => {
        throw new Error(`${e.message}; final state ${describeState(ch)}`)
      })
    }
    const state = cc.presenceState()
    const keys = Object.keys(state)
    assert.ok(!keys.includes(customer.id) && !keys.includes(mechanic.id), `keys must be connection keys, not user ids: ${keys}`)
    for (const k of keys) assert.match(k, UUID, 'default presence keys are random UUIDs')
    for (const metas of Object.values(state)) {
      assert.equal(metas.length, 1, 'one meta per connection key')
      const meta = metas[0]
      assert.ok(['customer', 'mechanic'].includes(meta.role))
      assert.equal(typeof meta.online_at, 'string')
      assert.equal(typeof meta.presence_ref, 'string', 'meta carries phx_ref (presence_ref after the realtime-js transform)')
    }
    assert.deepEqual(presentUserIds(state), new Set([customer.id, mechanic.id]))

    // Connection 1 of the mechanic leaves the channel: the mechanic is still present through conn 2.
    const leaveKeysBefore = new Set(Object.keys(cc.presenceState()))
    assert.equal(await m1.removeChannel(c1), 'ok')
    await waitFor(() => Object.keys(cc.presenceState()).length === 2, {
      timeout: 5000,
      what: `customer view: 2 keys after mechanic conn 1 left — state ${describeState(cc)}`,
    })
    assert.equal(countMetasFor(cc.presenceState(), mechanic.id), 1)
    assert.ok(presentUserIds(cc.presenceState()).has(mechanic.id), 'mechanic still present by payload')
    const leaveEvent = cc.__events.find((e) => e.event === 'leave')
    assert.ok(leaveEvent && leaveKeysBefore.has(leaveEvent.key), 'a presence leave event for the departed key')
    assert.equal(leaveEvent.leftPresences[0].user_id, mechanic.id)

    // Connection 2 drops its socket without leaving: the server must notice and send the leave.
    await dropConnection(m2)
    await waitFor(() => !presentUserIds(cc.presenceState()).has(mechanic.id), {
      timeout: 5000,
      what: `customer view: mechanic gone after conn 2 disconnected — state ${describeState(cc)}`,
    })
    assert.deepEqual(presentUserIds(cc.presenceState()), new Set([customer.id]))
  })
)

test(
  'presence_state arrives right after a join and shows who is already tracked',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const c = await ctx.realtime({ token: customer.token, name: 'customer' })
    const cc = presenceChannel(c, sessionId)
    await subscribed(cc)
    assert.equal(await cc.track(presencePayload(customer)), 'ok')
    await waitFor(() => presentUserIds(cc.presenceState()).has(customer.id), {
      timeout: 3000,
      what: 'customer sees its own track',
    })

    const m = await ctx.realtime({ token: mechanic.token, name: 'mechanic (observer, no track)' })
    const mc = presenceChannel(m, sessionId)
    await subscribed(mc)
    const wire = `realtime:${topics.presence(sessionId)}`
    const join = m.__log.messages('>').find((x) => x.topic === wire && x.event === 'phx_join')
    await waitFor(() => m.__log.messages('<').some((x) => x.topic === wire && x.event === 'presence_state'), {
      timeout: 3000,
      what: 'presence_state after the join',
    })
    const received = m.__log.messages('<').filter((x) => x.topic === wire)
    const replyIdx = received.findIndex((x) => x.event === 'phx_reply' && x.ref === join.ref)
    const stateIdx = received.findIndex((x) => x.event === 'presence_state')
    assert.ok(replyIdx >= 0 && stateIdx > replyIdx, 'presence_state comes after the join reply')
    const ps = received[stateIdx]
    assert.equal(ps.join_ref, join.join_ref, 'presence_state carries the join_ref of the current join')
    const metas = Object.values(ps.payload).flatMap((p) => p.metas)
    assert.equal(metas.length, 1)
    assert.equal(metas[0].user_id, customer.id)
    assert.equal(typeof metas[0].phx_ref, 'string')
    assert.deepEqual(presentUserIds(mc.presenceState()), new Set([customer.id]))
    assert.ok(mc.__events.some((e) => e.event === 'sync'), 'the client synced')

    // An untrack removes the customer for the observer.
    assert.equal(await cc.untrack(), 'ok')
    await waitFor(() => presentUserIds(mc.presenceState()).size === 0, {
      timeout: 3000,
      what: `observer sees the untrack — state ${describeState(mc)}`,
    })
  })
)

test(
  'config.presence.key replaces the per-connection key',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const c = await ctx.realtime({ token: customer.token, name: 'customer' })
    const m = await ctx.realtime({ token: mechanic.token, name: 'mechanic' })
    const cc = presenceChannel(c, sessionId, { presence: { key: 'customer-laptop' } })
    const mc = presenceChannel(m, sessionId)
    await Promise.all([subscribed(cc), subscribed(mc)])
    assert.equal(await cc.track(presencePayload(customer)), 'ok')
    await waitFor(() => mc.presenceState()['customer-laptop'], {
      timeout: 3000,
      what: `key "customer-laptop" in the mechanic's view — state ${describeState(mc)}`,
    })
    assert.equal(mc.presenceState()['customer-laptop'][0].user_id, customer.id)
  })
)

test(
  'a track with someone else\'s user_id is refused and never appears; it cannot start the session',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const c = await ctx.realtime({ token: customer.token, name: 'customer (observer)' })
    const m = await ctx.realtime({ token: mechanic.token, name: 'mechanic (forger)' })
    const cc = presenceChannel(c, sessionId)
    const mc = presenceChannel(m, sessionId)
    await Promise.all([subscribed(cc), subscribed(mc)])

    // The mechanic claims to be the customer (which would make both "present").
    const forged = { user_id: customer.id, role: 'customer', online_at: new Date().toISOString() }
    const r1 = await mc.track(forged)
    assert.equal(r1, 'error', 'forged track must get an error reply')
    const wire = `realtime:${topics.presence(sessionId)}`
    const push = m.__log.messages('>').find((x) => x.topic === wire && x.event === 'presence')
    const reply = m.__log.messages('<').find((x) => x.event === 'phx_reply' && x.ref === push.ref)
    assert.equal(reply?.payload?.status, 'error', 'error reply on the wire')

    // Also a made-up user id, and a payload without user_id.
    assert.equal(await mc.track({ user_id: '00000000-0000-4000-8000-000000000001', role: 'mechanic' }), 'error')
    assert.equal(await mc.track({ role: 'mechanic', online_at: new Date().toISOString() }), 'error')

    await sleep(700)
    assert.equal(Object.keys(cc.presenceState()).length, 0, `observer must see nobody — ${describeState(cc)}`)
    assert.equal(Object.keys(mc.presenceState()).length, 0, `forger must see nobody — ${describeState(mc)}`)
    for (const f of c.__log.messages('<')) {
      if (f.event === 'presence_diff') {
        assert.deepEqual(f.payload.joins ?? {}, {}, `no join may reach the observer: ${JSON.stringify(f.payload)}`)
      }
    }
    const session = await getSession(ctx.server, customer, sessionId)
    assert.equal(session.status, 'waiting', 'a forged presence must not start the session')
    const start = await api(ctx.server, 'POST', `/api/sessions/${sessionId}/start`, { auth: authOf(customer) })
    assert.equal(start.status, 409)
    assert.deepEqual([...start.body.missing].sort(), ['customer', 'mechanic'])

    // The forger's honest track still works afterwards.
    assert.equal(await mc.track(presencePayload(mechanic)), 'ok')
    await waitFor(() => presentUserIds(cc.presenceState()).has(mechanic.id), {
      timeout: 3000,
      what: 'honest track after refused ones reaches the observer',
    })
    assert.deepEqual(presentUserIds(cc.presenceState()), new Set([mechanic.id]))
  })
)
