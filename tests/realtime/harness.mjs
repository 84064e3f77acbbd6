// Test harness for the realtime conformance suite: starts the real wrenchline-server binary,
// creates actors through its HTTP API and CLI, and wraps the unmodified npm clients
// (@supabase/realtime-js, phoenix) with a frame-logging `ws` transport so that a failing test
// can show exactly which frames went out and came back.

import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { RealtimeClient } from '@supabase/realtime-js'
import { Socket as PhoenixSocket } from 'phoenix'
import * as support from '../support/server.mjs'

export { sleep }

export const PASSWORD = support.PASSWORD

export const INTAKE_BODY = support.INTAKE

/** The server binary: $WRENCHLINE_SERVER_BIN, else the debug build in Cargo's target directory. */
export const serverBinary = support.serverBinary

// ---------------------------------------------------------------------------------------------
// Server process (tests/support/server.mjs)
// ---------------------------------------------------------------------------------------------

/** A fresh SQLite database file for one test file (removed by `cleanupDatabase`). */
export function freshDatabase() {
  return support.freshDatabase({ prefix: 'wl-rt' })
}

export function cleanupDatabase(db) {
  db.cleanup()
}

/**
 * Starts `wrenchline-server serve` and resolves once it is ready (its `--ready-file`).
 * Options: db ({file,url} from `freshDatabase`), bind (default 127.0.0.1:0), extraArgs.
 * The server has `addr`, `base`, `wsBase`, `db`, `logs`, `tail(n)`, `stop(signal)`.
 */
export async function startServer({ db = freshDatabase(), bind = '127.0.0.1:0', extraArgs = [] } = {}) {
  const server = await support.startServer({ database: db, bind, args: extraArgs })
  server.db = db
  return server
}

/** Runs a `wrenchline-server` subcommand to completion; resolves {code, stdout, stderr}. */
export const runCli = support.runCli

// ---------------------------------------------------------------------------------------------
// HTTP API
// ---------------------------------------------------------------------------------------------

/**
 * One HTTP call. `auth` is {token} (Bearer) or {cookie} (customer identity cookie) or null.
 * Resolves {status, body, headers}.
 */
export function api(server, method, pathname, { auth = null, body } = {}) {
  return support.request(server, method, pathname, { token: auth?.token, cookie: auth?.cookie, body })
}

async function expectStatus(promise, expected, what) {
  const res = await promise
  if (res.status !== expected) {
    throw new Error(`${what}: expected HTTP ${expected}, got ${res.status} ${JSON.stringify(res.body)}`)
  }
  return res.body
}

/** Creates a mechanic with the CLI and signs it in. Returns {id, email, name, token, refresh, user}. */
export function createMechanic(server, { name } = {}) {
  return support.createMechanic(server, { name })
}

/** A fresh access token for a mechanic (rotating refresh). */
export async function refreshMechanic(server, mechanic) {
  const body = await expectStatus(
    api(server, 'POST', '/api/auth/refresh', { body: { refresh_token: mechanic.refresh } }),
    200,
    'POST /api/auth/refresh'
  )
  mechanic.token = body.access_token
  mechanic.refresh = body.refresh_token ?? mechanic.refresh
  return body.access_token
}

/**
 * A new customer with a pending session (intake). Options: offered (sign the waiver; default true).
 * Returns {id, user, cookie, token, sessionId, session}.
 */
export function createCustomer(server, { offered = true, name = 'Dana Driver' } = {}) {
  return support.createCustomerSession(server, { intake: { name }, waiver: offered })
}

export async function signWaiver(server, customer, sessionId = customer.sessionId) {
  const body = await expectStatus(
    api(server, 'POST', `/api/sessions/${sessionId}/waiver`, {
      auth: { cookie: customer.cookie },
      body: { signed_name: customer.user.name, agree: true },
    }),
    200,
    'POST /api/sessions/{id}/waiver'
  )
  return body.session
}

