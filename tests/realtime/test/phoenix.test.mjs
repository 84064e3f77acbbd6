// The upstream `phoenix` 1.8 client (no Supabase config in its join payload) on the same topics as
// realtime-js: joins with {access_token}, receives JSON broadcasts (never binary kinds 3/4),
// broadcasts back, heartbeats, and presence that counts toward the live start.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Presence } from 'phoenix'
import {
  serverForFile,
  withClients,
  acceptedPair,
  getSession,
  subscribed,
  collect,
  waitFor,
  phxOutcome,
  presentUserIds,
  presencePayload,
  topics,
  sleep,
} from '../harness.mjs'

const server = serverForFile({ before, after })

test(
  'phoenix.js joins chat:session-{id} and exchanges broadcasts with a realtime-js vsn 2 client',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const socket = ctx.phoenix({ name: 'phoenix.js mechanic' })
    socket.connect()
    const wire = `realtime:${topics.session(sessionId)}`
    const channel = socket.channel(wire, { access_token: mechanic.token })
    const received = []
    channel.on('broadcast', (payload) => received.push(payload))
    const join = await phxOutcome(channel.join())
    assert.equal(join.status, 'ok', `phoenix.js join: ${JSON.stringify(join)}`)
    assert.equal(typeof join.response, 'object')
    assert.match(socket.__log.entries[0].text, /\/realtime\/v1\/websocket\?apikey=[^&]+&vsn=2\.0\.0/)

    const c = await ctx.realtime({ token: customer.token, name: 'realtime-js customer' })
    const cc = c.channel(topics.session(sessionId))
    const atC = collect(cc, 'broadcast', { event: 'typing' })
    await subscribed(cc)
    await cc.send({ type: 'broadcast', event: 'typing', payload: { user_id: customer.id, typing: true } })
    assert.equal(c.__log.sent().filter((e) => e.binary && e.kind === 3).length, 1, 'realtime-js sent kind 3')
    await waitFor(() => received.length === 1, { timeout: 3000, what: 'phoenix.js receives the broadcast' })
    assert.deepEqual(received[0], { type: 'broadcast', event: 'typing', payload: { user_id: customer.id, typing: true } })
    assert.equal(socket.__log.received().filter((e) => e.binary).length, 0, 'no binary frame may reach phoenix.js')
    const frame = socket.__log.messages('<').find((m) => m.event === 'broadcast')
    assert.equal(frame.topic, wire)

    // phoenix.js → realtime-js (JSON text push).
    channel.push('broadcast', { type: 'broadcast', event: 'typing', payload: { user_id: mechanic.id, typing: true } })
    await waitFor(() => atC.length === 1, { timeout: 3000, what: 'realtime-js receives the phoenix.js broadcast' })
    assert.deepEqual(atC[0].payload, { user_id: mechanic.id, typing: true })
    await sleep(300)
    assert.equal(received.length, 1, 'phoenix.js (self false by default) does not get its own broadcast')
    channel.leave()
    await sleep(50)
  })
)

test(
  'phoenix.js heartbeats are answered',
  withClients(server, async (ctx) => {
    const socket = ctx.phoenix({ name: 'phoenix.js heartbeat', heartbeatIntervalMs: 150 })
    socket.connect()
    await waitFor(
      () => socket.__log.messages('<').filter((m) => m.topic === 'phoenix' && m.payload?.status === 'ok').length >= 3,
      { timeout: 5000, what: '3 heartbeat replies' }
    )
    assert.ok(socket.isConnected())
  })
)

test(
  'phoenix.js presence: presence_state on join, a track counts toward the live start',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const c = await ctx.realtime({ token: customer.token, name: 'realtime-js customer' })
    const cp = c.channel(topics.presence(sessionId))
    cp.on('presence', { event: 'sync' }, () => {})
    await subscribed(cp)
    assert.equal(await cp.track(presencePayload(customer)), 'ok')

    const socket = ctx.phoenix({ name: 'phoenix.js mechanic' })
    socket.connect()
    const channel = socket.channel(`realtime:${topics.presence(sessionId)}`, { access_token: mechanic.token })
    const presence = new Presence(channel)
    let synced = 0
    presence.onSync(() => synced++)
    assert.equal((await phxOutcome(channel.join())).status, 'ok')
    await waitFor(() => synced > 0, { timeout: 3000, what: 'phoenix.js Presence synced from presence_state' })
    const users = () => new Set(presence.list((_key, { metas }) => metas.map((m) => m.user_id)).flat())
    assert.deepEqual(users(), new Set([customer.id]))

    const track = await phxOutcome(
      channel.push('presence', { type: 'presence', event: 'track', payload: presencePayload(mechanic) })
    )
    assert.equal(track.status, 'ok', `track reply ${JSON.stringify(track)}`)
    await waitFor(() => presentUserIds(cp.presenceState()).has(mechanic.id), {
      timeout: 3000,
      what: 'realtime-js sees the phoenix.js mechanic by payload',
    })
    await waitFor(() => users().has(mechanic.id), { timeout: 3000, what: 'phoenix.js sees itself' })
    await waitFor(async () => (await getSession(ctx.server, customer, sessionId)).status === 'live', {
      timeout: 2000,
      what: 'session live with a phoenix.js mechanic and a realtime-js customer',
    })

    // A forged track from phoenix.js is refused too.
    const forged = await phxOutcome(
      channel.push('presence', { type: 'presence', event: 'track', payload: { ...presencePayload(customer) } })
    )
    assert.equal(forged.status, 'error')
    channel.leave()
    await waitFor(() => !presentUserIds(cp.presenceState()).has(mechanic.id), {
      timeout: 3000,
      what: 'phoenix.js leave removes the mechanic',
    })
  })
)
