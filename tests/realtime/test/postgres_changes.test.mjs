// postgres_changes: binding echo with integer ids, per-subscriber filtering and authorization,
// refused bindings, the mechanics' request feed, and the record field names of the protocol's model.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  serverForFile,
  withClients,
  acceptedPair,
  createCustomer,
  createMechanic,
  signWaiver,
  accept,
  postMessage,
  getSession,
  api,
  subscribed,
  waitFor,
  topics,
  sleep,
} from '../harness.mjs'

const server = serverForFile({ before, after })

const MESSAGE_FIELDS = ['id', 'session_id', 'seq', 'sender_id', 'sender_role', 'body', 'client_id', 'created_at']
const SESSION_FIELDS = [
  'id',
  'status',
  'plan',
  'customer_id',
  'mechanic_id',
  'vehicle',
  'concern',
  'created_at',
  'waiver_signed_at',
  'accepted_at',
  'started_at',
  'ends_at',
  'ended_at',
  'end_reason',
]

const sessionsBinding = (id, event = '*') => ({ event, schema: 'public', table: 'sessions', filter: `id=eq.${id}` })
const messagesBinding = (id, event = 'INSERT') => ({ event, schema: 'public', table: 'messages', filter: `session_id=eq.${id}` })
const requestsBinding = (event = '*') => ({ event, schema: 'public', table: 'sessions', filter: 'status=eq.pending' })

/** Registers bindings (before subscribe) and returns one event array per binding. */
function bind(channel, bindings) {
  return bindings.map((b) => {
    const got = []
    channel.on('postgres_changes', b, (payload) => got.push(payload))
    return got
  })
}

function systemMessages(channel) {
  const got = []
  channel.on('system', {}, (p) => got.push(p))
  return got
}

test(
  'the join reply echoes the bindings in order with integer ids; valid bindings get "Subscribed to PostgreSQL"',
  withClients(server, async (ctx) => {
    const { customer, sessionId } = await acceptedPair(ctx.server)
    const c = await ctx.realtime({ token: customer.token, name: 'customer' })
    const ch = c.channel(topics.session(sessionId))
    const bindings = [messagesBinding(sessionId), sessionsBinding(sessionId, 'UPDATE'), messagesBinding(sessionId, '*')]
    bind(ch, bindings)
    const sys = systemMessages(ch)
    await subscribed(ch)
    const wire = `realtime:${topics.session(sessionId)}`
    const join = c.__log.messages('>').find((x) => x.topic === wire && x.event === 'phx_join')
    assert.deepEqual(join.payload.config.postgres_changes, bindings, 'realtime-js sent the bindings')
    const reply = c.__log.messages('<').find((x) => x.event === 'phx_reply' && x.ref === join.ref)
    const echoed = reply.payload.response.postgres_changes
    assert.ok(Array.isArray(echoed), 'response.postgres_changes is an array')
    assert.equal(echoed.length, bindings.length)
    echoed.forEach((e, i) => {
      assert.equal(e.event, bindings[i].event)
      assert.equal(e.schema, bindings[i].schema)
      assert.equal(e.table, bindings[i].table)
      assert.equal(e.filter, bindings[i].filter)
      assert.ok(Number.isInteger(e.id), `binding ${i} id must be an integer, got ${JSON.stringify(e.id)}`)
    })
    assert.equal(new Set(echoed.map((e) => e.id)).size, echoed.length, 'ids are distinct')
    await waitFor(() => sys.some((s) => s.extension === 'postgres_changes' && s.status === 'ok'), {
      timeout: 3000,
      what: `system {extension:"postgres_changes", status:"ok"} (got ${JSON.stringify(sys)})`,
    })
    const ok = sys.find((s) => s.status === 'ok')
    assert.equal(ok.message, 'Subscribed to PostgreSQL')
    await sleep(200)
    assert.ok(!sys.some((s) => s.status === 'error'), `no system error for valid bindings: ${JSON.stringify(sys)}`)
    ctx.note(`system messages: ${JSON.stringify(sys)}`)
  })
)

