// The one way the Node test suites (tests/realtime, tests/cluster, tests/browser, tests/desktop)
// and scripts/schemathesis.sh start and drive a real wrenchline-server: the binary, a fresh database,
// `serve --ready-file` on port 0 (the server writes `{"http": "http://ADDR"}` once it accepts
// connections; the human-readable `listening on` line is never parsed), mechanics made with the
// CLI as an administrator would, customers and their sessions made through the HTTP API, and the
// server's log kept for failure messages; for cluster mode, several nodes on one PostgreSQL and
// Redis, HAProxy in front, and the test Redis taken away and back. Node built-ins only: suites import it by relative path
// and it needs no npm install. docs/architecture.md lists the suites that use it.

import { spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'

const here = path.dirname(fileURLToPath(import.meta.url))
export const repoRoot = path.resolve(here, '..', '..')

/** The password every test mechanic gets unless a test picks its own. */
export const PASSWORD = 'correct horse battery staple'

/** A valid intake body (`POST /api/intake`); callers override what they need. */
export const INTAKE = Object.freeze({
  name: 'Dana Driver',
  email: 'dana@example.com',
  phone: '+1 555 010 2030',
  vehicle: Object.freeze({ year: 2018, make: 'Honda', model: 'Civic', vin: '1HGCM82633A004352', mileage: 84000 }),
  concern: 'Grinding noise when braking at low speed',
  plan: 'trial',
})

// ---------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------

let cachedTargetDir = null

/**
 * Cargo's target directory: `$CARGO_TARGET_DIR` (the Makefile exports it), else what `cargo
 * metadata` reports for this workspace, else `<repo>/target`.
 */
export function targetDir() {
  if (process.env.CARGO_TARGET_DIR) return process.env.CARGO_TARGET_DIR
  if (cachedTargetDir) return cachedTargetDir
  const r = spawnSync('cargo', ['metadata', '--no-deps', '--format-version', '1'], {
    cwd: repoRoot,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  })
  try {
    cachedTargetDir = JSON.parse(r.stdout).target_directory
  } catch {
    cachedTargetDir = path.join(repoRoot, 'target')
  }
  return cachedTargetDir
}

/** A debug binary of the workspace (`examples/NAME` for an example). */
export function cargoBinary(name) {
  return path.join(targetDir(), 'debug', name)
}

/** The server binary: `$WRENCHLINE_SERVER_BIN`, else the debug build in the target directory. */
export function serverBinary() {
  const bin = process.env.WRENCHLINE_SERVER_BIN || cargoBinary('wrenchline-server')
  if (!existsSync(bin)) {
    throw new Error(
      `wrenchline-server not found at ${bin}: build it with \`cargo build -p wrenchline-server\` ` +
        '(with the same CARGO_TARGET_DIR) or set WRENCHLINE_SERVER_BIN',
    )
  }
  return bin
}

// ---------------------------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------------------------

/**
 * A database for one server: a new SQLite file in the temp directory, or the PostgreSQL URL
 * given (`postgres` option, else `$WRENCHLINE_TEST_POSTGRES_URL` when `fromEnv` is set) used as it
 * is. `cleanup()` removes the SQLite file and its journals.
 */
export function freshDatabase({ prefix = 'wl-test', postgres, fromEnv = false } = {}) {
  const given = postgres ?? (fromEnv ? process.env.WRENCHLINE_TEST_POSTGRES_URL : undefined)
  if (given) return databaseAt(given)
  const file = path.join(tmpdir(), `${prefix}-${process.pid}-${randomUUID()}.db`)
  return {
    kind: 'sqlite',
    file,
    url: `sqlite://${file}`,
    cleanup() {
      for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(file + suffix, { force: true })
    },
  }
}

/** A database that already exists (or that the server creates), by URL; nothing to clean up. */
export function databaseAt(url) {
  return { kind: url.startsWith('sqlite:') ? 'sqlite' : 'postgres', file: null, url, cleanup() {} }
}

// ---------------------------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------------------------

// Servers still running when this process ends (a crashed or interrupted test file) are killed.
const liveChildren = new Set()
process.once('exit', () => {
  for (const c of liveChildren) c.kill('SIGKILL')
})
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    for (const c of liveChildren) c.kill('SIGKILL')
    process.exit(130)
  })
}

/** Reads the ready file once it is complete (the server writes it by rename, so never half). */
function readReady(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'))
  } catch {
    return null
  }
}

