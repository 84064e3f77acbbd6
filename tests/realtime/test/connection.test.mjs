// Connection-level behaviour: heartbeats (both vsn values) and a vsn 1.0.0 client doing the
// whole chat-room job (join, presence, postgres_changes) in JSON-object frames.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  serverForFile,
  withClients,
  acceptedPair,
  postMessage,
  subscribed,
  waitFor,
  presentUserIds,
  presencePayload,
  topics,
  sleep,
} from '../harness.mjs'

const server = serverForFile({ before, after })

for (const vsn of ['2.0.0', '1.0.0']) {
  test(
    `heartbeats are answered ok (vsn ${vsn})`,
    withClients(server, async (ctx) => {
      const statuses = []
      const client = await ctx.realtime({
        vsn,
        name: `heartbeat vsn ${vsn}`,
        heartbeatIntervalMs: 150,
        heartbeatCallback: (status, latency) => statuses.push({ status, latency }),
      })
      client.connect()
      await waitFor(() => statuses.filter((s) => s.status === 'ok').length >= 3, {
        timeout: 5000,
        what: `3 heartbeat "ok" callbacks (got ${JSON.stringify(statuses.map((s) => s.status))})`,
      })
      const bad = statuses.filter((s) => !['sent', 'ok'].includes(s.status))
      assert.deepEqual(bad, [], 'no heartbeat error/timeout')
      const ok = statuses.find((s) => s.status === 'ok')
      assert.equal(typeof ok.latency, 'number')
      const sent = client.__log.messages('>').filter((m) => m.topic === 'phoenix' && m.event === 'heartbeat')
      const replies = client.__log.messages('<').filter((m) => m.topic === 'phoenix' && m.event === 'phx_reply')
      assert.ok(sent.length >= 3)
      for (const r of replies.slice(0, 3)) {
        assert.ok(sent.some((s) => s.ref === r.ref), `reply ref ${r.ref} matches a heartbeat`)
        assert.equal(r.payload.status, 'ok')
        assert.deepEqual(r.payload.response, {})
        if (vsn === '2.0.0') assert.equal(r.join_ref, null, 'heartbeat replies have join_ref null')
      }
      assert.ok(client.isConnected(), 'still connected after several heartbeats')
    })
  )
}

test(
  'vsn 1.0.0: join, presence and postgres_changes all work in JSON-object frames',
  withClients(server, async (ctx) => {
    const { customer, mechanic, sessionId } = await acceptedPair(ctx.server)
    const c = await ctx.realtime({ token: customer.token, vsn: '1.0.0', name: 'customer vsn1' })
    const m = await ctx.realtime({ token: mechanic.token, vsn: '2.0.0', name: 'mechanic vsn2' })
    const cp = c.channel(topics.presence(sessionId))
    cp.on('presence', { event: 'sync' }, () => {})
    const cc = c.channel(topics.session(sessionId))
    const inserts = []
    cc.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'messages', filter: `session_id=eq.${sessionId}` }, (p) =>
      inserts.push(p)
    )
    const mp = m.channel(topics.presence(sessionId))
    mp.on('presence', { event: 'sync' }, () => {})
    await Promise.all([subscribed(cp), subscribed(cc), subscribed(mp)])
    assert.equal(await mp.track(presencePayload(mechanic)), 'ok')
    assert.equal(await cp.track(presencePayload(customer)), 'ok')
    await waitFor(
      () => presentUserIds(cp.presenceState()).size === 2 && presentUserIds(mp.presenceState()).size === 2,
      { timeout: 3000, what: 'both clients see both users' }
    )
    const msg = await postMessage(ctx.server, mechanic, sessionId, 'vsn1 works?')
    await waitFor(() => inserts.length === 1, { timeout: 3000, what: 'vsn 1 client receives the INSERT' })
    assert.equal(inserts[0].new.id, msg.id)

    for (const e of c.__log.received()) {
      assert.ok(!e.binary, 'no binary frames to vsn 1')
      const v = JSON.parse(e.text)
      assert.ok(!Array.isArray(v) && typeof v === 'object', `vsn 1 server frame must be a JSON object: ${e.text}`)
      assert.ok('topic' in v && 'event' in v && 'payload' in v && 'ref' in v, `vsn 1 frame fields: ${e.text}`)
    }
    for (const e of m.__log.received()) {
      if (!e.binary) assert.ok(Array.isArray(JSON.parse(e.text)), `vsn 2 text frames are arrays: ${e.text}`)
    }
  })
)

test(
  'a missing vsn is treated as 1.0.0 (raw ws; docs/realtime-protocol.md §8.1)',
  withClients(server, async (ctx) => {
    const { default: WebSocket } = await import('ws')
    const ws = new WebSocket(`${ctx.server.wsBase}/realtime/v1/websocket?apikey=x`)
    const frames = []
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    ws.on('message', (d, bin) => frames.push({ bin, text: bin ? null : d.toString() }))
    ws.send(JSON.stringify({ topic: 'phoenix', event: 'heartbeat', payload: {}, ref: '1' }))
    await waitFor(() => frames.length >= 1, { timeout: 3000, what: 'a heartbeat reply' })
    ws.close()
    const reply = JSON.parse(frames[0].text)
    assert.equal(reply.topic, 'phoenix')
    assert.equal(reply.event, 'phx_reply')
    assert.equal(reply.ref, '1')
    assert.deepEqual(reply.payload, { status: 'ok', response: {} })
    await sleep(20)
  })
)