test(
  'a message INSERT reaches both participants and not a foreign subscriber; records use the protocol model field names',
  withClients(server, async (ctx) => {
    const a = await acceptedPair(ctx.server)
    const b = await acceptedPair(ctx.server)
    const ca = await ctx.realtime({ token: a.customer.token, name: 'customer A' })
    const ma = await ctx.realtime({ token: a.mechanic.token, name: 'mechanic A' })
    const cb = await ctx.realtime({ token: b.customer.token, name: 'customer B (foreign)' })
    const chCA = ca.channel(topics.session(a.sessionId))
    const chMA = ma.channel(topics.session(a.sessionId))
    const chCB = cb.channel(topics.session(b.sessionId))
    const [atCA] = bind(chCA, [messagesBinding(a.sessionId)])
    const [atMA] = bind(chMA, [messagesBinding(a.sessionId)])
    const [atCB] = bind(chCB, [messagesBinding(b.sessionId, '*')])
    await Promise.all([subscribed(chCA), subscribed(chMA), subscribed(chCB)])

    const posted = await postMessage(ctx.server, a.customer, a.sessionId, 'It grinds when I brake')
    await waitFor(() => atCA.length === 1 && atMA.length === 1, {
      timeout: 3000,
      what: `INSERT at both participants (customer ${atCA.length}, mechanic ${atMA.length})`,
    })
    for (const ev of [atCA[0], atMA[0]]) {
      assert.equal(ev.eventType, 'INSERT')
      assert.equal(ev.schema, 'public')
      assert.equal(ev.table, 'messages')
      assert.equal(typeof ev.commit_timestamp, 'string')
      for (const f of MESSAGE_FIELDS) assert.ok(f in ev.new, `record has ${f}: ${JSON.stringify(ev.new)}`)
      assert.equal(ev.new.id, posted.id)
      assert.equal(ev.new.session_id, a.sessionId)
      assert.equal(ev.new.seq, posted.seq)
      assert.equal(typeof ev.new.seq, 'number', 'seq is a number')
      assert.equal(ev.new.sender_id, a.customer.id)
      assert.equal(ev.new.sender_role, 'customer')
      assert.equal(ev.new.body, 'It grinds when I brake')
      assert.equal(ev.new.client_id, posted.client_id)
    }
    const frame = ma.__log.messages('<').find((x) => x.event === 'postgres_changes')
    assert.ok(Array.isArray(frame.payload.ids), 'payload.ids is an array')
    assert.equal(frame.join_ref, null, 'postgres_changes frames have join_ref null')
    assert.equal(frame.payload.data.type, 'INSERT')
    assert.ok(Array.isArray(frame.payload.data.columns), 'data.columns is an array')

    // The mechanic's reply reaches the customer.
    const reply = await postMessage(ctx.server, a.mechanic, a.sessionId, 'Probably the pads')
    await waitFor(() => atCA.length === 2 && atMA.length === 2, { timeout: 3000, what: 'second INSERT at both' })
    assert.equal(atCA[1].new.id, reply.id)
    assert.equal(atCA[1].new.sender_role, 'mechanic')
    assert.equal(atCA[1].new.seq, atCA[0].new.seq + 1)

    await sleep(500)
    assert.equal(atCB.length, 0, 'the foreign subscriber received nothing')
    assert.ok(!cb.__log.received().some((e) => e.text.includes(a.sessionId)), 'no frame mentioning session A reached customer B')
  })
)

