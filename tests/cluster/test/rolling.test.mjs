// A rolling restart under live sessions: every node in turn is stopped with SIGTERM (it drains:
// /readyz 503 first, as this test watches, then realtime clients closed with a reason to
// reconnect, HTTP in flight finished) and
// started again, while both participants of three sessions keep posting. Every message the server
// acknowledged reaches the other participant.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { clusterForFile, withCluster, livePair, waitDelivered, sleep, support } from '../harness.mjs'

const cluster = clusterForFile({ before, after })

/** Posts through `first`, else through the next node that answers; the stored message or null. */
async function postAnywhere(nodes, first, actor, sessionId, body) {
  const clientId = crypto.randomUUID()
  for (let k = 0; k < nodes.length; k++) {
    const node = nodes[(first + k) % nodes.length]
    try {
      const auth = actor.role === 'customer' ? { cookie: actor.cookie } : { token: actor.token }
      const res = await support.request(node, 'POST', `/api/sessions/${sessionId}/messages`, {
        ...auth,
        body: { body, client_id: clientId },
      })
      if (res.status === 201 || res.status === 200) return res.body
    } catch {
      // The node is down or draining: the next one.
    }
  }
  return null
}

test(
  'SIGTERM and restart of each node in turn under live sessions: every acknowledged message is delivered',
  withCluster(cluster, async (ctx, c) => {
    const n = c.nodes.length
    const pairs = []
    for (let i = 0; i < n; i++) pairs.push({ ...(await livePair(ctx, c.node(i), c.node((i + 1) % n))), home: i })
    const acked = new Map(pairs.map((p) => [p.sessionId, []]))
    let running = true
    let attempts = 0
    const senders = pairs.flatMap((p) =>
      [
        [p.customer, p.home],
        [p.mechanic, (p.home + 1) % n],
      ].map(async ([actor, home], who) => {
        for (let i = 0; running; i++) {
          attempts += 1
          const stored = await postAnywhere(c.nodes, home, actor, p.sessionId, `${actor.role} ${i}`)
          if (stored) acked.get(p.sessionId).push(stored)
          await sleep(150 + who * 20)
        }
      }),
    )

    for (let i = 0; i < n; i++) {
      await sleep(1500)
      // /readyz is watched while the node stops: it must turn 503 (draining) before the node
      // goes, so that a load balancer stops sending it clients first.
      const seen = []
      let watching = true
      const watcher = (async () => {
        while (watching) {
          const r = await c.readyz(i)
          seen.push(r)
          if (r.status === 0) break
          await sleep(50)
        }
      })()
      const stopped = await c.stopNode(i, 'SIGTERM')
      watching = false
      await watcher
      ctx.note(`node-${i + 1} stopped: code ${stopped.code}, signal ${stopped.signal}`)
      assert.equal(stopped.code, 0, `node-${i + 1} drains and exits cleanly on SIGTERM`)
      assert.ok(
        seen.some((r) => r.status === 503 && r.body?.draining === true),
        `node-${i + 1}: /readyz said 503 draining before it stopped: ${JSON.stringify(seen.map((r) => r.status))}`,
      )
      await c.restartNode(i)
      const ready = await c.waitReady(i, 200, 20000)
      ctx.note(`node-${i + 1} ready again after ${ready.ms} ms`)
    }
    await sleep(1500)
    running = false
    await Promise.all(senders)

    let total = 0
    for (const p of pairs) {
      const sent = acked.get(p.sessionId)
      total += sent.length
      assert.ok(sent.length > 10, `session ${p.sessionId}: messages were acknowledged (${sent.length})`)
      const fromCustomer = sent.filter((m) => m.sender_id === p.customer.id)
      const fromMechanic = sent.filter((m) => m.sender_id === p.mechanic.id)
      await waitDelivered(p.m, fromCustomer, { timeout: 30000 })
      await waitDelivered(p.c, fromMechanic, { timeout: 30000 })
    }
    ctx.note(`${total} acknowledged messages of ${attempts} attempts, all delivered`)
  }),
)