/** The customer's realtime access token (POST /api/auth/token with the cookie). */
export async function customerToken(server, customer) {
  const body = await expectStatus(
    api(server, 'POST', '/api/auth/token', { auth: { cookie: customer.cookie } }),
    200,
    'POST /api/auth/token'
  )
  customer.token = body.access_token
  customer.expiresIn = body.expires_in
  return body.access_token
}

export async function accept(server, mechanic, sessionId) {
  return expectStatus(
    api(server, 'POST', `/api/sessions/${sessionId}/accept`, { auth: { token: mechanic.token } }),
    200,
    'POST /api/sessions/{id}/accept'
  )
}

export async function getSession(server, actor, sessionId) {
  return expectStatus(
    api(server, 'GET', `/api/sessions/${sessionId}`, { auth: authOf(actor) }),
    200,
    'GET /api/sessions/{id}'
  )
}

export async function postMessage(server, actor, sessionId, body, clientId = randomUUID()) {
  return expectStatus(
    api(server, 'POST', `/api/sessions/${sessionId}/messages`, {
      auth: authOf(actor),
      body: { body, client_id: clientId },
    }),
    201,
    'POST /api/sessions/{id}/messages'
  )
}

export function authOf(actor) {
  if (actor.role === 'customer') return { cookie: actor.cookie }
  return { token: actor.token }
}

/** A customer with an offered session, accepted by a new mechanic (status `waiting`). */
export async function acceptedPair(server) {
  const customer = await createCustomer(server)
  const mechanic = await createMechanic(server)
  await accept(server, mechanic, customer.sessionId)
  return { customer, mechanic, sessionId: customer.sessionId }
}

// ---------------------------------------------------------------------------------------------
// Frame log
// ---------------------------------------------------------------------------------------------

function decodeBinary(buf) {
  decodeBinary.last = null
  const u8 = new Uint8Array(buf)
  const kind = u8[0]
  const td = new TextDecoder()
  try {
    if (kind === 3) {
      const [jl, rl, tl, el, ml, enc] = u8.slice(1, 7)
      let o = 7
      const take = (n) => {
        const s = td.decode(u8.slice(o, o + n))
        o += n
        return s
      }
      const joinRef = take(jl)
      const ref = take(rl)
      const topic = take(tl)
      const event = take(el)
      const meta = take(ml)
      const payload = enc === 1 ? td.decode(u8.slice(o)) : `<${u8.length - o} bytes>`
      decodeBinary.last = { kind, join_ref: joinRef, ref, topic, event, meta, enc, payload }
      return `BIN kind=3 join_ref=${joinRef} ref=${ref} topic=${topic} event=${event} meta=${meta || '-'} enc=${enc} payload=${payload}`
    }
    if (kind === 4) {
      const [tl, el, ml, enc] = u8.slice(1, 5)
      let o = 5
      const take = (n) => {
        const s = td.decode(u8.slice(o, o + n))
        o += n
        return s
      }
      const topic = take(tl)
      const event = take(el)
      const meta = take(ml)
      const payload = enc === 1 ? td.decode(u8.slice(o)) : `<${u8.length - o} bytes>`
      decodeBinary.last = { kind, topic, event, meta, enc, payload }
      return `BIN kind=4 topic=${topic} event=${event} meta=${meta || '-'} enc=${enc} payload=${payload}`
    }
  } catch {}
  return `BIN kind=${kind} hex=${Buffer.from(u8).toString('hex').slice(0, 200)}`
}

