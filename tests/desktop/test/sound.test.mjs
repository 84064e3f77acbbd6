// The app's own notification sound. dunst, this suite's notification daemon, plays no sounds (it
// lacks the freedesktop "sound" capability), so with the sound on the app asks for the message
// sound by name and plays its own chime through the default audio output, which session.sh points
// at a file; with the sound off it asks for none and plays none. It signs out at the end, as the
// suite's other files expect a launch to start signed out. The managed settings file is
// emptied for this app launch (IT turns the sound off for the other tests) and put back after.

import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import {
  addMechanic,
  appLog,
  By,
  eventually,
  find,
  launchApp,
  notifications,
  offeredRequest,
  quitApp,
  signIn,
  signOut,
  sleep,
  startServer,
  textContains,
} from '../harness.mjs'

const PAT = { email: 'pat@garage.example', name: 'Pat Socket', password: 'pat-secret-password-1' }
const SOUND_OUT = process.env.WRENCHLINE_TEST_SOUND_OUT
const MANAGED = process.env.WRENCHLINE_MANAGED_SETTINGS
const played = () => (existsSync(SOUND_OUT) ? statSync(SOUND_OUT).size : 0)
const chimes = () => appLog().split('\n').filter((l) => l.includes('played the notification sound')).length

describe('Wrenchline notification sound', { concurrency: false }, () => {
  let dir, server, driver, managed

  before(async () => {
    assert.ok(SOUND_OUT, 'session.sh points the audio output at a file')
    assert.ok(MANAGED, 'run.sh names the managed settings file')
    managed = readFileSync(MANAGED, 'utf8')
    writeFileSync(MANAGED, '')
    dir = mkdtempSync(path.join(tmpdir(), 'wl-sound-'))
    server = await startServer(dir)
    addMechanic(server, PAT)
  })

  after(async () => {
    if (driver) await quitApp(driver).catch(() => undefined)
    server?.stop()
    writeFileSync(MANAGED, managed)
  })

  it('plays its own chime when the notification daemon plays no sound', async () => {
    driver = await launchApp()
    await signIn(driver, server.base, PAT)
    await textContains(driver, '[data-testid="feed-status"]', 'Connected', 30000)
    const before = played()
    const chimesBefore = chimes()
    await offeredRequest(server.base, { concern: 'Belt squeals for a minute after a cold start' })
    const notice = await eventually('the Notify call for the request', () =>
      notifications().find((n) => n.body.startsWith('Belt squeals')),
    )
    assert.match(notice.raw, /"sound-name"/, 'the message sound asked for by name')
    assert.doesNotMatch(notice.raw, /"suppress-sound"\s+variant\s+boolean true/)
    // 0.28 s of the chime at any sample rate and format ALSA settles on is well over 4 KiB.
    await eventually('the chime written to the audio output', () => played() - before > 4096, { timeout: 15000 })
    await eventually('the chime in the app log', () => chimes() === chimesBefore + 1)
  })

  it('plays nothing once the mechanic turns the sound off', async () => {
    await (await find(driver, '[data-testid="nav-settings"]')).click()
    const toggle = await find(driver, '[data-testid="setting-notification_sound"]')
    assert.equal(await toggle.getAttribute('data-locked'), 'false', 'nothing is managed in this launch')
    const box = await toggle.findElement(By.css('input'))
    assert.equal(await box.isSelected(), true, 'the sound is on by default')
    await box.click()
    await eventually('the setting saved', async () => !(await box.isSelected()))
    const before = played()
    const chimesBefore = chimes()
    await offeredRequest(server.base, { concern: 'Wipers stop halfway across the windscreen' })
    const notice = await eventually('the Notify call for the second request', () =>
      notifications().find((n) => n.body.startsWith('Wipers stop')),
    )
    assert.match(notice.raw, /"suppress-sound"\s+variant\s+boolean true/, 'the sound suppressed')
    await sleep(2000)
    assert.equal(played(), before, 'nothing more written to the audio output')
    assert.equal(chimes(), chimesBefore, 'no chime logged')
  })

  it('signs out, so the next launch starts at the sign-in form', async () => {
    await signOut(driver)
  })
})
