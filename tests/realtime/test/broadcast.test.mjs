// Broadcast (typing indicators) on chat:session-{id}: binary kind 3 in / kind 4 out for
// realtime-js vsn 2, JSON for vsn 1; self true/false; ack; no leaks to other sessions.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { serverForFile, withClients, acceptedPair, subscribed, collect, waitFor, topics, sleep } from '../harness.mjs'

const server = serverForFile({ before, after })

function chat(client, sessionId, broadcast) {
  return client.channel(topics.session(sessionId), broadcast ? { config: { broadcast } } : undefined)
}

test(
  'vsn 2: kind-3 broadcast reaches the other participant as kind 4, not the sender (self false)',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const c = await ctx.realtime({ token: customer.token, name: 'customer' })
    const m = await ctx.realtime({ token: mechanic.token, name: 'mechanic' })
    const cc = chat(c, sessionId)
    const mc = chat(m, sessionId)
    const atC = collect(cc, 'broadcast', { event: 'typing' })
    const atM = collect(mc, 'broadcast', { event: 'typing' })
    await Promise.all([subscribed(cc), subscribed(mc)])

    const payload = { user_id: customer.id, typing: true, text: 'grinding — ünïcode ✓' }
    assert.equal(await cc.send({ type: 'broadcast', event: 'typing', payload }), 'ok')
    await waitFor(() => atM.length === 1, { timeout: 3000, what: 'mechanic receives the typing broadcast' })
    assert.deepEqual(atM[0], { type: 'broadcast', event: 'typing', payload, ...(atM[0].meta ? { meta: atM[0].meta } : {}) })

    const sent = c.__log.sent().filter((e) => e.binary)
    assert.equal(sent.length, 1, 'realtime-js sent the broadcast as one binary frame')
    assert.equal(sent[0].kind, 3)
    const got = m.__log.received().filter((e) => e.binary)
    assert.equal(got.length, 1, 'the mechanic received one binary frame')
    assert.equal(got[0].kind, 4, 'server→realtime-js vsn 2 broadcasts use kind 4')
    assert.ok(!m.__log.received().some((e) => e.binary && e.kind !== 4), 'never kinds 0/1/2 to realtime-js')

    // No ack requested → no reply frame for the push.
    await sleep(500)
    assert.equal(atC.length, 0, 'self:false: the sender does not receive its own broadcast')
    const replies = c.__log.messages('<').filter((x) => x.event === 'phx_reply' && x.topic === `realtime:${topics.session(sessionId)}`)
    assert.equal(replies.length, 1, 'only the join was replied to (no ack without config.broadcast.ack)')

    // The other direction.
    assert.equal(await mc.send({ type: 'broadcast', event: 'typing', payload: { user_id: mechanic.id, typing: false } }), 'ok')
    await waitFor(() => atC.length === 1, { timeout: 3000, what: 'customer receives the mechanic broadcast' })
    assert.equal(atC[0].payload.user_id, mechanic.id)
    await sleep(300)
    assert.equal(atM.length, 1, 'mechanic did not receive its own broadcast')
  })
)

test(
  'self true delivers to the sender too; ack true gets an ok reply',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const c = await ctx.realtime({ token: customer.token, name: 'customer self+ack' })
    const m = await ctx.realtime({ token: mechanic.token, name: 'mechanic ack only' })
    const cc = chat(c, sessionId, { self: true, ack: true })
    const mc = chat(m, sessionId, { ack: true })
    const atC = collect(cc, 'broadcast', { event: '*' })
    const atM = collect(mc, 'broadcast', { event: '*' })
    await Promise.all([subscribed(cc), subscribed(mc)])

    const t0 = Date.now()
    const r = await cc.send({ type: 'broadcast', event: 'typing', payload: { n: 1 } })
    assert.equal(r, 'ok', `ack:true send() resolves from the server reply (got ${r} after ${Date.now() - t0} ms)`)
    const push = c.__log.sent().find((e) => e.binary && e.kind === 3)
    const ref = push.fields.ref
    const ack = c.__log.messages('<').find((x) => x.event === 'phx_reply' && x.ref === ref)
    assert.ok(ack, `a phx_reply for the broadcast push ref ${ref}`)
    assert.equal(ack.payload.status, 'ok')

    await waitFor(() => atC.length === 1 && atM.length === 1, {
      timeout: 3000,
      what: `sender (self:true) and mechanic each receive it once (sender ${atC.length}, mechanic ${atM.length})`,
    })
    assert.equal(atC[0].event, 'typing')
    assert.deepEqual(atC[0].payload, { n: 1 })

    // The mechanic (ack, self false) gets its reply but not its own message.
    assert.equal(await mc.send({ type: 'broadcast', event: 'seen', payload: { n: 2 } }), 'ok')
    await waitFor(() => atC.length === 2, { timeout: 3000, what: 'customer receives "seen"' })
    await sleep(300)
    assert.equal(atM.length, 1, 'self:false sender excluded')
    assert.equal(atC[1].event, 'seen')
  })
)

