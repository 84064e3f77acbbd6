// The seed's flow with the customer and the mechanic on different nodes: presence across nodes,
// the live start decided on the shared presence (once, even when both track at the same moment on
// two nodes), chat both ways exactly once and in order, the accept race over every node, and
// realtime-js's HTTP broadcast reaching a subscriber on another node.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  clusterForFile,
  withCluster,
  customerOn,
  mechanicOn,
  acceptOn,
  sessionOn,
  postOn,
  openRoom,
  livePair,
  waitDelivered,
  assertExactlyOnceInOrder,
  waitFor,
  sleep,
  support,
} from '../harness.mjs'

const cluster = clusterForFile({ before, after })

test(
  'every node is ready and accepts the tokens of every other node',
  withCluster(cluster, async (_ctx, c) => {
    for (let i = 0; i < c.nodes.length; i++) {
      const r = await c.waitReady(i, 200)
      assert.equal(typeof r.body, 'object', `/readyz of node ${i + 1} answers JSON: ${JSON.stringify(r.body)}`)
    }
    const mechanic = await mechanicOn(c.node(0))
    for (const node of c.nodes) {
      await support.expectStatus(node, 'GET', '/api/requests', 200, { token: mechanic.token })
    }
  }),
)

test(
  'customer on node 1, mechanic on node 2: presence across nodes, live once, chat both ways exactly once and in order',
  withCluster(cluster, async (ctx, c) => {
    const [n1, n2, n3] = c.nodes
    const customer = await customerOn(n1)
    const mechanic = await mechanicOn(n2)
    const sid = customer.sessionId
    const cr = await openRoom(ctx, n1, customer, sid, 'customer')
    await waitFor(() => cr.present().has(customer.id), { timeout: 5000, what: 'the customer sees itself' })
    const accepted = await acceptOn(n3, mechanic, sid)
    assert.equal(accepted.status, 200, JSON.stringify(accepted.body))
    await waitFor(() => cr.updates.some((u) => u.status === 'waiting' && u.mechanic_id === mechanic.id), {
      timeout: 5000,
      what: 'the acceptance made on node 3 reaches the customer on node 1',
    })
    await sleep(500)
    assert.equal((await sessionOn(n1, customer, sid)).status, 'waiting', 'no live start while the mechanic is absent')

    const mr = await openRoom(ctx, n2, mechanic, sid, 'mechanic')
    await waitFor(() => mr.present().has(customer.id), { timeout: 5000, what: 'the mechanic on node 2 sees the customer on node 1' })
    await waitFor(() => cr.present().has(mechanic.id), { timeout: 5000, what: 'the customer on node 1 sees the mechanic on node 2' })
    await waitFor(() => cr.updates.some((u) => u.status === 'live') && mr.updates.some((u) => u.status === 'live'), {
      timeout: 5000,
      what: 'the live UPDATE at both participants',
    })
    const session = await sessionOn(n3, mechanic, sid)
    assert.equal(session.status, 'live')
    assert.equal(cr.updates.filter((u) => u.status === 'live').length, 1, 'one live UPDATE at the customer')
    assert.equal(mr.updates.filter((u) => u.status === 'live').length, 1, 'one live UPDATE at the mechanic')

    const acked = []
    for (let i = 0; i < 15; i++) {
      acked.push(await postOn(n1, customer, sid, `customer ${i}`))
      acked.push(await postOn(n2, mechanic, sid, `mechanic ${i}`))
    }
    for (const room of [cr, mr]) {
      await waitFor(() => room.live.length >= acked.length, {
        timeout: 10000,
        what: `${room.name}: ${acked.length} messages over postgres_changes (has ${room.live.length})`,
      })
      await waitDelivered(room, acked)
      await sleep(300)
      assertExactlyOnceInOrder(assert, room)
      assert.equal(room.live.length, acked.length, `${room.name}: nothing more than what was posted`)
    }
  }),
)

