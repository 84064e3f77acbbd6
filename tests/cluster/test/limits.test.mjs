// Limits that protect accounts hold across the cluster: sign-in failures for one account from one
// address are counted together whichever node they reach.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { clusterForFile, withCluster, LIMITS, support } from '../harness.mjs'

const cluster = clusterForFile({ before, after })

test(
  'sign-in failures spread over every node lock the account out on every node',
  withCluster(cluster, async (_ctx, c) => {
    const account = await support.addMechanic(c.node(0))
    const limit = LIMITS.login_failures_per_account_and_address_per_minute
    for (let i = 0; i < limit; i++) {
      const node = c.node(i % c.nodes.length)
      const res = await support.request(node, 'POST', '/api/auth/login', { body: { email: account.email, password: 'wrong password' } })
      assert.equal(res.status, 401, `failure ${i + 1} on ${node.nodeId}: ${res.status} ${JSON.stringify(res.body)}`)
    }
    for (const node of c.nodes) {
      const res = await support.request(node, 'POST', '/api/auth/login', { body: { email: account.email, password: account.password } })
      assert.equal(res.status, 429, `${node.nodeId} refuses even the right password after ${limit} failures spread over the nodes`)
      assert.ok(Number(res.headers.get('retry-after')) > 0, 'with Retry-After')
    }
    const other = await support.addMechanic(c.node(1))
    const ok = await support.request(c.node(2), 'POST', '/api/auth/login', { body: { email: other.email, password: other.password } })
    assert.equal(ok.status, 200, 'another account still signs in')
  }),
)