/**
 * Starts `wrenchline-server serve` and resolves once its ready file names the bound address.
 *
 * Options: `database` (from `freshDatabase`; a new SQLite one by default, removed by `stop()`),
 * `bind` (default `127.0.0.1:0`), `args` (more flags), `env` (more environment), `log` (the
 * `WRENCHLINE_LOG` filter, default `$WRENCHLINE_LOG` or `info,sqlx=warn`), `logFile` (a file
 * that also receives everything the server prints), `timeoutMs` (default 30 s), `maxLines`
 * (log lines kept in memory, default 5000).
 *
 * The server: `base` (`http://ADDR`), `addr`, `wsBase`, `ready` (the ready file's JSON),
 * `database`, `child`, `logs` (lines, `[stdout] …` / `[stderr] …`), `tail(n)`, `exited`,
 * `exitInfo`, `stop(signal)` (resolves `{code, signal, log}` once it exited; SIGKILL after 5 s),
 * `restart({signal, gapMs})` (same address and database) and `cleanup()` (the database).
 */
export async function startServer({
  database,
  bind = '127.0.0.1:0',
  args = [],
  env = {},
  log,
  logFile,
  timeoutMs = 30000,
  maxLines = 5000,
} = {}) {
  const db = database ?? freshDatabase()
  const ownsDatabase = database === undefined
  const work = mkdtempSync(path.join(tmpdir(), 'wl-server-'))
  const readyFile = path.join(work, 'ready.json')
  const logs = []
  const sink = logFile ? createWriteStream(logFile, { flags: 'a' }) : null
  const server = {
    database: db,
    databaseUrl: db.url,
    readyFile,
    logs,
    child: null,
    ready: null,
    addr: null,
    base: null,
    wsBase: null,
    exited: false,
    exitInfo: null,
    tail(n = 40) {
      return logs.slice(-n).join('\n')
    },
    async stop(signal = 'SIGTERM') {
      const child = server.child
      if (child && !server.exited) {
        const done = new Promise((resolve) => child.once('exit', resolve))
        child.kill(signal)
        const timer = setTimeout(() => {
          if (!server.exited) child.kill('SIGKILL')
        }, 5000)
        await done
        clearTimeout(timer)
      }
      return { ...server.exitInfo, log: logs.join('\n') }
    },
    async restart({ signal = 'SIGKILL', gapMs = 0 } = {}) {
      await server.stop(signal)
      if (gapMs) await sleep(gapMs)
      await launch(server.addr)
      return server
    },
    cleanup() {
      if (ownsDatabase) db.cleanup()
      rmSync(work, { recursive: true, force: true })
      sink?.end()
    },
  }

  function record(stream, prefix) {
    let buf = ''
    stream.on('data', (chunk) => {
      sink?.write(chunk)
      buf += chunk.toString()
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        logs.push(`${prefix} ${buf.slice(0, i)}`)
        buf = buf.slice(i + 1)
      }
      if (logs.length > maxLines) logs.splice(0, logs.length - maxLines)
    })
  }

  async function launch(address) {
    rmSync(readyFile, { force: true })
    const argv = ['serve', '--bind', address, '--database-url', db.url, '--ready-file', readyFile, ...args]
    const child = spawn(serverBinary(), argv, {
      env: { ...process.env, WRENCHLINE_LOG: log ?? process.env.WRENCHLINE_LOG ?? 'info,sqlx=warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    server.child = child
    server.exited = false
    server.exitInfo = null
    liveChildren.add(child)
    record(child.stdout, '[stdout]')
    record(child.stderr, '[stderr]')
    const exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        server.exited = true
        server.exitInfo = { code, signal }
        liveChildren.delete(child)
        resolve()
      })
      child.once('error', (error) => {
        server.exited = true
        server.exitInfo = { code: null, signal: null, error: error.message }
        liveChildren.delete(child)
        resolve()
      })
    })
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const ready = readReady(readyFile)
      if (ready?.http) {
        server.ready = ready
        server.base = ready.http
        server.addr = new URL(ready.http).host
        server.wsBase = server.base.replace(/^http/, 'ws')
        return
      }
      if (server.exited) {
        const how = server.exitInfo.error ?? `code ${server.exitInfo.code}, signal ${server.exitInfo.signal}`
        throw new Error(`wrenchline-server exited before it was ready (${how})\n${server.tail()}`)
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        await exited
        throw new Error(`wrenchline-server was not ready within ${timeoutMs} ms\n${server.tail()}`)
      }
      await Promise.race([sleep(20), exited])
    }
  }

  try {
    await launch(bind)
  } catch (e) {
    server.cleanup()
    throw e
  }
  return server
}

