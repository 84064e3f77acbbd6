// Test harness of the desktop end-to-end suite: the real wrenchline-server (started through
// tests/support/server.mjs), a TCP proxy in front of it (so a test can hold the app's realtime traffic back), the customer as a script (HTTP with
// the identity cookie, realtime-js for presence and chat), and the app itself through
// tauri-driver (WebDriver classic, selenium-webdriver). run.sh provides the display, the session
// bus, the unlocked keyring, the notification daemon and tauri-driver.

import { spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { RealtimeClient } from '@supabase/realtime-js'
import { Builder, By, until } from 'selenium-webdriver'
import * as support from '../support/server.mjs'

export { sleep, By, until }

const here = path.dirname(fileURLToPath(import.meta.url))
export const repoRoot = path.resolve(here, '..', '..')
export const APP = process.env.WRENCHLINE_DESK_BIN || support.cargoBinary('wrenchline-desk')
export const SERVER = process.env.WRENCHLINE_SERVER_BIN || support.cargoBinary('wrenchline-server')
export const ARTIFACTS = process.env.ARTIFACTS_DIR || path.join(repoRoot, 'tests', 'artifacts')
export const NOTIFY_LOG = process.env.NOTIFY_LOG || ''
export const DRIVER_URL = process.env.TAURI_DRIVER_URL || 'http://127.0.0.1:4444/'

mkdirSync(ARTIFACTS, { recursive: true })

/** Polls `check` until it returns a truthy value; fails with `what` after `timeout` ms. */
export async function eventually(what, check, { timeout = 20000, every = 200 } = {}) {
  const deadline = Date.now() + timeout
  let last
  for (;;) {
    try {
      const value = await check()
      if (value) return value
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.message}` : ''}`)
    }
    await sleep(every)
  }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/**
 * Starts `wrenchline-server serve` on a fresh SQLite file in `dir`; resolves when it is ready. With
 * `releasesDir`, the server answers the app's update checks from that folder.
 */
export async function startServer(dir, { releasesDir } = {}) {
  const server = await support.startServer({
    database: support.databaseAt(`sqlite://${path.join(dir, 'server.db')}`),
    args: releasesDir ? ['--releases-dir', releasesDir] : [],
    // Kept with the artifacts, for a failing run.
    logFile: path.join(ARTIFACTS, 'server.log'),
  })
  return {
    base: server.base,
    databaseUrl: server.databaseUrl,
    logs: server.logs,
    stop: () => {
      server.stop()
    },
  }
}

export function addMechanic(server, { email, name, password }) {
  support.addMechanicSync(server, { email, name, password })
}

