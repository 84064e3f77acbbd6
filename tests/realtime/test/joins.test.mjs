// Joins on every Wrenchline topic, and every refusal: wrong customer, unassigned mechanic,
// customer on the request feed, no token, a malformed token, unknown and unprefixed topics.
// (Expired tokens are in tokens.test.mjs: they need a server with a short token lifetime.)

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  serverForFile,
  withClients,
  acceptedPair,
  createCustomer,
  createMechanic,
  subscribed,
  subscribeOutcome,
  phxOutcome,
  topics,
  sleep,
} from '../harness.mjs'

const server = serverForFile({ before, after })

/** The join frames a client sent for `topic` and the server's replies to them. */
function joinExchange(log, topic) {
  const wire = `realtime:${topic}`
  const sent = log.messages('>').filter((m) => m.topic === wire && m.event === 'phx_join')
  const replies = log
    .messages('<')
    .filter((m) => m.topic === wire && m.event === 'phx_reply' && sent.some((s) => s.ref === m.ref))
  return { sent, replies }
}

/** Subscribes a new client to `topic` and requires a refusal whose reason matches `reason`. */
async function expectRefused(ctx, { token, apikey, topic, reason, name }) {
  const client = await ctx.realtime({ token, apikey, name })
  const channel = client.channel(topic)
  const out = await subscribeOutcome(channel, { timeout: 12000 })
  assert.equal(
    out.status,
    'CHANNEL_ERROR',
    `${name}: join of ${topic} must be refused, got ${out.status}${out.err ? ` (${out.err.message})` : ''}`
  )
  const { replies } = joinExchange(client.__log, topic)
  assert.ok(replies.length >= 1, `${name}: no phx_reply to the join on the wire`)
  const reply = replies[0]
  assert.equal(reply.payload?.status, 'error', `${name}: reply status`)
  assert.equal(typeof reply.payload?.response?.reason, 'string', `${name}: reply response.reason must be a string`)
  if (reason) {
    assert.match(
      reply.payload.response.reason,
      reason,
      `${name}: reason ${JSON.stringify(reply.payload.response.reason)} does not match ${reason}`
    )
  }
  // The refused client must never see SUBSCRIBED (realtime-js keeps retrying joins).
  assert.ok(!channel.__statuses.some((s) => s.status === 'SUBSCRIBED'), `${name}: unexpectedly SUBSCRIBED`)
  await client.removeChannel(channel)
  return reply
}

test(
  'participants join the presence and chat topics, a mechanic joins the request feed',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const c = await ctx.realtime({ token: customer.token, name: 'customer' })
    const m = await ctx.realtime({ token: mechanic.token, name: 'mechanic' })
    const want = [
      [c, topics.presence(sessionId)],
      [c, topics.session(sessionId)],
      [m, topics.presence(sessionId)],
      [m, topics.session(sessionId)],
      [m, topics.requests],
    ]
    await Promise.all(want.map(([client, topic]) => subscribed(client.channel(topic))))
    for (const [client, topic] of want) {
      const { sent, replies } = joinExchange(client.__log, topic)
      assert.equal(sent.length, 1, `exactly one join of ${topic}`)
      assert.equal(sent[0].payload.access_token, client === c ? customer.token : mechanic.token, 'join carries access_token')
      assert.equal(replies.length, 1, `one reply to the join of ${topic}`)
      assert.equal(replies[0].join_ref, sent[0].join_ref, 'reply join_ref')
      assert.deepEqual(replies[0].payload.status, 'ok')
      assert.equal(typeof replies[0].payload.response, 'object')
    }
  })
)

test(
  'the customer of an offered session joins its topics before any mechanic accepts',
  withClients(server, async (ctx) => {
    const customer = await createCustomer(ctx.server)
    const c = await ctx.realtime({ token: customer.token, name: 'customer' })
    await subscribed(c.channel(topics.presence(customer.sessionId)))
    await subscribed(c.channel(topics.session(customer.sessionId)))
  })
)