/** A per-client log of WebSocket frames: entries {t, dir: '>'|'<'|'*', binary, text, kind}. */
export class FrameLog {
  constructor(name) {
    this.name = name
    this.entries = []
    this.start = Date.now()
    this.listeners = new Set()
  }
  push(entry) {
    entry.t = Date.now() - this.start
    this.entries.push(entry)
    if (this.entries.length > 3000) this.entries.splice(0, 1000)
    for (const l of this.listeners) l(entry)
  }
  received() {
    return this.entries.filter((e) => e.dir === '<')
  }
  sent() {
    return this.entries.filter((e) => e.dir === '>')
  }
  /** Parsed JSON of text frames in direction dir, normalised to {join_ref, ref, topic, event, payload}. */
  messages(dir = '<') {
    const out = []
    for (const e of this.entries) {
      if (e.dir !== dir || e.binary) continue
      const m = parseText(e.text)
      if (m) out.push(m)
    }
    return out
  }
  dump(max = 60) {
    const lines = this.entries.slice(-max).map((e) => {
      const body = e.binary ? e.text : e.text.length > 600 ? e.text.slice(0, 600) + '…' : e.text
      return `  ${String(e.t).padStart(6)}ms ${e.dir} ${body}`
    })
    const skipped = this.entries.length > max ? `  … (${this.entries.length - max} earlier frames)\n` : ''
    return `--- frames of ${this.name} ---\n${skipped}${lines.join('\n')}`
  }
}

export function parseText(text) {
  let v
  try {
    v = JSON.parse(text)
  } catch {
    return null
  }
  if (Array.isArray(v)) {
    const [join_ref, ref, topic, event, payload] = v
    return { join_ref, ref, topic, event, payload }
  }
  if (v && typeof v === 'object') return { join_ref: v.join_ref, ref: v.ref, topic: v.topic, event: v.event, payload: v.payload }
  return null
}

/** A `ws` WebSocket subclass that records every frame into `log`. */
export function loggingTransport(log) {
  return class LoggingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols)
      log.push({ dir: '*', text: `CONNECT ${url}` })
      this.on('open', () => log.push({ dir: '*', text: 'OPEN' }))
      this.on('close', (code, reason) => log.push({ dir: '*', text: `CLOSE ${code} ${reason}` }))
      this.on('error', (err) => log.push({ dir: '*', text: `ERROR ${err.message}` }))
      this.on('unexpected-response', (_req, res) =>
        log.push({ dir: '*', text: `UNEXPECTED RESPONSE HTTP ${res.statusCode}` })
      )
      this.on('message', (data, isBinary) => {
        if (isBinary) {
          const buf = data instanceof ArrayBuffer ? data : Buffer.isBuffer(data) ? data : Buffer.concat(data)
          const text = decodeBinary(buf)
          log.push({ dir: '<', binary: true, kind: new Uint8Array(buf)[0], text, fields: decodeBinary.last })
        } else {
          const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data).toString('utf8')
          log.push({ dir: '<', binary: false, text })
        }
      })
    }
    send(data, ...rest) {
      if (typeof data === 'string') log.push({ dir: '>', binary: false, text: data })
      else {
        const buf = data instanceof ArrayBuffer ? data : data.buffer ? data : Buffer.from(data)
        const text = decodeBinary(buf)
        log.push({ dir: '>', binary: true, kind: new Uint8Array(buf)[0], text, fields: decodeBinary.last })
      }
      return super.send(data, ...rest)
    }
  }
}