// ---------------------------------------------------------------------------------------------
// Cluster: several nodes on one PostgreSQL database and one Redis
// ---------------------------------------------------------------------------------------------

/**
 * Starts `nodes` servers at the same moment on one PostgreSQL database and one Redis
 * (`serve --redis-url … --node-id node-N`), as the cluster contract allows: migrations and the
 * signing secret are made once whoever comes first. `postgres` and `redis` default to
 * `$WRENCHLINE_TEST_POSTGRES_URL` and `$WRENCHLINE_TEST_REDIS_URL` (scripts/with-postgres.sh and
 * scripts/with-redis.sh). `args`, `env` and `log` go to every node.
 *
 * The cluster: `nodes` (servers as from `startServer`, `nodeId` added), `node(i)`, `databaseUrl`,
 * `redisUrl`, `kill(i)` (SIGKILL, no word to anyone), `stopNode(i, signal)` (default SIGTERM: a
 * drain), `restartNode(i, {signal, gapMs})` (same address and node id), `readyz(i)`
 * (`{status, body}`), `waitReady(i, status, timeoutMs)`, `tail(n)` (every node's log) and
 * `stop()` (every node).
 */
export async function startCluster({
  nodes = 3,
  postgres = process.env.WRENCHLINE_TEST_POSTGRES_URL,
  redis = process.env.WRENCHLINE_TEST_REDIS_URL,
  args = [],
  env = {},
  log,
  timeoutMs = 60000,
} = {}) {
  if (!postgres || !redis) {
    throw new Error(
      'startCluster needs PostgreSQL and Redis: run under scripts/with-postgres.sh scripts/with-redis.sh ' +
        '(or pass postgres and redis URLs)',
    )
  }
  const database = databaseAt(postgres)
  const ids = Array.from({ length: nodes }, (_, i) => `node-${i + 1}`)
  const started = await Promise.allSettled(
    ids.map((nodeId) =>
      startServer({ database, args: ['--redis-url', redis, '--node-id', nodeId, ...args], env, log, timeoutMs }),
    ),
  )
  const failed = started.find((r) => r.status === 'rejected')
  if (failed) {
    await Promise.all(started.filter((r) => r.status === 'fulfilled').map((r) => r.value.stop('SIGKILL')))
    throw failed.reason
  }
  const servers = started.map((r, i) => Object.assign(r.value, { nodeId: ids[i] }))
  const cluster = {
    nodes: servers,
    databaseUrl: postgres,
    redisUrl: redis,
    node: (i) => servers[i],
    async kill(i) {
      return servers[i].stop('SIGKILL')
    },
    async stopNode(i, signal = 'SIGTERM') {
      return servers[i].stop(signal)
    },
    async restartNode(i, { signal = 'SIGTERM', gapMs = 0 } = {}) {
      return servers[i].restart({ signal, gapMs })
    },
    readyz: (i) => readyz(servers[i]),
    waitReady: (i, status = 200, timeoutMs = 15000) => waitReadyz(servers[i], status, timeoutMs),
    tail(n = 25) {
      return servers.map((s) => `--- ${s.nodeId} (${s.base}) ---\n${s.tail(n)}`).join('\n')
    },
    async stop() {
      await Promise.all(servers.map((s) => s.stop()))
      for (const s of servers) s.cleanup()
    },
  }
  return cluster
}

/**
 * HAProxy in front of `cluster` with the shipped deploy/haproxy.cfg, changed as scripts/cluster.sh
 * changes it: plain HTTP on a free loopback port instead of the TLS and port 80 listeners, logs to
 * stderr, and the cluster's nodes instead of the example addresses. Resolves `{base, wsBase,
 * child, logs, tail(n), stop()}` once HAProxy answers `/readyz` with 200 through a node.
 */
