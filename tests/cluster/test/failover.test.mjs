// A node dies without a word (kill -9): the survivors remove its presences and publish the leaves
// within 15 s, the mechanic comes back through another node, the session's end does not move and
// the chat goes on both ways.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { clusterForFile, withCluster, sessionOn, postOn, openRoom, livePair, waitDelivered, waitFor } from '../harness.mjs'

const cluster = clusterForFile({ before, after })

test(
  'kill -9 of the node holding the mechanic: leave within 15 s, back through another node, ends_at unchanged',
  withCluster(cluster, async (ctx, c) => {
    const [n1, n2, n3] = c.nodes
    const { customer, mechanic, sessionId: sid, c: cr } = await livePair(ctx, n1, n2)
    const before = await sessionOn(n1, customer, sid)
    assert.equal(before.status, 'live')
    await waitFor(() => cr.present().has(mechanic.id), { timeout: 5000, what: 'the customer sees the mechanic' })

    const killedAt = Date.now()
    await c.kill(1)
    await waitFor(() => !cr.present().has(mechanic.id), {
      timeout: 15000,
      interval: 50,
      what: 'the mechanic gone from the customer’s presence within 15 s of kill -9',
    })
    const leftAfter = Date.now() - killedAt
    ctx.note(`leave seen by the customer ${leftAfter} ms after kill -9`)
    assert.ok(cr.leaves.some((l) => l.user_id === mechanic.id), 'a presence_diff leave for the mechanic')

    const back = await openRoom(ctx, n3, mechanic, sid, 'mechanic@node-3')
    await waitFor(() => cr.present().has(mechanic.id), { timeout: 5000, what: 'the customer sees the mechanic back through node 3' })
    assert.ok(back.present().has(customer.id), 'the mechanic on node 3 sees the customer on node 1')
    const afterMove = await sessionOn(n3, mechanic, sid)
    assert.equal(afterMove.status, 'live')
    assert.equal(afterMove.ends_at, before.ends_at, 'ends_at never moves when a participant changes node')
    assert.equal(afterMove.started_at, before.started_at)

    const fromCustomer = await postOn(n1, customer, sid, 'are you still there?')
    await waitDelivered(back, [fromCustomer], { timeout: 5000 })
    const fromMechanic = await postOn(n3, mechanic, sid, 'yes, through another server')
    await waitDelivered(cr, [fromMechanic], { timeout: 5000 })

    await c.restartNode(1)
    await c.waitReady(1, 200)
    assert.equal((await sessionOn(n2, customer, sid)).ends_at, before.ends_at)
  }),
)
