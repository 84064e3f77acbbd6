// Rejoin after the server drops the socket: the server process is killed and a new one is started
// on the SAME port and database file; realtime-js must reconnect and resubscribe by itself, and the
// new server must serve the rejoined channels (presence, postgres_changes) as before.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  serverForFile,
  withClients,
  acceptedPair,
  postMessage,
  waitFor,
  presentUserIds,
  presencePayload,
  topics,
  sleep,
} from '../harness.mjs'

const server = serverForFile({ before, after })

/** A chat room whose presence channel (re)tracks on every SUBSCRIBED, like the customer page. */
async function room(ctx, actor, sessionId, name, { trackOnSubscribe = true } = {}) {
  const client = await ctx.realtime({ token: actor.token, name })
  const presence = client.channel(topics.presence(sessionId))
  presence.on('presence', { event: 'sync' }, () => {})
  const chat = client.channel(topics.session(sessionId))
  const messages = []
  const updates = []
  chat.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'messages', filter: `session_id=eq.${sessionId}` }, (p) =>
    messages.push(p)
  )
  chat.on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'sessions', filter: `id=eq.${sessionId}` }, (p) =>
    updates.push(p)
  )
  const statuses = { presence: [], chat: [] }
  presence.subscribe((status, err) => {
    statuses.presence.push(err ? `${status}: ${err.message}` : status)
    if (status === 'SUBSCRIBED' && trackOnSubscribe) presence.track(presencePayload(actor))
  })
  chat.subscribe((status, err) => statuses.chat.push(err ? `${status}: ${err.message}` : status))
  const r = { client, presence, chat, messages, updates, statuses, actor }
  await waitFor(() => statuses.presence.includes('SUBSCRIBED') && statuses.chat.includes('SUBSCRIBED'), {
    timeout: 10000,
    what: `${name}: both channels SUBSCRIBED (${JSON.stringify(statuses)})`,
  })
  return r
}

const subscribedCount = (list) => list.filter((s) => s === 'SUBSCRIBED').length

for (const signal of ['SIGKILL', 'SIGTERM']) {
  test(
    `after the server is killed (${signal}) and restarted on the same port, clients reconnect, rejoin and get events`,
    withClients(server, async (ctx) => {
      const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
      const c = await room(ctx, customer, sessionId, 'customer')
      const m = await room(ctx, mechanic, sessionId, 'mechanic', { trackOnSubscribe: false })
      await waitFor(() => presentUserIds(m.presence.presenceState()).has(customer.id), {
        timeout: 3000,
        what: 'mechanic sees the customer before the restart',
      })
      const first = await postMessage(ctx.server, customer, sessionId, 'before restart')
      await waitFor(() => m.messages.length === 1, { timeout: 3000, what: 'INSERT before the restart' })
      assert.equal(m.messages[0].new.id, first.id)
      const oldAddr = ctx.server.addr

      const t0 = Date.now()
      await server.restart({ signal })
      const stopMs = Date.now() - t0
      ctx.note(`server stopped with ${signal} and restarted in ${stopMs} ms on ${ctx.server.addr}`)
      assert.equal(ctx.server.addr, oldAddr, 'same address')
      if (signal === 'SIGTERM') {
        // The harness escalates to SIGKILL after 5 s; a server that needed it kept the sockets open.
        assert.ok(stopMs < 5000, `graceful stop with open websockets took ${stopMs} ms (harness escalated to SIGKILL)`)
      }

      for (const r of [c, m]) {
        await waitFor(() => subscribedCount(r.statuses.presence) >= 2 && subscribedCount(r.statuses.chat) >= 2, {
          timeout: 20000,
          what: `${r.actor.role}: channels SUBSCRIBED again by themselves (${JSON.stringify(r.statuses)})`,
        })
        assert.ok(r.statuses.chat.some((s) => s.startsWith('CHANNEL_ERROR')), 'the drop was reported as CHANNEL_ERROR')
        const joins = r.client.__log.messages('>').filter((x) => x.event === 'phx_join' && x.topic === `realtime:${topics.session(sessionId)}`)
        assert.ok(joins.length >= 2, 'the chat channel sent a second phx_join')
        const last = joins.at(-1)
        assert.equal(last.payload.access_token, r.actor.token, 'the rejoin carries the access token')
        assert.equal(last.payload.config.postgres_changes.length, 2, 'the rejoin carries the bindings')
      }

      // Presence on the new server: the customer re-tracked on SUBSCRIBED; the mechanic now tracks → live.
      await waitFor(() => presentUserIds(m.presence.presenceState()).has(customer.id), {
        timeout: 5000,
        what: `mechanic sees the re-tracked customer on the new server — state ${JSON.stringify(m.presence.presenceState())}`,
      })
      assert.equal(await m.presence.track(presencePayload(mechanic)), 'ok')
      await waitFor(() => c.updates.some((u) => u.new.status === 'live'), {
        timeout: 3000,
        what: 'the new server starts the session (live UPDATE)',
      })

      const second = await postMessage(ctx.server, mechanic, sessionId, 'after restart')
      await waitFor(() => c.messages.some((e) => e.new.id === second.id), {
        timeout: 3000,
        what: 'INSERT from the new server at the customer',
      })
      assert.equal(c.messages.at(-1).new.seq, 2)
      await sleep(50)
    })
  )
}