export async function api(base, method, pathname, { token, cookie, body } = {}) {
  const headers = { accept: 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  if (cookie) headers.cookie = `wl_customer=${cookie}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(base + pathname, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  let json = null
  try {
    json = text ? JSON.parse(text) : null
  } catch {}
  return { status: res.status, body: json, headers: res.headers }
}

export async function login(base, email, password) {
  const r = await api(base, 'POST', '/api/auth/login', { body: { email, password } })
  if (r.status !== 200) throw new Error(`login ${r.status}: ${JSON.stringify(r.body)}`)
  return r.body
}

/** A customer's intake and signed waiver: the request is then offered to mechanics. */
export async function offeredRequest(base, { name = 'Dana Driver', vehicle, concern, plan = 'trial' } = {}) {
  const intake = {
    name,
    plan,
    concern: concern ?? 'Grinding noise from the front when braking at low speed',
    ...(vehicle ? { vehicle } : {}),
  }
  const customer = await support.createCustomerSession(base, { intake, token: false })
  return { cookie: customer.cookie, sessionId: customer.sessionId, userId: customer.id, name }
}

/**
 * The customer in the chat, as the web page does it: realtime-js with the token minted from the
 * identity cookie, tracked on the presence topic, listening to the chat topic.
 */
export class Customer {
  constructor(base, request) {
    this.base = base
    this.request = request
    this.messages = []
    this.statuses = []
    this.presence = {}
  }

  async join() {
    const { base, request } = this
    const token = await api(base, 'POST', '/api/auth/token', { cookie: request.cookie })
    if (token.status !== 200) throw new Error(`customer token ${token.status}`)
    this.user = token.body.user
    const client = new RealtimeClient(`${base.replace(/^http/, 'ws')}/realtime/v1`, {
      params: { apikey: token.body.access_token },
      transport: WebSocket,
      heartbeatIntervalMs: 5000,
    })
    await client.setAuth(token.body.access_token)
    this.client = client
    const id = request.sessionId
    const chat = client.channel(`chat:session-${id}`, { config: { broadcast: { self: false, ack: false } } })
    chat.on('postgres_changes', { event: '*', schema: 'public', table: 'sessions', filter: `id=eq.${id}` }, (c) =>
      this.statuses.push(c.new?.status),
    )
    chat.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'messages', filter: `session_id=eq.${id}` }, (c) =>
      this.messages.push(c.new),
    )
    this.chat = chat
    await subscribed(chat)
    const presence = client.channel(`chat:session-${id}:presence`)
    presence.on('presence', { event: 'sync' }, () => (this.presence = presence.presenceState()))
    await subscribed(presence)
    const tracked = await presence.track({ user_id: this.user.id, role: 'customer', online_at: new Date().toISOString() })
    if (tracked !== 'ok') throw new Error(`customer track: ${tracked}`)
    this.presenceChannel = presence
  }

  say(body) {
    return api(this.base, 'POST', `/api/sessions/${this.request.sessionId}/messages`, {
      cookie: this.request.cookie,
      body: { body, client_id: randomUUID() },
    })
  }

  typing() {
    return this.chat.send({ type: 'broadcast', event: 'typing', payload: { user_id: this.user.id, role: 'customer' } })
  }

  session() {
    return api(this.base, 'GET', `/api/sessions/${this.request.sessionId}`, { cookie: this.request.cookie })
  }

  async leave() {
    try {
      await this.client?.removeAllChannels()
      this.client?.disconnect()
    } catch {}
  }
}

function subscribed(channel) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`subscribe ${channel.topic} timed out`)), 15000)
    channel.subscribe((status, err) => {
      if (status === 'SUBSCRIBED') {
        clearTimeout(timer)
        resolve()
      } else if (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT') {
        clearTimeout(timer)
        reject(err ?? new Error(status))
      }
    })
  })
}

// ---------------------------------------------------------------------------------------------
// A proxy that can hold the app's realtime traffic back
// ---------------------------------------------------------------------------------------------

/**
 * Forwards 127.0.0.1:<port> to the server. While `hold()` is in force, what the server sends on
 * WebSocket connections (`GET /realtime/…`) is kept back and delivered on `release()`: the app
 * then sees row changes late, as on a slow network, while its HTTP calls still go through.
 */
export async function startProxy(target) {
  const { hostname, port } = new URL(target)
  let held = false
  const waiting = []
  const sockets = new Set()
  const server = net.createServer((client) => {
    sockets.add(client)
    const upstream = net.connect(Number(port), hostname)
    sockets.add(upstream)
    let websocket = null
    client.on('data', (chunk) => {
      if (websocket === null) websocket = chunk.toString('latin1', 0, 16).startsWith('GET /realtime')
      upstream.write(chunk)
    })
    upstream.on('data', (chunk) => {
      if (websocket && held) waiting.push(() => client.write(chunk))
      else client.write(chunk)
    })
    const close = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', close)
    upstream.on('error', close)
    client.on('close', close)
    upstream.on('close', close)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    hold() {
      held = true
    },
    release() {
      held = false
      for (const deliver of waiting.splice(0)) deliver()
    },
    stop() {
      server.close()
      for (const s of sockets) s.destroy()
    },
  }
}

// ---------------------------------------------------------------------------------------------
// The app
// ---------------------------------------------------------------------------------------------

/**
 * Starts the app (or another copy of its binary) through tauri-driver; WebDriver classic (the
 * WebKitWebDriver protocol).
 */
export async function launchApp(application = APP) {
  // Without a limit, a launch whose app dies before its window opens would hang the suite.
  let timer
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${application} did not open its window within 60 s`)), 60000)
  })
  const driver = await Promise.race([
    new Builder()
      .usingServer(DRIVER_URL)
      .withCapabilities({
        browserName: 'wry',
        'tauri:options': { application },
        'wdio:enforceWebDriverClassic': true,
      })
      .build(),
    limit,
  ]).finally(() => clearTimeout(timer))
  await driver.manage().setTimeouts({ implicit: 0, script: 20000 })
  return driver
}

/**
 * Processes whose executable is the app binary (to see that a restart really stopped it). A
 * binary replaced while running shows as "<path> (deleted)".
 */