export async function startProxy(cluster, { timeoutMs = 20000 } = {}) {
  const work = mkdtempSync(path.join(tmpdir(), 'wl-haproxy-'))
  const port = await freePort()
  const servers = cluster.nodes.map((n, i) => `    server node${i + 1} ${n.addr}`).join('\n')
  const config = readFileSync(path.join(repoRoot, 'deploy', 'haproxy.cfg'), 'utf8')
    .split('\n')
    .filter((line) => !/^    bind :80$/.test(line) && !/redirect scheme https/.test(line) && !/^    server node\d/.test(line))
    .map((line) => {
      if (/^    bind :443 ssl /.test(line)) return `    bind 127.0.0.1:${port}`
      if (/^    log \/dev\/log/.test(line)) return '    log stderr format short local0 notice'
      if (/^    maxconn /.test(line)) return '    maxconn 4096'
      if (/^    default-server /.test(line)) return `${line}\n${servers}`
      return line
    })
    .join('\n')
  const file = path.join(work, 'haproxy.cfg')
  writeFileSync(file, config)
  const logs = []
  const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  liveChildren.add(child)
  for (const stream of [child.stdout, child.stderr]) stream.on('data', (d) => logs.push(...d.toString().split('\n').filter(Boolean)))
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const proxy = {
    base: `http://127.0.0.1:${port}`,
    wsBase: `ws://127.0.0.1:${port}`,
    addr: `127.0.0.1:${port}`,
    child,
    logs,
    tail: (n = 30) => logs.slice(-n).join('\n'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        await exited
      }
      liveChildren.delete(child)
      rmSync(work, { recursive: true, force: true })
    },
  }
  try {
    await Promise.race([
      waitReadyz(proxy, 200, timeoutMs),
      exited.then(() => {
        throw new Error(`haproxy exited (${child.exitCode ?? child.signalCode})`)
      }),
    ])
  } catch (e) {
    await proxy.stop()
    throw new Error(`${e.message}\n${proxy.tail()}`)
  }
  return proxy
}

/** A free TCP port on 127.0.0.1 (bound and released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** `GET /readyz` of a server: `{status, body}` (status 0 when nothing answers). */
export async function readyz(target) {
  try {
    const res = await request(target, 'GET', '/readyz')
    return { status: res.status, body: res.body }
  } catch (e) {
    return { status: 0, body: String(e.message ?? e) }
  }
}

/** Resolves `{status, body, ms}` once `/readyz` answers `status`; rejects after `timeoutMs`. */
export async function waitReadyz(target, status = 200, timeoutMs = 15000) {
  const started = Date.now()
  let last
  for (;;) {
    last = await readyz(target)
    if (last.status === status) return { ...last, ms: Date.now() - started }
    if (Date.now() - started > timeoutMs) {
      throw new Error(`/readyz of ${baseOf(target)} did not answer ${status} within ${timeoutMs} ms: ${last.status} ${JSON.stringify(last.body)}`)
    }
    await sleep(100)
  }
}

/**
 * The Redis that scripts/with-redis.sh started (`$WRENCHLINE_TEST_REDIS_DIR` holds its config and
 * pid file), for tests that take it away: `kill()` (SIGKILL; its data is gone, as after a crash
 * without persistence), `start()` (same port) and `ping()`.
 */
