// Token lifetime on the socket, against a server whose access tokens live 30 s (the minimum of
// --access-token-ttl): a channel whose token expires gets `system` error + `phx_close` and is not
// resubscribed; `setAuth(newToken)` before expiry keeps a channel alive (access_token, no reply);
// joining with an expired token is refused with InvalidJWTToken.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  serverForFile,
  withClients,
  acceptedPair,
  createCustomer,
  customerToken,
  refreshMechanic,
  createMechanic,
  postMessage,
  subscribed,
  subscribeOutcome,
  waitFor,
  topics,
  sleep,
} from '../harness.mjs'

const TTL = 30
const server = serverForFile({ before, after }, { extraArgs: ['--access-token-ttl', String(TTL)] })

const expOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()).exp * 1000

async function until(ms) {
  const d = ms - Date.now()
  if (d > 0) await sleep(d)
}

test(
  'expiry closes the channel; setAuth(newToken) keeps another alive; an expired token cannot join',
  { timeout: 90000 },
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const T0 = customer.token
    const exp0 = expOf(T0)
    assert.ok(exp0 - Date.now() <= TTL * 1000 + 1000, `customer token lives ${TTL} s`)
    const topic = topics.session(sessionId)
    const wire = `realtime:${topic}`
    const msgBinding = { event: 'INSERT', schema: 'public', table: 'messages', filter: `session_id=eq.${sessionId}` }

    // A: keeps T0 and must be closed at expiry.
    const a = await ctx.realtime({ token: T0, name: 'A (token expires)' })
    const chA = a.channel(topic)
    const sysA = []
    const msgsA = []
    chA.on('system', {}, (p) => sysA.push({ ...p, at: Date.now() }))
    chA.on('postgres_changes', msgBinding, (p) => msgsA.push(p))
    const statusesA = []
    chA.subscribe((s, err) => statusesA.push({ s, err: err?.message, at: Date.now() }))

    // B: refreshes with setAuth before expiry and must stay.
    const b = await ctx.realtime({ token: T0, name: 'B (refreshes)' })
    const chB = b.channel(topic)
    const sysB = []
    const msgsB = []
    chB.on('system', {}, (p) => sysB.push(p))
    chB.on('postgres_changes', msgBinding, (p) => msgsB.push(p))
    await subscribed(chB)

    // M: a mechanic on the request feed, refreshed through /api/auth/refresh.
    const m = await ctx.realtime({ token: mechanic.token, name: 'M (mechanic refreshes)' })
    const chM = m.channel(topics.requests)
    const feed = []
    const sysM = []
    chM.on('system', {}, (p) => sysM.push(p))
    chM.on('postgres_changes', { event: '*', schema: 'public', table: 'sessions', filter: 'status=eq.pending' }, (p) => feed.push(p))
    await subscribed(chM)
    const expM = expOf(mechanic.token)

    await waitFor(() => statusesA.some((x) => x.s === 'SUBSCRIBED'), { timeout: 5000, what: 'A subscribed' })

    // Refresh B and M well before expiry, so that the new tokens outlive the old ones by ≥ 10 s.
    await until(Math.max(exp0, expM) - TTL * 1000 + 12000)
    const T1 = await customerToken(ctx.server, customer)
    assert.ok(expOf(T1) >= exp0 + 10000, 'the new token outlives the old one')
    await b.setAuth(T1)
    const mT1 = await refreshMechanic(ctx.server, mechanic)
    await m.setAuth(mT1)
    const push = b.__log.messages('>').find((x) => x.topic === wire && x.event === 'access_token')
    assert.ok(push, 'setAuth(newToken) pushed an access_token event on the joined channel')
    assert.equal(push.payload.access_token, T1)
    assert.ok(m.__log.messages('>').some((x) => x.event === 'access_token' && x.payload.access_token === mT1))
    await sleep(1000)
    assert.ok(
      !b.__log.messages('<').some((x) => x.event === 'phx_reply' && x.ref === push.ref),
      'the server does not reply to access_token'
    )

    // Expiry of T0 (and of the mechanic's first token).
    await until(Math.max(exp0, expM) + 2500)
    assert.ok(
      sysA.some((s) => s.extension === 'system' && s.status === 'error'),
      `A got system {extension:"system", status:"error"} at expiry (got ${JSON.stringify(sysA)})`
    )
    const expiry = sysA.find((s) => s.status === 'error')
    assert.match(expiry.message, /^Token has expired/)
    assert.equal(expiry.channel, topic, 'system.channel is the sub-topic')
    assert.ok(expiry.at - exp0 < 2500, `expiry was pushed ${expiry.at - exp0} ms after exp`)
    await waitFor(() => statusesA.some((x) => x.s === 'CLOSED'), {
      timeout: 2000,
      what: `A CLOSED after phx_close (statuses ${JSON.stringify(statusesA)})`,
    })
    const closeFrame = a.__log.messages('<').find((x) => x.topic === wire && x.event === 'phx_close')
    assert.ok(closeFrame, 'a phx_close frame for A')
    const sysIdx = a.__log.messages('<').findIndex((x) => x.topic === wire && x.event === 'system' && x.payload.status === 'error')
    const closeIdx = a.__log.messages('<').findIndex((x) => x.topic === wire && x.event === 'phx_close')
    assert.ok(sysIdx >= 0 && closeIdx > sysIdx, 'system error first, then phx_close')

    assert.deepEqual(sysB.filter((s) => s.status === 'error'), [], 'B (refreshed) got no system error')
    assert.deepEqual(sysM.filter((s) => s.status === 'error'), [], 'M (refreshed) got no system error')
    assert.ok(!b.__log.messages('<').some((x) => x.event === 'phx_close'), 'B was not closed')

    // B still receives changes, A does not; and A does not rejoin by itself.
    const msg = await postMessage(ctx.server, mechanic, sessionId, 'still there?')
    await waitFor(() => msgsB.some((e) => e.new.id === msg.id), { timeout: 3000, what: 'B receives the INSERT after the old expiry' })
    const offered = await createCustomer(ctx.server)
    await waitFor(() => feed.some((e) => e.new?.id === offered.sessionId), {
      timeout: 3000,
      what: 'M still receives the request feed after its old token expired',
    })
    await sleep(1500)
    assert.equal(msgsA.length, 0, 'the closed channel A received nothing')
    const joinsA = a.__log.messages('>').filter((x) => x.topic === wire && x.event === 'phx_join')
    assert.equal(joinsA.length, 1, 'A was not resubscribed after phx_close')

    // Joining with the expired token is refused.
    const c = await ctx.realtime({ token: T0, name: 'C (expired token)' })
    const out = await subscribeOutcome(c.channel(topic))
    assert.equal(out.status, 'CHANNEL_ERROR')
    const reply = c.__log.messages('<').find((x) => x.topic === wire && x.event === 'phx_reply')
    assert.equal(reply.payload.status, 'error')
    assert.match(reply.payload.response.reason, /^InvalidJWTToken/)
    ctx.note(`expired-token reason: ${reply.payload.response.reason}`)

    // An expired token as apikey is no valid token either.
    const d = await ctx.realtime({ apikey: T0, name: 'D (expired apikey)' })
    const outD = await subscribeOutcome(d.channel(topic))
    assert.equal(outD.status, 'CHANNEL_ERROR')
  })
)