export function appPids(application = APP) {
  const pids = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const exe = readlinkSync(`/proc/${entry}/exe`)
      if (exe === application || exe === `${application} (deleted)`) pids.push(Number(entry))
    } catch {}
  }
  return pids
}

export async function quitApp(driver, application = APP) {
  try {
    await driver.quit()
  } catch {}
  await eventually('the app process to exit', () => appPids(application).length === 0, { timeout: 15000 })
}

/**
 * Signs in from the app's sign-in form (server, email and password replace whatever the form
 * was filled with) and waits for the mechanic's name in the header.
 */
export async function signIn(driver, base, { email, password, name }) {
  const form = await find(driver, '[data-testid="sign-in-form"]', 30000)
  for (const [field, value] of [['#server', base], ['#email', email], ['#password', password]]) {
    const input = await form.findElement(By.css(field))
    await input.clear()
    await input.sendKeys(value)
  }
  await form.findElement(By.css('[data-testid="sign-in"]')).click()
  await textContains(driver, '[data-testid="signed-in-as"]', name, 30000)
}

/**
 * Signs out, so that the next launch of the app (the next test file) starts at the sign-in form
 * with no credentials in the keyring.
 */
export async function signOut(driver) {
  await (await find(driver, '[data-testid="sign-out"]')).click()
  await find(driver, '[data-testid="sign-in-form"]')
}

/** The single-instance plugin's name on the session bus: `{identifier}.SingleInstance`. */
export const SINGLE_INSTANCE_NAME = 'dev.wrenchline.desk.SingleInstance'

/** Whether someone owns `name` on the session bus. */
export function busNameOwned(name) {
  const r = spawnSync(
    'dbus-send',
    ['--session', '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus',
      'org.freedesktop.DBus.NameHasOwner', `string:${name}`],
    { encoding: 'utf8' },
  )
  if (r.status !== 0) throw new Error(`dbus-send failed: ${r.stderr}`)
  return /boolean true/.test(r.stdout)
}

/** Records the method calls named `member` on the session bus; `seen()` tells if one went by. */
export function watchMethodCalls(member) {
  const monitor = spawn('dbus-monitor', ['--session', `type='method_call',member='${member}'`], {
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  let out = ''
  monitor.stdout.on('data', (chunk) => (out += chunk.toString()))
  return {
    // dbus-monitor gives up its unique name once it is a monitor.
    ready: () => out.includes('member=NameLost'),
    seen: () => out.includes(`member=${member}`),
    stop: () => monitor.kill('SIGTERM'),
  }
}

/**
 * The app started outside WebDriver with a home of its own (so it touches neither the test's
 * settings nor its sign-in): another instance, for tests of what a second launch meets.
 */
export function startStandIn(application = APP) {
  const home = mkdtempSync(path.join(process.env.HOME, 'standin-'))
  mkdirSync(path.join(home, 'runtime'), { mode: 0o700 })
  const child = spawn(application, [], {
    env: { ...process.env, HOME: home, XDG_RUNTIME_DIR: path.join(home, 'runtime') },
    stdio: 'ignore',
  })
  return { signal: (sig) => child.kill(sig) }
}

/** The desktop app's own log file in this run's home. */
export function appLog() {
  const file = path.join(process.env.HOME, '.local', 'share', 'dev.wrenchline.desk', 'logs', 'Wrenchline.log')
  return existsSync(file) ? readFileSync(file, 'utf8') : ''
}

/** Waits for an element and returns it. */
export function find(driver, css, timeout = 20000) {
  return driver.wait(until.elementLocated(By.css(css)), timeout, `element ${css}`)
}

export async function text(driver, css, timeout = 20000) {
  return (await find(driver, css, timeout)).getText()
}

/** Waits until the element's text contains `expected`. */
export function textContains(driver, css, expected, timeout = 20000) {
  return eventually(
    `${css} to contain ${JSON.stringify(expected)}`,
    async () => {
      const els = await driver.findElements(By.css(css))
      for (const el of els) if ((await el.getText()).includes(expected)) return el
      return null
    },
    { timeout },
  )
}

/** A screenshot of the page (WebDriver) and one of the whole X screen (with notifications). */
export async function screenshots(driver, name) {
  const png = await driver.takeScreenshot()
  const { writeFileSync } = await import('node:fs')
  const page = path.join(ARTIFACTS, `${name}.png`)
  writeFileSync(page, Buffer.from(png, 'base64'))
  const screen = path.join(ARTIFACTS, `${name}-screen.png`)
  const r = spawnSync('import', ['-window', 'root', screen])
  return { page, screen: r.status === 0 ? screen : null }
}

// ---------------------------------------------------------------------------------------------
// Session bus and keyring
// ---------------------------------------------------------------------------------------------

/** The `Notify` calls dbus-monitor saw so far, as {app, summary, body, actions, hints}. */
export function notifications() {
  if (!NOTIFY_LOG || !existsSync(NOTIFY_LOG)) return []
  const log = readFileSync(NOTIFY_LOG, 'utf8')
  const calls = log.split(/\n(?=method call )/).filter((c) => c.includes('member=Notify'))
  return calls.map((call) => {
    const strings = [...call.matchAll(/^\s*string "((?:[^"\\]|\\.)*)"/gm)].map((m) => m[1])
    // Notify(app_name, replaces_id, app_icon, summary, body, actions[], hints{}, timeout)
    return { raw: call, app: strings[0], icon: strings[1], summary: strings[2], body: strings[3], strings }
  })
}

/**
 * The image the tray icon shows now: tray-icon writes it as a PNG for the indicator (the
 * StatusNotifierItem) under `$XDG_RUNTIME_DIR/tray-icon`, one file at a time.
 */
export function trayIconFile() {
  const dir = path.join(process.env.XDG_RUNTIME_DIR || '/tmp', 'tray-icon')
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => /^tray-icon-main-\d+\.png$/.test(f)) : []
  // The newest file: each launch of the app numbers its files from 1 again, and an earlier
  // launch's files may still be there.
  const counter = (f) => Number(/-(\d+)\.png$/.exec(f)[1])
  const written = (f) => statSync(path.join(dir, f)).mtimeMs
  files.sort((a, b) => written(b) - written(a) || counter(b) - counter(a))
  return files.length ? path.join(dir, files[0]) : null
}