export function testRedis({ dir = process.env.WRENCHLINE_TEST_REDIS_DIR, port = process.env.WRENCHLINE_TEST_REDIS_PORT } = {}) {
  if (!dir || !port) throw new Error('testRedis needs scripts/with-redis.sh')
  const ping = () => spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG'
  return {
    url: `redis://127.0.0.1:${port}`,
    ping,
    async kill() {
      const pid = Number(readFileSync(path.join(dir, 'redis.pid'), 'utf8'))
      process.kill(pid, 'SIGKILL')
      for (let i = 0; i < 100 && ping(); i++) await sleep(50)
      if (ping()) throw new Error('Redis still answers after SIGKILL')
      rmSync(path.join(dir, 'redis.pid'), { force: true })
    },
    async start() {
      const r = spawnSync('redis-server', [path.join(dir, 'redis.conf')], { encoding: 'utf8' })
      if (r.status !== 0) throw new Error(`redis-server did not start: ${r.stderr}${r.stdout}`)
      for (let i = 0; i < 100 && !ping(); i++) await sleep(50)
      if (!ping()) throw new Error('Redis did not answer after start')
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Command line (administrators)
// ---------------------------------------------------------------------------------------------

/** Runs a `wrenchline-server` subcommand to completion: `{code, stdout, stderr}`. */
export function runCli(args, { stdin = '', env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(serverBinary(), args, {
      env: { ...process.env, WRENCHLINE_LOG: 'warn', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin)
  })
}

/** `runCli` without waiting on the event loop (for synchronous callers). */
export function runCliSync(args, { stdin = '', env = {} } = {}) {
  const r = spawnSync(serverBinary(), args, {
    input: stdin,
    encoding: 'utf8',
    env: { ...process.env, WRENCHLINE_LOG: 'warn', ...env },
  })
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? r.error?.message ?? '' }
}

let mechanicCount = 0

/** The account to add: what was given, the rest made up. */
function mechanicAccount({ email, name, password = PASSWORD } = {}) {
  mechanicCount += 1
  return {
    email: email ?? `mech-${process.pid}-${mechanicCount}-${randomUUID().slice(0, 8)}@wrenchline.test`,
    name: name ?? `Mechanic ${mechanicCount}`,
    password,
  }
}

function mechanicAddArgs(server, account) {
  return ['mechanic', 'add', '--email', account.email, '--name', account.name, '--password-stdin', '--database-url', server.databaseUrl]
}

function added(account, out) {
  if (out.code !== 0) throw new Error(`mechanic add ${account.email} failed (${out.code}): ${out.stdout}${out.stderr}`)
  return account
}

/**
 * Adds a mechanic account with the CLI (`mechanic add … --password-stdin`), as an administrator
 * does: `{email, name, password}`; all three may be given, the rest is made up.
 */
export async function addMechanic(server, options) {
  const account = mechanicAccount(options)
  return added(account, await runCli(mechanicAddArgs(server, account), { stdin: `${account.password}\n` }))
}

/** `addMechanic`, synchronously. */
export function addMechanicSync(server, options) {
  const account = mechanicAccount(options)
  return added(account, runCliSync(mechanicAddArgs(server, account), { stdin: `${account.password}\n` }))
}

/**
 * A mechanic added with the CLI and signed in over HTTP: `{id, email, name, password, user,
 * token, refresh, expiresIn, role}`.
 */
export async function createMechanic(server, options) {
  const account = await addMechanic(server, options)
  const tokens = await login(server, account.email, account.password)
  return {
    ...account,
    id: tokens.user.id,
    user: tokens.user,
    token: tokens.access_token,
    refresh: tokens.refresh_token,
    expiresIn: tokens.expires_in,
    role: 'mechanic',
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP API
// ---------------------------------------------------------------------------------------------

function baseOf(target) {
  return typeof target === 'string' ? target : target.base
}

/**
 * One HTTP call as a non-browser client (no Origin header). `target` is a server or a base URL.
 * Options: `token` (Bearer), `cookie` (the customer's identity cookie value), `body` (JSON),
 * `headers`. Resolves `{status, body, headers}`; `body` is parsed JSON, else the text, else null.
 */
export async function request(target, method, pathname, { token, cookie, body, headers = {} } = {}) {
  const h = { accept: 'application/json', ...headers }
  if (body !== undefined) h['content-type'] = 'application/json'
  if (token) h.authorization = `Bearer ${token}`
  if (cookie) h.cookie = `wl_customer=${cookie}`
  const res = await fetch(baseOf(target) + pathname, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  let parsed = null
  if (text) {
    try {
      parsed = JSON.parse(text)
    } catch {
      parsed = text
    }
  }
  return { status: res.status, body: parsed, headers: res.headers }
}

/** `request` that fails unless the answer has status `expected`; resolves the body. */
export async function expectStatus(target, method, pathname, expected, options) {
  const res = await request(target, method, pathname, options)
  if (res.status !== expected) {
    throw new Error(`${method} ${pathname}: expected HTTP ${expected}, got ${res.status} ${JSON.stringify(res.body)}`)
  }
  return res.body
}

/** `POST /api/auth/login`: `{access_token, refresh_token, expires_in, user}`. */
export function login(target, email, password = PASSWORD) {
  return expectStatus(target, 'POST', '/api/auth/login', 200, { body: { email, password } })
}

/** The `wl_customer` identity cookie's value from a response's `Set-Cookie` headers. */
export function identityCookie(headers) {
  const all = typeof headers.getSetCookie === 'function' ? headers.getSetCookie() : [headers.get('set-cookie')]
  for (const h of all) {
    const m = /(?:^|,\s*)wl_customer=([^;]+)/.exec(h ?? '')
    if (m) return m[1]
  }
  return null
}

/**
 * A customer and their session through the API: the intake (`intake` overrides fields of
 * `INTAKE`; the email is made unique), then unless `waiver` is false the signed waiver (the
 * request is then offered to mechanics), then unless `token` is false the realtime token.
 * Resolves `{id, user, cookie, token, expiresIn, sessionId, session, role}`.
 */
export async function createCustomerSession(target, { intake = {}, waiver = true, token = true } = {}) {
  const body = { ...INTAKE, email: `cust-${randomUUID().slice(0, 8)}@example.com`, ...intake }
  const res = await request(target, 'POST', '/api/intake', { body })
  if (res.status !== 201) throw new Error(`POST /api/intake: expected 201, got ${res.status} ${JSON.stringify(res.body)}`)
  const cookie = identityCookie(res.headers)
  if (!cookie) throw new Error('POST /api/intake: no wl_customer cookie in Set-Cookie')
  const customer = {
    id: res.body.user.id,
    user: res.body.user,
    cookie,
    token: null,
    expiresIn: null,
    sessionId: res.body.session.id,
    session: res.body.session,
    role: 'customer',
  }
  if (waiver) {
    const signed = await expectStatus(target, 'POST', `/api/sessions/${customer.sessionId}/waiver`, 200, {
      cookie,
      body: { signed_name: body.name, agree: true },
    })
    customer.session = signed.session
  }
  if (token) {
    const minted = await expectStatus(target, 'POST', '/api/auth/token', 200, { cookie })
    customer.token = minted.access_token
    customer.expiresIn = minted.expires_in
  }
  return customer
}

// ---------------------------------------------------------------------------------------------
// Command-line use, for shell scripts: `node tests/support/server.mjs [flags] -- COMMAND …`
// ---------------------------------------------------------------------------------------------

/**
 * Starts a server, optionally adds a mechanic, runs COMMAND with `WL_BASE`, `WL_DATABASE_URL`
 * (and `WL_MECHANIC_EMAIL`, `WL_MECHANIC_PASSWORD`) in its environment, stops the server and
 * exits with COMMAND's status; a server that died meanwhile fails the run. Flags: `--postgres`
 * (use `$WRENCHLINE_TEST_POSTGRES_URL` when set), `--mechanic EMAIL` (its password is random),
 * `--log-file PATH`, and `--arg FLAG` (repeatable) for the server.
 */
async function main(argv) {
  const split = argv.indexOf('--')
  if (split < 0 || split === argv.length - 1) {
    console.error('usage: node tests/support/server.mjs [--postgres] [--mechanic EMAIL] [--log-file PATH] [--arg FLAG]... -- COMMAND [ARG]...')
    return 2
  }
  const flags = argv.slice(0, split)
  const command = argv.slice(split + 1)
  const options = { fromEnv: false, mechanic: null, logFile: undefined, args: [] }
  for (let i = 0; i < flags.length; i++) {
    const flag = flags[i]
    if (flag === '--postgres') options.fromEnv = true
    else if (flag === '--mechanic') options.mechanic = flags[++i]
    else if (flag === '--log-file') options.logFile = flags[++i]
    else if (flag === '--arg') options.args.push(flags[++i])
    else {
      console.error(`server.mjs: unknown flag ${flag}`)
      return 2
    }
  }
  const database = freshDatabase({ prefix: 'wl-script', fromEnv: options.fromEnv })
  const server = await startServer({ database, args: options.args, logFile: options.logFile })
  const env = { ...process.env, WL_BASE: server.base, WL_DATABASE_URL: server.databaseUrl }
  try {
    if (options.mechanic) {
      const password = randomUUID()
      await addMechanic(server, { email: options.mechanic, name: 'Test Mechanic', password })
      Object.assign(env, { WL_MECHANIC_EMAIL: options.mechanic, WL_MECHANIC_PASSWORD: password })
    }
    console.error(`server.mjs: server on ${server.base}, database ${server.databaseUrl}`)
    const status = await new Promise((resolve) => {
      const child = spawn(command[0], command.slice(1), { stdio: 'inherit', env })
      child.on('error', (e) => {
        console.error(`server.mjs: ${command[0]}: ${e.message}`)
        resolve(127)
      })
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)))
    })
    if (server.exited) {
      console.error(`server.mjs: the server died during the run\n${server.tail(30)}`)
      return status || 1
    }
    return status
  } finally {
    await server.stop()
    server.cleanup()
    database.cleanup()
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(`server.mjs: ${e.stack ?? e}`)
      process.exit(1)
    },
  )
}