test(
  'an access_token push with another user\'s or an invalid token ends the channel (system error + phx_close)',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const other = await createMechanic(ctx.server)
    const topic = topics.session(sessionId)
    const wire = `realtime:${topic}`
    const cases = [
      { name: "another user's valid token", by: mechanic, token: other.token },
      { name: 'a malformed token', by: customer, token: 'not-a-jwt' },
    ]
    for (const c of cases) {
      const client = await ctx.realtime({ token: c.by.token, name: c.name })
      const ch = client.channel(topic)
      const sys = []
      const statuses = []
      ch.on('system', {}, (p) => sys.push(p))
      ch.subscribe((s) => statuses.push(s))
      await waitFor(() => statuses.includes('SUBSCRIBED'), { timeout: 5000, what: `${c.name}: subscribed` })
      await client.setAuth(c.token)
      assert.ok(client.__log.messages('>').some((x) => x.event === 'access_token'), `${c.name}: access_token pushed`)
      await waitFor(() => statuses.includes('CLOSED'), {
        timeout: 3000,
        what: `${c.name}: channel CLOSED by the server (statuses ${JSON.stringify(statuses)}, system ${JSON.stringify(sys)})`,
      })
      assert.ok(sys.some((s) => s.extension === 'system' && s.status === 'error'), `${c.name}: system error first`)
      assert.ok(client.__log.messages('<').some((x) => x.topic === wire && x.event === 'phx_close'))
    }
  })
)
