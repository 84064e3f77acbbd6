// The realtime flow through a shipped proxy config (tests/deploy/run.sh starts nginx, then Caddy,
// with TLS on a loopback port in front of the packaged server): a mechanic signs in and watches
// the request feed over a WebSocket upgraded by the proxy, a customer's intake (a browser POST
// with its Origin, port included) is offered, accepted and chatted on, and /metrics stays private.
// Environment: WL_PROXY_BASE (https://127.0.0.1:PORT), WL_PROXY_NAME, WL_DATABASE_URL,
// WRENCHLINE_SERVER_BIN, NODE_EXTRA_CA_CERTS (the certificate the proxy presents, or its CA).

import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  withClients,
  createMechanic,
  createCustomer,
  signWaiver,
  accept,
  postMessage,
  subscribed,
  waitFor,
  topics,
  INTAKE_BODY,
} from '../realtime/harness.mjs'

const base = process.env.WL_PROXY_BASE
const proxy = process.env.WL_PROXY_NAME ?? 'the proxy'
assert.ok(base?.startsWith('https://'), 'WL_PROXY_BASE is the https:// address of the proxy')
// The shape tests/support/server.mjs gives a server it started: here the proxy's address, and
// the database the packaged server uses (mechanics are added to it with the CLI).
const server = {
  base,
  wsBase: base.replace(/^https:/, 'wss:'),
  databaseUrl: process.env.WL_DATABASE_URL,
  db: { url: process.env.WL_DATABASE_URL },
}

const requestsBinding = { event: '*', schema: 'public', table: 'sessions', filter: 'status=eq.pending' }
const messagesBinding = (id) => ({ event: 'INSERT', schema: 'public', table: 'messages', filter: `session_id=eq.${id}` })

test(
  `a request reaches a signed-in mechanic live through ${proxy}, and the chat works`,
  withClients(() => server, async (ctx) => {
    const mechanic = await createMechanic(server, { name: 'Behind The Proxy' })
    const m = await ctx.realtime({ token: mechanic.token, name: `mechanic via ${proxy}` })
    const feed = m.channel(topics.requests)
    const offered = []
    feed.on('postgres_changes', requestsBinding, (p) => offered.push(p))
    await subscribed(feed)

    const customer = await createCustomer(server, { offered: false })
    await signWaiver(server, customer)
    await waitFor(() => offered.some((e) => e.new?.id === customer.sessionId), {
      timeout: 5000,
      what: `the offered request on the feed, over the WebSocket ${proxy} upgraded`,
    })
    await accept(server, mechanic, customer.sessionId)

    const c = await ctx.realtime({ token: customer.token, name: `customer via ${proxy}` })
    const chat = c.channel(topics.session(customer.sessionId))
    const seen = []
    chat.on('postgres_changes', messagesBinding(customer.sessionId), (p) => seen.push(p))
    await subscribed(chat)
    const posted = await postMessage(server, mechanic, customer.sessionId, 'Hello from the garage')
    await waitFor(() => seen.some((e) => e.new?.id === posted.id), {
      timeout: 5000,
      what: "the mechanic's message at the customer",
    })
  })
)

test(`a browser POST with its Origin (non-default port) passes the same-origin check through ${proxy}`, async () => {
  // The proxy keeps the port in Host (nginx: $http_host; with $host this would be 403).
  const res = await fetch(`${base}/api/intake`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: base },
    body: JSON.stringify({ ...INTAKE_BODY, email: `origin-${Date.now()}@example.com` }),
  })
  assert.equal(res.status, 201, await res.text())
})

test(`/metrics is not public through ${proxy}, the web page and /healthz are`, async () => {
  assert.equal((await fetch(`${base}/metrics`)).status, 404)
  assert.equal((await fetch(`${base}/healthz`)).status, 200)
  const page = await fetch(`${base}/intake`)
  assert.equal(page.status, 200)
  assert.match(await page.text(), /<html/i, 'the embedded web UI is served')
})
