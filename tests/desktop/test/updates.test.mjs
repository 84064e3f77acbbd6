// The app's own updates, end to end: a copy of the app (so the build's binary stays as it is)
// signs in to a wrenchline-server that serves releases from a folder; the app finds nothing, then
// a newer version whose package was altered after signing (offered, refused at install, the
// installed binary untouched), then a genuine older package, correctly signed for its own
// version, announced as the newer one by someone between the app and the server (refused: the
// signature binds the version), then the newer version correctly signed (installed: the binary on
// disk is the new package). The signing key is made for this run by session.sh; the app trusts it
// through WRENCHLINE_UPDATER_PUBKEY (debug builds only). Packages are signed as
// `tauri signer sign --app-version` does: `version:X` in minisign's signed trusted comment.

import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { APP, By, addMechanic, appLog, find, launchApp, quitApp, screenshots, startServer, textContains } from '../harness.mjs'

const MECHANIC = { email: 'uma@garage.example', name: 'Uma Update', password: 'uma-secret-password-1' }
const NEXT = '9.9.9'

const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex')

/** A package for `version` in `dir`, signed for that version; returns its path and signature. */
function signedPackage(dir, version) {
  const file = path.join(dir, `wrenchline-desk_${version}`)
  // A real executable, so the updater's "is this an ELF" check passes on its merits; the marker
  // makes it a different file from the running one.
  copyFileSync(APP, file)
  appendFileSync(file, `\nwrenchline-desk ${version}\n`)
  const comment = `timestamp:${Math.floor(Date.now() / 1000)}\tfile:${path.basename(file)}\tversion:${version}`
  const sign = spawnSync('minisign', ['-S', '-s', process.env.UPDATER_SECRET_KEY, '-m', file, '-x', `${file}.sig`, '-t', comment], {
    encoding: 'utf8',
  })
  assert.equal(sign.status, 0, sign.stderr)
  return { file, signature: () => readFileSync(`${file}.sig`).toString('base64') }
}

/**
 * Someone between the app and the server: passes everything through (HTTP and the realtime
 * WebSocket), except that while `manifest` is set it answers the update check with it, and
 * serves `files` (path → bytes) itself.
 */