test(
  'disallowed or malformed bindings still join, get a system error, and never fire',
  withClients(server, async (ctx) => {
    const customerA = await createCustomer(ctx.server) // offered, not accepted yet
    const sessionId = customerA.sessionId
    const b = await acceptedPair(ctx.server)
    const mechanic = await createMechanic(ctx.server)
    const c = await ctx.realtime({ token: customerA.token, name: 'customer A' })
    const ch = c.channel(topics.session(sessionId))
    const bad = [
      { event: '*', schema: 'public', table: 'mechanics', filter: `id=eq.${sessionId}` }, // unknown table
      { event: '*', schema: 'public', table: 'messages', filter: 'body=eq.hello' }, // other column
      { event: '*', schema: 'public', table: 'messages', filter: `sender_id=eq.${customerA.id}` }, // other column
      messagesBinding(b.sessionId, '*'), // another session's id
      sessionsBinding(b.sessionId, '*'), // another session's id
      { event: '*', schema: 'public', table: 'messages', filter: `session_id=neq.${b.sessionId}` }, // operator
      { event: '*', schema: 'public', table: 'sessions', filter: `id=in.(${sessionId},${b.sessionId})` }, // operator
      { event: '*', schema: 'public', table: 'sessions', filter: 'id=eq.1) OR (1=1' }, // injection
      { event: '*', schema: 'public', table: 'sessions', filter: `id=eq.${sessionId}) OR (1=1` }, // injection
      { event: '*', schema: 'public', table: 'messages' }, // no filter: whole table
      { event: '*', schema: 'private', table: 'messages', filter: `session_id=eq.${sessionId}` }, // other schema
      { event: '*', schema: 'public', table: 'sessions', filter: 'status=eq.pending' }, // feed filter on a session topic
    ]
    const good = [sessionsBinding(sessionId, '*'), messagesBinding(sessionId, '*')]
    // A join carries at most four distinct bindings: the refused ones go in joins of four, each
    // on a client of its own (four subscriptions of one user to the topic, its cap).
    const badGot = []
    const badClients = []
    for (let i = 0; i < bad.length; i += 4) {
      const bc = await ctx.realtime({ token: customerA.token, name: `customer A (refused bindings ${i + 1}-${i + 4})` })
      const bch = bc.channel(topics.session(sessionId))
      badGot.push(...bind(bch, bad.slice(i, i + 4)))
      const sys = systemMessages(bch)
      await subscribed(bch)
      await waitFor(() => sys.some((s) => s.extension === 'postgres_changes' && s.status === 'error'), {
        timeout: 3000,
        what: `a system postgres_changes error (got ${JSON.stringify(sys)})`,
      })
      const errors = sys.filter((s) => s.extension === 'postgres_changes' && s.status === 'error')
      for (const e of errors) assert.equal(typeof e.message, 'string')
      ctx.note(`system messages: ${JSON.stringify(sys)}`)
      badClients.push(bc)
    }
    const goodGot = bind(ch, good)
    await subscribed(ch)

    // Activity in both sessions: A accepted (sessions UPDATE) and chatted, B chatted.
    await accept(ctx.server, mechanic, sessionId)
    await postMessage(ctx.server, customerA, sessionId, 'hello')
    await postMessage(ctx.server, b.customer, b.sessionId, 'hello from B')
    await postMessage(ctx.server, b.mechanic, b.sessionId, 'hello')
    await waitFor(() => goodGot[0].length >= 1 && goodGot[1].length >= 1, {
      timeout: 3000,
      what: `the valid bindings fire (sessions ${goodGot[0].length}, messages ${goodGot[1].length})`,
    })
    await sleep(500)
    const fired = bad.map((b, i) => [b, badGot[i].length]).filter(([, n]) => n > 0)
    assert.deepEqual(fired, [], `refused bindings fired: ${JSON.stringify(fired)}`)
    assert.ok(goodGot[1].every((e) => e.new.session_id === sessionId), 'only session A messages')
    for (const client of [c, ...badClients]) {
      assert.ok(!client.__log.received().some((e) => e.text.includes(b.sessionId) && /hello from B/.test(e.text)), "B's message never reached A")
    }
  })
)

test(
  "the session's own UPDATE reaches chat:session-{id} subscribers with old and new",
  withClients(server, async (ctx) => {
    const customer = await createCustomer(ctx.server)
    const mechanic = await createMechanic(ctx.server)
    const c = await ctx.realtime({ token: customer.token, name: 'customer' })
    const ch = c.channel(topics.session(customer.sessionId))
    const [got] = bind(ch, [sessionsBinding(customer.sessionId, 'UPDATE')])
    await subscribed(ch)
    await accept(ctx.server, mechanic, customer.sessionId)
    await waitFor(() => got.length >= 1, { timeout: 3000, what: 'sessions UPDATE after accept' })
    const ev = got[0]
    assert.equal(ev.eventType, 'UPDATE')
    assert.equal(ev.table, 'sessions')
    for (const f of SESSION_FIELDS) assert.ok(f in ev.new, `session record has ${f}: ${JSON.stringify(ev.new)}`)
    assert.equal(ev.new.id, customer.sessionId)
    assert.equal(ev.new.status, 'waiting')
    assert.equal(ev.new.mechanic_id, mechanic.id)
    assert.equal(ev.new.mechanic_name, mechanic.name)
    assert.equal(ev.new.customer_id, customer.id)
    assert.equal(typeof ev.new.vehicle, 'object')
    assert.equal(ev.new.vehicle.make, 'Honda')
    assert.equal(ev.new.vehicle.year, 2018)
    assert.equal(ev.new.plan, 'trial')
    assert.equal(typeof ev.new.accepted_at, 'string')
    ctx.note(`old record: ${JSON.stringify(ev.old)}`)
  })
)