test(
  'joins without a valid token, by the wrong user, or on a wrong topic are refused',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const otherCustomer = await createCustomer(ctx.server)
    const otherMechanic = await createMechanic(ctx.server)
    const offered = await createCustomer(ctx.server) // offered, nobody assigned
    const Unauthorized = /^Unauthorized/
    const cases = [
      { name: 'other customer on presence', token: otherCustomer.token, topic: topics.presence(sessionId), reason: Unauthorized },
      { name: 'other customer on chat', token: otherCustomer.token, topic: topics.session(sessionId), reason: Unauthorized },
      { name: 'unassigned mechanic on presence', token: otherMechanic.token, topic: topics.presence(sessionId), reason: Unauthorized },
      { name: 'unassigned mechanic on chat', token: otherMechanic.token, topic: topics.session(sessionId), reason: Unauthorized },
      {
        name: 'mechanic on an offered, unassigned session',
        token: mechanic.token,
        topic: topics.session(offered.sessionId),
        reason: Unauthorized,
      },
      { name: 'customer on requests', token: customer.token, topic: topics.requests, reason: Unauthorized },
      { name: 'no token (anon apikey)', token: null, topic: topics.session(sessionId), reason: Unauthorized },
      { name: 'no token on requests', token: null, topic: topics.requests, reason: Unauthorized },
      { name: 'malformed token', token: 'not-a-jwt', topic: topics.session(sessionId), reason: null },
      {
        name: 'token with a forged signature',
        token: mechanic.token.replace(/\.[^.]*$/, '.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'),
        topic: topics.requests,
        reason: null,
      },
      { name: 'unknown topic', token: customer.token, topic: 'lobby', reason: /^UnknownTopic/ },
      { name: 'unknown chat-like topic', token: customer.token, topic: `chat:session-${sessionId}:typing`, reason: /^UnknownTopic/ },
      { name: 'empty topic name', token: customer.token, topic: '', reason: null },
    ]
    const results = await Promise.allSettled(cases.map((c) => expectRefused(ctx, c)))
    const failures = []
    results.forEach((r, i) => {
      if (r.status === 'rejected') failures.push(`- ${r.reason.message.split('\n')[0]}`)
      else ctx.note(`${cases[i].name}: reason ${JSON.stringify(r.value.payload.response.reason)}`)
    })
    assert.deepEqual(failures, [], `refusals that did not behave:\n${failures.join('\n')}`)
  })
)

test(
  'a nonexistent session topic is refused',
  withClients(server, async (ctx) => {
    const mechanic = await createMechanic(ctx.server)
    const client = await ctx.realtime({ token: mechanic.token })
    const ch = client.channel(topics.session('00000000-0000-4000-8000-000000000000'))
    const out = await subscribeOutcome(ch)
    assert.equal(out.status, 'CHANNEL_ERROR')
  })
)

test(
  'the socket URL carries no token: apikey is ignored, a token in apikey authorizes nothing',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    // A valid access token as apikey and none in the join: refused, the apikey is no credential.
    const c = await ctx.realtime({ apikey: customer.token, name: 'customer (token as apikey)' })
    assert.equal(c.accessTokenValue, null)
    const out = await subscribeOutcome(c.channel(topics.session(sessionId)), { timeout: 12000 })
    assert.equal(out.status, 'CHANNEL_ERROR')
    const refused = c.__log.messages('<').find((x) => x.event === 'phx_reply' && x.payload.status === 'error')
    assert.match(refused.payload.response.reason, /access token is required/)
    // realtime-js given accessToken: the URL holds only the constant apikey, the join the token.
    const m = await ctx.realtime({
      apikey: 'wrenchline',
      accessToken: async () => mechanic.token,
      name: 'mechanic (accessToken)',
    })
    // setAuth() without a token asks the accessToken callback, as realtime-js does on connect.
    await m.setAuth()
    await subscribed(m.channel(topics.session(sessionId)))
    const url = m.__log.entries[0].text
    assert.match(url, /apikey=wrenchline(&|$)/, 'the URL carries the constant apikey')
    assert.ok(!url.includes(mechanic.token), 'the URL carries no token')
    const join = m.__log.messages('>').find((x) => x.event === 'phx_join')
    assert.equal(join.payload.access_token, mechanic.token, 'the join carries the token')
  })
)

test(
  'a topic without the realtime: prefix gets "unmatched topic" (phoenix.js)',
  withClients(server, async (ctx) => {
    const { mechanic, sessionId } = await acceptedPair(ctx.server)
    const socket = ctx.phoenix()
    socket.connect()
    const channel = socket.channel(`chat:session-${sessionId}`, { access_token: mechanic.token })
    const out = await phxOutcome(channel.join())
    assert.equal(out.status, 'error')
    assert.equal(out.response?.reason, 'unmatched topic')
    channel.leave()
    await sleep(50)
  })
)