/** Resolves `promise`, or undefined after `ms`, without leaving a timer behind. */
export async function withTimeout(promise, ms) {
  let timer
  try {
    return await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))])
  } catch {
    return undefined
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Leaves every channel and closes the socket of a realtime-js client.
 *
 * `RealtimeClient.disconnect()` (and `removeAllChannels()`, which calls it) arms a 10 s timer in
 * realtime-js 2.119's SocketAdapter.disconnect that is never cleared, which keeps a test process
 * alive for 10 s after its last test. The socket is therefore closed through the same
 * SocketAdapter.disconnect with its own timeout argument set to 0; the wire behaviour (a client
 * close of the WebSocket) is the same.
 */
export async function closeRealtime(client) {
  for (const ch of [...client.getChannels()]) {
    await withTimeout(ch.unsubscribe(1000), 1500)
    ch.teardown()
  }
  if (typeof client._cancelPendingDisconnect === 'function') client._cancelPendingDisconnect()
  const adapter = client.socketAdapter
  if (adapter && typeof adapter.disconnect === 'function') {
    await withTimeout(adapter.disconnect(() => {}, undefined, undefined, 0), 1000)
  } else {
    await withTimeout(client.disconnect(), 1000)
  }
}

/** Drops a realtime-js client's socket without leaving its channels (a closed tab). */
export async function dropConnection(client) {
  if (typeof client._cancelPendingDisconnect === 'function') client._cancelPendingDisconnect()
  const adapter = client.socketAdapter
  await withTimeout(adapter.disconnect(() => {}, undefined, undefined, 0), 1000)
  await waitFor(() => !client.isConnected(), { timeout: 2000, what: 'socket closed' })
}

// ---------------------------------------------------------------------------------------------
// Per-test context: owns clients and dumps their frames when the test fails
// ---------------------------------------------------------------------------------------------

/**
 * Wraps a node:test body. `fn(ctx)` gets a context whose clients are disconnected afterwards; if
 * the body throws, the error message is extended with every client's frame log and the server's
 * log tail.
 */
export function withClients(getServer, fn) {
  return async (t) => {
    const ctx = new Ctx(getServer, t)
    try {
      await fn(ctx)
      for (const n of ctx.notes) t.diagnostic(n)
      // RT_DUMP=1 shows every client's frames for passing tests too.
      if (process.env.RT_DUMP) for (const log of ctx.logs) t.diagnostic(log.dump(200))
    } catch (err) {
      const extra = ctx.diagnostics()
      if (err && typeof err === 'object') {
        try {
          err.message = `${err.message}\n\n${extra}`
        } catch {}
      }
      throw err
    } finally {
      await ctx.close()
    }
  }
}

class Ctx {
  constructor(getServer, t) {
    this.getServer = getServer
    this.t = t
    this.logs = []
    this.closers = []
    this.notes = []
  }
  get server() {
    return this.getServer()
  }
  note(s) {
    this.notes.push(s)
  }
  /**
   * A realtime-js client. Options: token (setAuth before any subscribe), apikey, vsn,
   * heartbeatIntervalMs, heartbeatCallback, reconnectAfterMs, name.
   */
  async realtime({ token, apikey = 'wrenchline-anon', vsn, name, server = this.server, ...rest } = {}) {
    const log = new FrameLog(name ?? `realtime-js#${this.logs.length + 1}${vsn ? ` vsn=${vsn}` : ''}`)
    this.logs.push(log)
    const opts = {
      transport: loggingTransport(log),
      params: { apikey },
      // Quiet: a test should not be ended by the client's own idle disconnect.
      disconnectOnEmptyChannelsAfterMs: 600000,
      ...rest,
    }
    if (vsn) opts.vsn = vsn
    const client = new RealtimeClient(`${server.wsBase}/realtime/v1`, opts)
    client.__log = log
    if (token) await client.setAuth(token)
    this.closers.push(() => closeRealtime(client))
    return client
  }
  /** A phoenix.js Socket (not yet connected). */
  phoenix({ params = { apikey: 'wrenchline-anon' }, name, server = this.server, ...rest } = {}) {
    const log = new FrameLog(name ?? `phoenix.js#${this.logs.length + 1}`)
    this.logs.push(log)
    const socket = new PhoenixSocket(`${server.wsBase}/realtime/v1`, {
      transport: loggingTransport(log),
      params,
      ...rest,
    })
    socket.__log = log
    this.closers.push(() => withTimeout(new Promise((resolve) => socket.disconnect(resolve)), 1000))
    return socket
  }
  diagnostics() {
    const parts = []
    if (this.notes.length) parts.push(`--- notes ---\n${this.notes.join('\n')}`)
    for (const log of this.logs) parts.push(log.dump())
    try {
      const s = this.server
      if (s) parts.push(`--- server log tail ---\n${s.tail(25)}`)
    } catch {}
    return parts.join('\n')
  }
  async close() {
    for (const c of this.closers.reverse()) await c()
  }
}

// ---------------------------------------------------------------------------------------------
// Waiting helpers
// ---------------------------------------------------------------------------------------------

/** Polls `predicate` until it returns a truthy value; rejects with `what` after `timeout` ms. */
export async function waitFor(predicate, { timeout = 5000, interval = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout
  let last
  for (;;) {
    try {
      last = await predicate()
      if (last) return last
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? ` (last error: ${last.message})` : ''
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${detail}`)
    }
    await sleep(interval)
  }
}

/**
 * Subscribes and resolves with the first terminal status: {status, err, at}. Every later status is
 * recorded in `channel.__statuses`.
 */
export function subscribeOutcome(channel, { timeout = 12000 } = {}) {
  channel.__statuses = channel.__statuses ?? []
  return new Promise((resolve) => {
    let settled = false
    const timer = setTimeout(() => {
      if (!settled) {
        settled = true
        resolve({ status: 'NO_STATUS', err: new Error(`no subscribe status within ${timeout} ms`) })
      }
    }, timeout)
    channel.subscribe((status, err) => {
      channel.__statuses.push({ status, err: err?.message, at: Date.now() })
      if (!settled) {
        settled = true
        clearTimeout(timer)
        resolve({ status, err })
      }
    })
  })
}

/** Subscribes and requires SUBSCRIBED. */
export async function subscribed(channel, opts) {
  const out = await subscribeOutcome(channel, opts)
  if (out.status !== 'SUBSCRIBED') {
    throw new Error(`channel ${channel.topic}: expected SUBSCRIBED, got ${out.status}${out.err ? `: ${out.err.message}` : ''}`)
  }
  return channel
}

/** Collects events a realtime-js channel delivers for one binding type. */
export function collect(channel, type, filter = {}) {
  const items = []
  channel.on(type, filter, (payload) => items.push(payload))
  return items
}

/** Presence helpers: is `userId` present by payload user_id across every key? */
export function presentUserIds(state) {
  const ids = new Set()
  for (const metas of Object.values(state)) {
    if (!Array.isArray(metas)) continue
    for (const m of metas) if (m && m.user_id) ids.add(m.user_id)
  }
  return ids
}

export function countMetasFor(state, userId) {
  let n = 0
  for (const metas of Object.values(state)) for (const m of metas) if (m.user_id === userId) n++
  return n
}

export function presencePayload(actor) {
  return { user_id: actor.id, role: actor.role, online_at: new Date().toISOString() }
}

/** Resolves the phoenix.js push/join receive outcome: {status, response}. */
export function phxOutcome(push, timeout = 10000) {
  let timer
  return new Promise((resolve) => {
    const done = (v) => {
      clearTimeout(timer)
      resolve(v)
    }
    push
      .receive('ok', (response) => done({ status: 'ok', response }))
      .receive('error', (response) => done({ status: 'error', response }))
      .receive('timeout', () => done({ status: 'timeout' }))
    timer = setTimeout(() => done({ status: 'no-outcome' }), timeout + 500)
  })
}

/** Session/message topics (realtime-js channel names; the wire topic is `realtime:` + name). */
export const topics = {
  presence: (id) => `chat:session-${id}:presence`,
  session: (id) => `chat:session-${id}`,
  requests: 'requests',
}

/**
 * Starts one server for a whole test file and stops it afterwards. Returns a getter; `restart`
 * kills it and starts it again on the same port and database (the reconnect test).
 */
export function serverForFile({ before, after }, opts = {}) {
  const holder = { server: null, db: null }
  before(async () => {
    holder.db = freshDatabase()
    holder.server = await startServer({ db: holder.db, ...opts })
  })
  after(async () => {
    if (holder.server) {
      await holder.server.stop()
      holder.server.cleanup()
    }
    if (holder.db) cleanupDatabase(holder.db)
  })
  const get = () => holder.server
  get.holder = holder
  get.restart = async ({ signal = 'SIGKILL', gapMs = 0 } = {}) => holder.server.restart({ signal, gapMs })
  return get
}
