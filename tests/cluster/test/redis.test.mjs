// Redis killed and started again under a live session: every node reports 503 on /readyz within
// 10 s and keeps its clients' sockets open; HTTP that needs only the database goes on; once Redis
// is back the nodes report 200, presence and delivery come back without any client reloading, and
// a message committed while Redis was away reaches the other participant.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { clusterForFile, withCluster, postOn, openRoom, livePair, waitDelivered, waitFor, support } from '../harness.mjs'

const cluster = clusterForFile({ before, after })
/** /readyz follows the bus within 10 s; polling adds up to a tenth of a second. */
const READY_WITHIN_MS = 10000 + 500

test(
  'Redis killed and restarted: /readyz 503 then 200, sockets kept, then delivery and presence back without reload',
  withCluster(cluster, async (ctx, c) => {
    const redis = support.testRedis()
    const [n1, n2, n3] = c.nodes
    const { customer, mechanic, sessionId: sid, c: cr, m: mr } = await livePair(ctx, n1, n2)
    await waitFor(() => cr.present().has(mechanic.id) && mr.present().has(customer.id), { timeout: 5000, what: 'both present' })

    await redis.kill()
    const down = await Promise.all(c.nodes.map((_, i) => c.waitReady(i, 503, READY_WITHIN_MS + 2000)))
    for (const [i, r] of down.entries()) {
      ctx.note(`node-${i + 1}: /readyz 503 after ${r.ms} ms: ${JSON.stringify(r.body)}`)
      assert.ok(r.ms <= READY_WITHIN_MS, `node-${i + 1} reported 503 after ${r.ms} ms`)
      assert.equal(typeof r.body, 'object', '/readyz names its dependencies in JSON')
    }
    assert.ok(cr.client.isConnected() && mr.client.isConnected(), 'the clients’ sockets stay open')
    const health = await support.request(n1, 'GET', '/healthz')
    assert.equal(health.status, 200, '/healthz stays liveness')
    const during = await postOn(n1, customer, sid, 'sent while Redis was away')

    await redis.start()
    const up = await Promise.all(c.nodes.map((_, i) => c.waitReady(i, 200, READY_WITHIN_MS + 5000)))
    for (const [i, r] of up.entries()) {
      ctx.note(`node-${i + 1}: /readyz 200 again after ${r.ms} ms`)
      assert.ok(r.ms <= READY_WITHIN_MS, `node-${i + 1} reported 200 after ${r.ms} ms`)
    }
    await waitDelivered(mr, [during], { timeout: 15000 })

    await waitFor(() => cr.present().has(mechanic.id) && mr.present().has(customer.id), {
      timeout: 15000,
      what: 'both still present to each other',
    })
    // A newcomer on a third node sees both: the shared presence was rebuilt in the new Redis.
    const tab = await openRoom(ctx, n3, customer, sid, 'customer-second-tab', { track: false })
    await waitFor(() => tab.present().has(mechanic.id) && tab.present().has(customer.id), {
      timeout: 15000,
      what: 'a client on node 3 sees both participants after Redis came back',
    })

    const m1 = await postOn(n2, mechanic, sid, 'after Redis came back (mechanic)')
    const m2 = await postOn(n1, customer, sid, 'after Redis came back (customer)')
    await waitDelivered(cr, [m1], { timeout: 10000 })
    await waitDelivered(mr, [m2], { timeout: 10000 })
    await waitFor(() => tab.live.some((m) => m.id === m1.id), { timeout: 10000, what: 'delivery to node 3 over the bus' })
  }),
)
