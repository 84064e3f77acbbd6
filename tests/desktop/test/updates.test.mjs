// The app's own updates, end to end: a copy of the app (so the build's binary stays as it is)
// signs in to a wrenchline-server that serves releases from a folder; the app finds nothing, then
// a newer version whose package was altered after signing (offered, refused at install, the
// installed binary untouched), then the same version correctly signed (installed: the binary on
// disk is the new package). The signing key is made for this run by session.sh; the app trusts it
// through WRENCHLINE_UPDATER_PUBKEY (debug builds only).

import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { APP, By, addMechanic, find, launchApp, quitApp, screenshots, startServer, textContains } from '../harness.mjs'

const MECHANIC = { email: 'uma@garage.example', name: 'Uma Update', password: 'uma-secret-password-1' }
const NEXT = '9.9.9'

const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex')

/** `<releases>/<version>/`: the package, its signature and the release.json the server reads. */
function publish(releases, version, { tamper }) {
  const dir = path.join(releases, version)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `wrenchline-desk_${version}`)
  // A real executable, so the updater's "is this an ELF" check passes on its merits; the marker
  // makes it a different file from the running one.
  copyFileSync(APP, file)
  appendFileSync(file, `\nwrenchline-desk ${version}\n`)
  const sign = spawnSync('minisign', ['-S', '-s', process.env.UPDATER_SECRET_KEY, '-m', file, '-x', `${file}.sig`], {
    encoding: 'utf8',
  })
  assert.equal(sign.status, 0, sign.stderr)
  if (tamper) appendFileSync(file, 'one more byte than was signed')
  const signature = readFileSync(`${file}.sig`).toString('base64')
  const entry = { file: path.basename(file), signature }
  writeFileSync(
    path.join(dir, 'release.json'),
    JSON.stringify({ version, notes: `Wrenchline ${version}: faster request list.`, platforms: { 'linux-x86_64': entry } }),
  )
  return file
}

describe('Wrenchline updates', { concurrency: false }, () => {
  let dir, releases, server, driver, app, installed

  before(async () => {
    assert.ok(process.env.WRENCHLINE_UPDATER_PUBKEY, 'session.sh provides the updater key')
    dir = mkdtempSync(path.join(tmpdir(), 'wl-updates-'))
    releases = path.join(dir, 'releases')
    mkdirSync(releases)
    server = await startServer(dir, { releasesDir: releases })
    addMechanic(server, MECHANIC)
    mkdirSync(path.join(dir, 'app'))
    app = path.join(dir, 'app', 'wrenchline-desk')
    copyFileSync(APP, app)
    spawnSync('chmod', ['755', app])
    installed = sha256(app)
  })

  after(async () => {
    if (driver) await quitApp(driver, app).catch(() => undefined)
    server?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('finds no update while the server has none', async () => {
    driver = await launchApp(app)
    const form = await find(driver, '[data-testid="sign-in-form"]', 30000)
    const url = await form.findElement(By.css('#server'))
    await url.clear()
    await url.sendKeys(server.base)
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