test(
  'vsn 1.0.0 and vsn 2.0.0 clients broadcast to each other; vsn 1 never gets a binary frame',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const c = await ctx.realtime({ token: customer.token, vsn: '1.0.0', name: 'customer vsn1' })
    const m = await ctx.realtime({ token: mechanic.token, vsn: '2.0.0', name: 'mechanic vsn2' })
    const cc = chat(c, sessionId)
    const mc = chat(m, sessionId)
    const atC = collect(cc, 'broadcast', { event: 'typing' })
    const atM = collect(mc, 'broadcast', { event: 'typing' })
    await Promise.all([subscribed(cc), subscribed(mc)])
    assert.match(c.__log.entries[0].text, /vsn=1\.0\.0/)
    assert.match(m.__log.entries[0].text, /vsn=2\.0\.0/)

    await mc.send({ type: 'broadcast', event: 'typing', payload: { from: 'vsn2' } })
    await waitFor(() => atC.length === 1, { timeout: 3000, what: 'vsn 1 client receives the vsn 2 broadcast' })
    assert.deepEqual(atC[0].payload, { from: 'vsn2' })
    const frame = c.__log.messages('<').find((x) => x.event === 'broadcast')
    assert.ok(frame, 'a JSON text broadcast frame')
    assert.equal(frame.topic, `realtime:${topics.session(sessionId)}`)
    assert.equal(frame.payload.event, 'typing')

    await cc.send({ type: 'broadcast', event: 'typing', payload: { from: 'vsn1' } })
    const sentText = c.__log.messages('>').find((x) => x.event === 'broadcast')
    assert.ok(sentText, 'vsn 1 sends broadcasts as JSON text')
    await waitFor(() => atM.length === 1, { timeout: 3000, what: 'vsn 2 client receives the vsn 1 broadcast' })
    assert.deepEqual(atM[0].payload, { from: 'vsn1' })

    assert.equal(c.__log.received().filter((e) => e.binary).length, 0, 'no binary frame may reach a vsn 1 client')
    // vsn 1 frames are JSON objects, not arrays.
    for (const e of c.__log.received()) {
      if (!e.binary) assert.ok(!e.text.trimStart().startsWith('['), `vsn 1 frame must be a JSON object: ${e.text}`)
    }
  })
)

test(
  'broadcasts stay on their own session topic',
  withClients(server, async (ctx) => {
    const a = await acceptedPair(ctx.server)
    const b = await acceptedPair(ctx.server)
    const ca = await ctx.realtime({ token: a.customer.token, name: 'customer A' })
    const ma = await ctx.realtime({ token: a.mechanic.token, name: 'mechanic A' })
    const cb = await ctx.realtime({ token: b.customer.token, name: 'customer B' })
    const chA = chat(ca, a.sessionId)
    const chMA = chat(ma, a.sessionId)
    const chB = chat(cb, b.sessionId, { self: true })
    const atMA = collect(chMA, 'broadcast', { event: '*' })
    const atB = collect(chB, 'broadcast', { event: '*' })
    await Promise.all([subscribed(chA), subscribed(chMA), subscribed(chB)])
    await chA.send({ type: 'broadcast', event: 'typing', payload: { secret: 'A' } })
    await waitFor(() => atMA.length === 1, { timeout: 3000, what: 'mechanic A receives it' })
    await sleep(400)
    assert.equal(atB.length, 0, 'a subscriber of another session receives nothing')
  })
)