/** One pixel of a PNG as [r, g, b, a] (0–255), read with ImageMagick. */
export function pixelOf(file, x, y) {
  const r = spawnSync('convert', [file, '-format', `%[fx:int(255*p{${x},${y}}.r)],%[fx:int(255*p{${x},${y}}.g)],%[fx:int(255*p{${x},${y}}.b)],%[fx:int(255*p{${x},${y}}.a)]`, 'info:'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`convert ${file}: ${r.stderr}`)
  return r.stdout.trim().split(',').map(Number)
}

/** Whether a top-level X window with this title is mapped (shown), per xwininfo. */
export function windowShown(title) {
  const r = spawnSync('xwininfo', ['-name', title], { encoding: 'utf8' })
  return r.status === 0 && /Map State: IsViewable/.test(r.stdout)
}

/** Closes a window as its title bar's close button would (close-window.py). */
export function closeWindow(title) {
  const r = spawnSync('/usr/bin/python3', [path.join(here, 'close-window.py'), title], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`close-window.py ${title}: ${r.status} ${r.stderr}`)
}

/** Chooses an action of a shown notification from dunst's context menu (see pick-action.sh). */
export function chooseNotificationAction(label, summary) {
  writeFileSync(path.join(process.env.HOME, 'dunst-pick'), `#${label} (${summary})`)
  const r = spawnSync('dunstctl', ['context'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`dunstctl context: ${r.stderr}`)
}

/** `secret-tool search` for the app's entries: [{username, secret}]. */
export function keyringEntries() {
  const r = spawnSync('secret-tool', ['search', '--all', 'service', 'dev.wrenchline.desk'], { encoding: 'utf8' })
  const out = `${r.stdout}\n${r.stderr}`
  const entries = []
  for (const block of out.split(/^\[/m).slice(1)) {
    const username = /attribute\.username = (.*)/.exec(block)?.[1]?.trim()
    const secret = /secret = (.*)/.exec(block)?.[1]?.trim()
    if (username) entries.push({ username, secret })
  }
  return entries
}

/** Files under `dir` (recursively) whose bytes contain `needle`. */
export function filesContaining(dir, needle) {
  const found = []
  const walk = (d) => {
    let names = []
    try {
      names = readdirSync(d)
    } catch {
      return
    }
    for (const name of names) {
      const p = path.join(d, name)
      let st
      try {
        st = statSync(p)
      } catch {
        continue
      }
      if (st.isDirectory()) walk(p)
      else if (st.isFile() && st.size < 50 * 1024 * 1024) {
        try {
          if (readFileSync(p).includes(needle)) found.push(p)
        } catch {}
      }
    }
  }
  walk(dir)
  return found
}