test(
  'the request feed sees a newly offered request and its acceptance, never an unsigned one',
  withClients(server, async (ctx) => {
    const watcher = await createMechanic(ctx.server, { name: 'Watcher' })
    const taker = await createMechanic(ctx.server, { name: 'Taker' })
    const m = await ctx.realtime({ token: watcher.token, name: 'watcher' })
    const ch = m.channel(topics.requests)
    const [got] = bind(ch, [requestsBinding('*')])
    const sys = systemMessages(ch)
    await subscribed(ch)
    await waitFor(() => sys.some((s) => s.extension === 'postgres_changes' && s.status === 'ok'), {
      timeout: 3000,
      what: `system ok for the request feed (got ${JSON.stringify(sys)})`,
    })

    const customer = await createCustomer(ctx.server, { offered: false })
    const sid = customer.sessionId
    await sleep(600)
    assert.equal(got.filter((e) => e.new?.id === sid).length, 0, 'an unsigned intake is not offered: no event yet')

    await signWaiver(ctx.server, customer)
    await waitFor(() => got.some((e) => e.new?.id === sid), { timeout: 3000, what: 'the offered request on the feed' })
    const offered = got.find((e) => e.new?.id === sid)
    assert.ok(['INSERT', 'UPDATE'].includes(offered.eventType))
    assert.equal(offered.table, 'sessions')
    assert.equal(offered.new.status, 'pending')
    assert.equal(typeof offered.new.waiver_signed_at, 'string')
    assert.equal(offered.new.mechanic_id, null)
    assert.equal(offered.new.vehicle.model, 'Civic')
    assert.equal(offered.new.concern, 'Grinding noise when braking at low speed')
    assert.equal(offered.new.customer_name, customer.user.name)
    for (const f of SESSION_FIELDS) assert.ok(f in offered.new, `session record has ${f}`)

    await accept(ctx.server, taker, sid)
    await waitFor(() => got.some((e) => e.new?.id === sid && e.new.status === 'waiting'), {
      timeout: 3000,
      what: 'the acceptance (status waiting) on the feed',
    })
    const taken = got.find((e) => e.new?.id === sid && e.new.status === 'waiting')
    assert.equal(taken.eventType, 'UPDATE')
    assert.equal(taken.new.mechanic_id, taker.id)

    // Once taken, the session is private to its participants: its chat, its live start and its
    // end never reach the other mechanics' feed.
    const before = got.length
    await postMessage(ctx.server, customer, sid, 'private words')
    const cRt = await ctx.realtime({ token: customer.token, name: 'customer' })
    const tRt = await ctx.realtime({ token: taker.token, name: 'taker' })
    const cp = cRt.channel(topics.presence(sid))
    const tp = tRt.channel(topics.presence(sid))
    await Promise.all([subscribed(cp), subscribed(tp)])
    assert.equal(await cp.track({ user_id: customer.id, role: 'customer', online_at: new Date().toISOString() }), 'ok')
    assert.equal(await tp.track({ user_id: taker.id, role: 'mechanic', online_at: new Date().toISOString() }), 'ok')
    await waitFor(async () => (await getSession(ctx.server, customer, sid)).status === 'live', { timeout: 3000, what: 'live' })
    const ended = await api(ctx.server, 'POST', `/api/sessions/${sid}/end`, { auth: { token: taker.token } })
    assert.equal(ended.status, 200)
    await sleep(500)
    assert.deepEqual(
      got.slice(before).map((e) => [e.eventType, e.new?.status]),
      [],
      'nothing about a taken session reaches a non-assigned mechanic'
    )
    assert.ok(!m.__log.received().some((e) => e.text.includes('private words')))
  })
)

test(
  'a request cancelled while offered leaves the feed with an UPDATE',
  withClients(server, async (ctx) => {
    const watcher = await createMechanic(ctx.server, { name: 'Watcher' })
    const m = await ctx.realtime({ token: watcher.token, name: 'watcher' })
    const ch = m.channel(topics.requests)
    const [got] = bind(ch, [requestsBinding('*')])
    await subscribed(ch)
    const customer = await createCustomer(ctx.server)
    await waitFor(() => got.some((e) => e.new?.id === customer.sessionId), { timeout: 3000, what: 'offered' })
    const r = await api(ctx.server, 'POST', `/api/sessions/${customer.sessionId}/end`, { auth: { cookie: customer.cookie } })
    assert.equal(r.status, 200, JSON.stringify(r.body))
    await waitFor(() => got.some((e) => e.new?.id === customer.sessionId && e.new.status === 'cancelled'), {
      timeout: 3000,
      what: 'the cancellation (status cancelled) on the feed',
    })
  })
)