test(
  'both participants track at the same moment on two nodes: one live transition, one started_at',
  withCluster(cluster, async (ctx, c) => {
    for (let round = 0; round < 3; round++) {
      const customer = await customerOn(c.node(0))
      const mechanic = await mechanicOn(c.node(1))
      const sid = customer.sessionId
      assert.equal((await acceptOn(c.node(1), mechanic, sid)).status, 200)
      // Both join without tracking, then track together.
      const cr = await openRoom(ctx, c.node(0), customer, sid, `customer#${round}`, { track: false })
      const mr = await openRoom(ctx, c.node(1), mechanic, sid, `mechanic#${round}`, { track: false })
      const [a, b] = await Promise.all([
        cr.presence.track({ user_id: customer.id, role: 'customer', online_at: new Date().toISOString() }),
        mr.presence.track({ user_id: mechanic.id, role: 'mechanic', online_at: new Date().toISOString() }),
      ])
      assert.deepEqual([a, b], ['ok', 'ok'])
      await waitFor(() => cr.updates.some((u) => u.status === 'live') && mr.updates.some((u) => u.status === 'live'), {
        timeout: 5000,
        what: 'the live UPDATE at both participants',
      })
      await sleep(1000)
      const lives = [...cr.updates, ...mr.updates].filter((u) => u.status === 'live')
      assert.equal(cr.updates.filter((u) => u.status === 'live').length, 1, 'one live UPDATE at the customer')
      assert.equal(mr.updates.filter((u) => u.status === 'live').length, 1, 'one live UPDATE at the mechanic')
      assert.equal(new Set(lives.map((u) => u.started_at)).size, 1, 'one started_at')
      const stored = await sessionOn(c.node(2), customer, sid)
      assert.equal(Date.parse(stored.started_at), Date.parse(lives[0].started_at))
      await cr.client.removeAllChannels()
      await mr.client.removeAllChannels()
    }
  }),
)

test(
  'the accept race with contenders on every node: exactly one mechanic wins',
  withCluster(cluster, async (_ctx, c) => {
    const perNode = 3
    for (let round = 0; round < 3; round++) {
      const customer = await customerOn(c.node(round % c.nodes.length))
      const contenders = []
      for (const node of c.nodes) for (let i = 0; i < perNode; i++) contenders.push({ node, mechanic: await mechanicOn(node) })
      const answers = await Promise.all(contenders.map(({ node, mechanic }) => acceptOn(node, mechanic, customer.sessionId)))
      const winners = contenders.filter((_, i) => answers[i].status === 200)
      assert.equal(winners.length, 1, `exactly one 200, got ${answers.map((a) => a.status).join(',')}`)
      for (const a of answers) assert.ok(a.status === 200 || a.status === 409, `a loser gets 409, got ${a.status} ${JSON.stringify(a.body)}`)
      for (const node of c.nodes) {
        const s = await sessionOn(node, customer, customer.sessionId)
        assert.equal(s.mechanic_id, winners[0].mechanic.id, `node ${node.nodeId} names the winner`)
      }
    }
  }),
)

test(
  "realtime-js's HTTP broadcast through one node reaches a subscriber on another",
  withCluster(cluster, async (ctx, c) => {
    const { customer, mechanic, sessionId, c: cr } = await livePair(ctx, c.node(0), c.node(1))
    const got = []
    // The customer's chat channel gets a broadcast listener on a fresh client on node 1.
    const client = await ctx.realtime({ token: customer.token, name: 'customer-broadcast', server: c.node(0) })
    const channel = client.channel(`chat:session-${sessionId}`, { config: { broadcast: { self: false } } })
    channel.on('broadcast', { event: 'typing' }, (m) => got.push(m))
    await new Promise((resolve, reject) => {
      channel.subscribe((status, err) => (status === 'SUBSCRIBED' ? resolve() : status !== 'CLOSED' && err ? reject(err) : null))
    })
    const res = await support.request(c.node(2), 'POST', '/realtime/v1/api/broadcast', {
      token: mechanic.token,
      body: { messages: [{ topic: `chat:session-${sessionId}`, event: 'typing', payload: { typing: true, by: mechanic.id } }] },
    })
    assert.ok(res.status >= 200 && res.status < 300, `HTTP broadcast on node 3: ${res.status} ${JSON.stringify(res.body)}`)
    await waitFor(() => got.length === 1, { timeout: 5000, what: 'the broadcast at the customer on node 1' })
    assert.equal(got[0].payload.by, mechanic.id)
    await sleep(500)
    assert.equal(got.length, 1, 'exactly once')
    const outsider = await mechanicOn(c.node(2))
    const refused = await support.request(c.node(2), 'POST', '/realtime/v1/api/broadcast', {
      token: outsider.token,
      body: { messages: [{ topic: `chat:session-${sessionId}`, event: 'typing', payload: {} }] },
    })
    assert.ok(refused.status === 403 || refused.status === 404, `a non-participant is refused: ${refused.status}`)
    assert.ok(cr.present().has(mechanic.id))
  }),
)