async function startManInTheMiddle(target) {
  const { hostname, port } = new URL(target)
  const state = { manifest: null, files: new Map() }
  const sockets = new Set()
  const server = http.createServer((req, res) => {
    if (state.manifest && req.url.startsWith('/api/desk/updates/')) {
      res.writeHead(200, { 'content-type': 'application/json' })
      return res.end(JSON.stringify(state.manifest))
    }
    const own = state.files.get(req.url)
    if (own) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': own.length })
      return res.end(own)
    }
    const upstream = http.request({ host: hostname, port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode, up.headers)
      up.pipe(res)
    })
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  server.on('upgrade', (req, client, head) => {
    const upstream = net.connect(Number(port), hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`]
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`)
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`)
      upstream.write(head)
      client.pipe(upstream).pipe(client)
    })
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => (client.destroy(), upstream.destroy()))
    }
  })
  server.on('connection', (s) => sockets.add(s))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    state,
    stop() {
      server.close()
      for (const s of sockets) s.destroy()
    },
  }
}

/** `<releases>/<version>/`: the package, its signature and the release.json the server reads. */
function publish(releases, version, { tamper }) {
  const dir = path.join(releases, version)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const { file, signature: read } = signedPackage(dir, version)
  if (tamper) appendFileSync(file, 'one more byte than was signed')
  const signature = read()
  const entry = { file: path.basename(file), signature }
  writeFileSync(
    path.join(dir, 'release.json'),
    JSON.stringify({ version, notes: `Wrenchline ${version}: faster request list.`, platforms: { 'linux-x86_64': entry } }),
  )
  return file
}

describe('Wrenchline updates', { concurrency: false }, () => {
  let dir, releases, server, middle, driver, app, installed

  before(async () => {
    assert.ok(process.env.WRENCHLINE_UPDATER_PUBKEY, 'session.sh provides the updater key')
    dir = mkdtempSync(path.join(tmpdir(), 'wl-updates-'))
    releases = path.join(dir, 'releases')
    mkdirSync(releases)
    server = await startServer(dir, { releasesDir: releases })
    addMechanic(server, MECHANIC)
    middle = await startManInTheMiddle(server.base)
    mkdirSync(path.join(dir, 'app'))
    app = path.join(dir, 'app', 'wrenchline-desk')
    copyFileSync(APP, app)
    spawnSync('chmod', ['755', app])
    installed = sha256(app)
  })

  after(async () => {
    if (driver) await quitApp(driver, app).catch(() => undefined)
    middle?.stop()
    server?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('finds no update while the server has none', async () => {
    driver = await launchApp(app)
    const form = await find(driver, '[data-testid="sign-in-form"]', 30000)
    const url = await form.findElement(By.css('#server'))
    await url.clear()
    await url.sendKeys(middle.base)
    const email = await form.findElement(By.css('#email'))
    await email.clear()
    await email.sendKeys(MECHANIC.email)
    await form.findElement(By.css('#password')).sendKeys(MECHANIC.password)
    await form.findElement(By.css('[data-testid="sign-in"]')).click()
    await textContains(driver, '[data-testid="signed-in-as"]', MECHANIC.name)
    await (await find(driver, '[data-testid="nav-settings"]')).click()
    await (await find(driver, '[data-testid="update-check"]')).click()
    await textContains(driver, '[data-testid="update-status"]', 'is up to date')
  })

  it('offers a newer version and refuses its package when it does not match the signature', async () => {
    publish(releases, NEXT, { tamper: true })
    await (await find(driver, '[data-testid="update-check"]')).click()
    await textContains(driver, '[data-testid="update-status"]', `Wrenchline ${NEXT} is available`)
    await textContains(driver, '[data-testid="update-notes"]', 'faster request list')
    await (await find(driver, '[data-testid="update-install"]')).click()
    await textContains(driver, '[data-testid="update-status"]', 'did not match its signature', 60000)
    assert.equal(sha256(app), installed, 'the installed binary is untouched')
    assert.deepEqual(readdirSync(path.dirname(app)), ['wrenchline-desk'], 'nothing left beside it')
    await screenshots(driver, 'update-refused')
  })

  it('refuses a genuine older package announced as the newer version', async () => {
    const old = signedPackage(dir, '0.0.1')
    middle.state.files.set('/old-package', readFileSync(old.file))
    middle.state.manifest = {
      version: NEXT,
      notes: `Wrenchline ${NEXT}: urgent fix.`,
      url: `${middle.base}/old-package`,
      signature: old.signature(),
    }
    try {
      await (await find(driver, '[data-testid="update-check"]')).click()
      await textContains(driver, '[data-testid="update-notes"]', 'urgent fix')
      await (await find(driver, '[data-testid="update-install"]')).click()
      await textContains(driver, '[data-testid="update-status"]', 'older release announced as new', 60000)
      assert.match(appLog(), /update 9\.9\.9 refused: .*signed for version 0\.0\.1/)
    } finally {
      middle.state.manifest = null
    }
    assert.equal(sha256(app), installed, 'the installed binary is untouched')
    assert.deepEqual(readdirSync(path.dirname(app)), ['wrenchline-desk'], 'nothing left beside it')
  })

  it('installs the correctly signed package and offers a restart', async () => {
    const good = publish(releases, NEXT, { tamper: false })
    await (await find(driver, '[data-testid="update-check"]')).click()
    await (await find(driver, '[data-testid="update-install"]', 30000)).click()
    await textContains(driver, '[data-testid="update-status"]', `Wrenchline ${NEXT} is installed`, 60000)
    await find(driver, '[data-testid="update-restart"]')
    assert.equal(sha256(app), sha256(good), 'the binary on disk is the new package')
    // The running app carries on (on the old binary) until the mechanic restarts it.
    await (await find(driver, '[data-testid="nav-requests"]')).click()
    await textContains(driver, '[data-testid="update-banner"]', 'Restart to use it')
    await screenshots(driver, 'update-installed')
  })
})
