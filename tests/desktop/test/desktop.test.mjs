// The desktop app end to end, as a mechanic uses it, against a real wrenchline-server: sign in →
// the refresh token is in the Secret Service (and nowhere on disk) → restart → signed in without
// a password → a customer's request arrives as a native notification and a row → accept → the
// customer joins → both see the session live → messages both ways → a request another mechanic
// took answers "another mechanic took this request" → end → sign out forgets the token.
// Steps share one app and one server and run in order.

import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import {
  APP,
  By,
  Customer,
  addMechanic,
  api,
  SINGLE_INSTANCE_NAME,
  appLog,
  appPids,
  busNameOwned,
  chooseNotificationAction,
  closeWindow,
  eventually,
  filesContaining,
  find,
  keyringEntries,
  launchApp,
  login,
  notifications,
  offeredRequest,
  pixelOf,
  quitApp,
  repoRoot,
  screenshots,
  sleep,
  startProxy,
  startServer,
  startStandIn,
  textContains,
  trayIconFile,
  watchMethodCalls,
  windowShown,
} from '../harness.mjs'

// A point inside the tray badge's red disc (crates/desk-core/src/badge.rs: 64 px icon, disc of radius 19
// centred at (43.8, 20.2)), left of the digits.
const BADGE = [27, 20]
const RED = [220, 38, 38, 255]
const PLAIN_ICON = path.join(repoRoot, 'icons', '64x64.png')
const trayPixel = () => {
  const file = trayIconFile()
  return file ? pixelOf(file, ...BADGE) : null
}

const IMG = '<img src=x onerror=window.__xss=1>'
// No double quotes: dbus-monitor prints strings without escaping them.
const SVG = '<svg onload=window.__xss=2></svg>'
const SCRIPT = '<script>window.__xss=3</script>'
/** Text as freedesktop notification markup shows it literally. */
const escapeMarkup = (text) => text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')

/** Nothing a customer wrote ran or became an element in the app's webview. */
async function assertInert(driver, where) {
  assert.equal(await driver.executeScript('return window.__xss'), null, `nothing ran in ${where}`)
  const injected = await driver.findElements(By.css('main img, main script, main svg:not([aria-hidden]), main b, main i'))
  assert.equal(injected.length, 0, `no injected elements in ${where}`)
}

const SAM = { email: 'sam@garage.example', name: 'Sam Wrench', password: 'sam-secret-password-1' }
const ALEX = { email: 'alex@garage.example', name: 'Alex Spanner', password: 'alex-secret-password-1' }

describe('Wrenchline desktop app', { concurrency: false }, () => {
  let dir, server, proxy, driver, first, customer

  before(async () => {
    assert.ok(appPids().length === 0, `another ${APP} is already running`)
    dir = mkdtempSync(path.join(tmpdir(), 'wl-desktop-'))
    server = await startServer(dir)
    proxy = await startProxy(server.base)
    addMechanic(server, SAM)
    addMechanic(server, ALEX)
  })

  after(async () => {
    await customer?.leave()
    if (driver) await quitApp(driver).catch(() => undefined)
    proxy?.stop()
    server?.stop()
  })

  it('signs in with server, email and password', async () => {
    driver = await launchApp()
    const form = await find(driver, '[data-testid="sign-in-form"]', 30000)
    const server = await form.findElement(By.css('#server'))
    // Plain http to another computer is refused before anything is sent.
    await server.clear()
    await server.sendKeys('http://192.0.2.10:8080')
    // The form may hold the email of an earlier file's mechanic (the app remembers the last one).
    const email = await form.findElement(By.css('#email'))
    await email.clear()
    await email.sendKeys(SAM.email)
    await form.findElement(By.css('#password')).sendKeys(SAM.password)
    await form.findElement(By.css('[data-testid="sign-in"]')).click()
    await textContains(driver, '[data-testid="sign-in-error"]', 'use its https:// address')
    await server.clear()
    await server.sendKeys(proxy.base)
    await form.findElement(By.css('[data-testid="sign-in"]')).click()
    await textContains(driver, '[data-testid="signed-in-as"]', SAM.name)
    await textContains(driver, '[data-testid="feed-status"]', 'Connected')
  })

  it('keeps the refresh token in the Secret Service, never on disk', async () => {
    const entries = await eventually('a keyring entry', () => {
      const found = keyringEntries().filter((e) => e.username === proxy.base)
      return found.length ? found : null
    })
    assert.equal(entries.length, 1)
    const token = entries[0].secret
    assert.ok(token && token.length > 20, 'the stored secret looks like a token')
    const leaks = filesContaining(process.env.HOME, token)
    assert.deepEqual(leaks, [], 'the refresh token appears in no file under HOME')
  })

  it('signs in again after a restart without asking for the password', async () => {
    await quitApp(driver)
    driver = await launchApp()
    await textContains(driver, '[data-testid="signed-in-as"]', SAM.name, 30000)
    const forms = await driver.findElements(By.css('[data-testid="sign-in-form"]'))
    assert.equal(forms.length, 0, 'no sign-in form after the restart')
    await textContains(driver, '[data-testid="feed-status"]', 'Connected')
    await find(driver, '[data-testid="no-requests"]')
  })

  it('starts when launched while the previous instance is quitting', async () => {
    // The previous instance holds the single-instance name but answers nothing (stopped), so the
    // new launch's handoff waits on it; it then dies without replying, as a quitting app does.
    const restarts = () => appLog().match(/started again after the previous instance went away/g)?.length ?? 0
    await quitApp(driver)
    await eventually('the quit app to give up the single-instance name', () => !busNameOwned(SINGLE_INSTANCE_NAME))
    const restartsBefore = restarts()
    const standIn = startStandIn()
    const handoffs = watchMethodCalls('ExecuteCallback')
    try {
      await eventually('the other instance to hold the single-instance name', () => busNameOwned(SINGLE_INSTANCE_NAME))
      standIn.signal('SIGSTOP')
      await eventually('the bus monitor', () => handoffs.ready())
      const launching = launchApp()
      launching.catch(() => undefined)
      await eventually('the new launch to hand its arguments over', () => handoffs.seen())
      standIn.signal('SIGKILL')
      driver = await launching
    } finally {
      handoffs.stop()
      standIn.signal('SIGKILL')
    }
    await textContains(driver, '[data-testid="signed-in-as"]', SAM.name, 30000)
    await textContains(driver, '[data-testid="feed-status"]', 'Connected')
    assert.equal(restarts(), restartsBefore + 1, 'the launch started again once, by itself')
  })

  it('shows a new request as a native notification and a live row', async () => {
    first = await offeredRequest(server.base, {
      concern: 'Grinding noise from the front when braking at low speed',
      plan: 'trial',
    })
    const notice = await eventually('a Notify call for the request', () =>
      // Other files' requests may have the same vehicle: this one is known by its concern.
      notifications().find((n) => n.summary === 'New request: 2018 Honda Civic' && n.body.startsWith('Grinding noise')),
    )
    assert.equal(notice.app, 'Wrenchline')
    assert.match(notice.body, /^Grinding noise from the front/)
    assert.match(notice.body, /Plan: trial/)
    assert.ok(notice.strings.includes('accept') && notice.strings.includes('Accept'), 'an Accept action')
    // IT turned the sound off (tests/desktop/run.sh writes the managed file), and that wins.
    assert.match(notice.raw, /"suppress-sound"\s+variant\s+boolean true/, 'the sound suppressed, as IT set it')
    assert.doesNotMatch(notice.raw, /"sound-name"/, 'no sound asked for')
    const row = await find(driver, `[data-testid="request"][data-session-id="${first.sessionId}"]`)
    const rowText = await row.getText()
    assert.match(rowText, /2018 Honda Civic/)
    assert.match(rowText, /Grinding noise/)
    assert.match(rowText, /trial/)
    assert.match(rowText, /waiting (just now|\d+ min)/)
    assert.equal(await (await find(driver, '[data-testid="pending-count"]')).getText(), '1')
    await eventually('the pending count drawn on the tray icon', () => String(trayPixel()) === String(RED))
    await sleep(500) // let the notification popup draw
    await screenshots(driver, 'requests')
  })

  it('brings the window forward on the request when the notification is clicked', async () => {
    // dunstctl invokes the notification's default action, as a click does.
    const r = spawnSync('dunstctl', ['action', '0'], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    await eventually('the row to be focused', async () =>
      (await (await find(driver, `#request-${first.sessionId}`)).getAttribute('class')).includes('focused'),
    )
  })

  it('accepts the request and waits for the customer', async () => {
    await (await find(driver, `[data-testid="request"][data-session-id="${first.sessionId}"] [data-testid="accept"]`)).click()
    await find(driver, `[data-testid="chat"][data-session-id="${first.sessionId}"]`)
    await textContains(driver, '#room-status', `Waiting for ${first.name} to join`)
    const session = await api(server.base, 'GET', `/api/sessions/${first.sessionId}`, { cookie: first.cookie })
    assert.equal(session.body.status, 'waiting')
    const plain = pixelOf(PLAIN_ICON, ...BADGE)
    await eventually('the tray icon without a count', () => String(trayPixel()) === String(plain))
  })

  it('goes live on both sides when the customer joins', async () => {
    customer = new Customer(server.base, first)
    await customer.join()
    await textContains(driver, '#room-status', `Live with ${first.name}`)
    const countdown = await (await find(driver, '[data-testid="countdown"]')).getText()
    assert.match(countdown, /^\d{2}:\d{2}$/)
    await textContains(driver, '[data-testid="presence"]', 'is in the chat')
    await eventually('the customer to see the session live', async () => {
      const s = await customer.session()
      return s.body.status === 'live' && customer.statuses.includes('live')
    })
    await eventually("the customer to see the mechanic's presence", () =>
      Object.values(customer.presence).some((metas) => metas.some((m) => m.role === 'mechanic')),
    )
  })

  it('carries messages both ways and shows typing', async () => {
    const composer = await find(driver, '#composer-input')
    await composer.sendKeys('Hi Dana, I am looking at your brakes.')
    await composer.sendKeys('\uE007') // Enter sends
    await eventually('the customer to receive the message', () =>
      customer.messages.find((m) => m.body === 'Hi Dana, I am looking at your brakes.' && m.sender_role === 'mechanic'),
    )
    await customer.typing()
    await textContains(driver, '.typing', 'is typing')
    const sent = await customer.say('Thanks! It happens mostly in the morning.')
    assert.equal(sent.status, 201)
    await textContains(driver, '.message', 'It happens mostly in the morning.')
    await textContains(driver, '.message.mine', 'I am looking at your brakes.')
  })

  it('shows the raw presence state in the debug panel', async () => {
    await (await find(driver, '[data-testid="presence-debug-toggle"]')).click()
    const raw = await textContains(driver, '[data-testid="presence-raw"]', customer.user.id)
    const state = JSON.parse(await raw.getText())
    const payloads = Object.values(state).flatMap((v) => (Array.isArray(v) ? v : v.metas))
    assert.ok(payloads.some((p) => p.user_id === customer.user.id && p.role === 'customer'))
    assert.ok(payloads.some((p) => p.role === 'mechanic'))
    await screenshots(driver, 'chat')
  })

  it('says another mechanic took a request that was taken first', async () => {
    await (await find(driver, '[data-testid="nav-requests"]')).click()
    const second = await offeredRequest(server.base, {
      name: 'Riley Road',
      vehicle: { year: 2015, make: 'Toyota', model: 'Corolla', vin: null, mileage: 120000 },
      concern: 'Check engine light after refuelling',
      plan: 'trial',
    })
    const accept = await find(driver, `[data-testid="request"][data-session-id="${second.sessionId}"] [data-testid="accept"]`)
    // The app hears of the other mechanic's accept late, as on a slow link, and accepts too.
    proxy.hold()
    try {
      const alex = await login(server.base, ALEX.email, ALEX.password)
      const won = await api(server.base, 'POST', `/api/sessions/${second.sessionId}/accept`, { token: alex.access_token })
      assert.equal(won.status, 200)
      await accept.click()
      await textContains(driver, '[data-testid="notice"]', 'Another mechanic took this request')
      const rows = await driver.findElements(By.css(`[data-testid="request"][data-session-id="${second.sessionId}"]`))
      assert.equal(rows.length, 0, 'the row is gone')
    } finally {
      proxy.release()
    }
    await screenshots(driver, 'request-taken')
  })

  it('does not notify while away, and still lists the request', async () => {
    const online = async () => (await api(server.base, 'GET', '/api/availability')).body.mechanics_online
    assert.equal(await online(), 1, 'the signed-in mechanic counts as available')
    await (await find(driver, '[data-testid="availability"] option[value="away"]')).click()
    await find(driver, '[data-testid="away"]')
    await eventually('the server to stop counting the mechanic', async () => (await online()) === 0)
    const before = notifications().length
    const third = await offeredRequest(server.base, {
      name: 'Kim Cruise',
      vehicle: { year: 2012, make: 'Ford', model: 'Focus', vin: null, mileage: null },
      concern: 'Battery drains overnight',
    })
    await find(driver, `[data-testid="request"][data-session-id="${third.sessionId}"]`)
    await sleep(1500)
    assert.equal(notifications().length, before, 'no Notify call while away')
    await (await find(driver, '[data-testid="availability"] option[value="online"]')).click()
    await eventually('the away note to go', async () => (await driver.findElements(By.css('[data-testid="away"]'))).length === 0)
    await eventually('the server to count the mechanic again', async () => (await online()) === 1)
  })

  it('keeps notifying from the tray with the window closed, and a click brings it back on the request', async () => {
    assert.ok(windowShown('Wrenchline'), 'the window is shown to begin with')
    closeWindow('Wrenchline')
    await eventually('the window to be hidden', () => !windowShown('Wrenchline'))
    assert.equal(appPids().length, 1, 'closing the window keeps the app running')
    spawnSync('dunstctl', ['close-all'])
    const quiet = await offeredRequest(server.base, {
      name: 'Pat Parked',
      vehicle: { year: 2019, make: 'Kia', model: 'Soul', vin: null, mileage: 41000 },
      concern: 'Clicking from the steering column when turning',
    })
    await eventually('the Notify call with the window hidden', () =>
      notifications().find((n) => n.summary === 'New request: 2019 Kia Soul'),
    )
    await sleep(500) // let dunst show it before its default action is invoked
    const r = spawnSync('dunstctl', ['action', '0'], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    await eventually('the window to be shown again', () => windowShown('Wrenchline'))
    await eventually('the row to be focused', async () =>
      (await (await find(driver, `#request-${quiet.sessionId}`)).getAttribute('class')).includes('focused'),
    )
  })

  it("shows a customer's markup as text everywhere, and accepts from the notification's Accept action", async () => {
    await (await find(driver, '[data-testid="nav-requests"]')).click()
    const hostile = await offeredRequest(server.base, {
      name: `<b>Kai</b>${IMG}`,
      vehicle: { year: 2016, make: SVG.slice(0, 50), model: '<i>Outback</i>', vin: null, mileage: null },
      concern: `Brakes grind ${IMG} and squeal ${SCRIPT}`,
    })
    // dunst advertises body-markup: the customer's words are escaped in the summary as well.
    const summary = escapeMarkup(`New request: 2016 ${SVG.slice(0, 50)} <i>Outback</i>`)
    const notice = await eventually('the Notify call', () => notifications().find((n) => n.summary === summary))
    assert.match(notice.body, /^Brakes grind &lt;img src=x onerror=window.__xss=1&gt; and squeal &lt;script&gt;/, 'markup escaped for the daemon')
    const row = await find(driver, `[data-testid="request"][data-session-id="${hostile.sessionId}"]`)
    assert.match(await row.getText(), /<i>Outback<\/i>/)
    assert.match(await row.getText(), /Brakes grind <img src=x onerror=window\.__xss=1> and squeal <script>/)
    await assertInert(driver, 'the request list')

    chooseNotificationAction('Accept', summary)
    await find(driver, `[data-testid="chat"][data-session-id="${hostile.sessionId}"]`)
    const accepted = await api(server.base, 'GET', `/api/sessions/${hostile.sessionId}`, { cookie: hostile.cookie })
    assert.equal(accepted.body.status, 'waiting')
    assert.equal(accepted.body.mechanic_name, SAM.name)
    await textContains(driver, '#room-status', `Waiting for <b>Kai</b>${IMG} to join`)

    const kai = new Customer(server.base, hostile)
    try {
      await kai.join()
      await textContains(driver, '#room-status', 'Live with <b>Kai</b>')
      assert.equal((await kai.say(`and ${SVG} ${SCRIPT}`)).status, 201)
      await textContains(driver, '.message', `and ${SVG} ${SCRIPT}`)
      await assertInert(driver, 'the chat')
    } finally {
      await kai.leave()
    }
    await driver.executeScript(
      `document.querySelector('[data-testid="chat"][data-session-id="${hostile.sessionId}"] [data-testid="close-chat"]').click()`,
    )
    await eventually('the chat tab to close', async () =>
      (await driver.findElements(By.css(`[data-testid="nav-chat"][data-session-id="${hostile.sessionId}"]`))).length === 0,
    )
  })

  it('shows settings managed by IT as locked', async () => {
    await (await find(driver, '[data-testid="nav-settings"]')).click()
    const sound = await find(driver, '[data-testid="setting-notification_sound"]')
    assert.equal(await sound.getAttribute('data-locked'), 'true')
    const box = await sound.findElement(By.css('input'))
    assert.equal(await box.isEnabled(), false)
    assert.equal(await box.isSelected(), false, "IT's value (off) wins over the default (on)")
    const notify = await find(driver, '[data-testid="setting-notifications"]')
    assert.equal(await notify.getAttribute('data-locked'), 'false')
    await textContains(driver, '[data-testid="managed-note"]', 'managed by your IT department')
  })

  it('starts at login when asked to', async () => {
    const entry = path.join(process.env.HOME, '.config', 'autostart', 'Wrenchline.desktop')
    const box = await find(driver, '[data-testid="setting-start_at_login"] input')
    await box.click()
    await eventually('the autostart entry', () => existsSync(entry))
    assert.match(readFileSync(entry, 'utf8'), /Exec=.*wrenchline-desk/)
    await box.click()
    await eventually('the autostart entry to go', () => !existsSync(entry))
  })

  it('ends the session from the chat', async () => {
    await (await find(driver, `[data-testid="nav-chat"][data-session-id="${first.sessionId}"]`)).click()
    await textContains(driver, '#room-status', `Live with ${first.name}`)
    const chat = await find(driver, `[data-testid="chat"][data-session-id="${first.sessionId}"]`)
    await (await chat.findElement(By.xpath(".//button[normalize-space()='End session']"))).click()
    await (await chat.findElement(By.css('.end .button.danger'))).click()
    await textContains(driver, '#room-status', 'Session completed')
    await eventually('the customer to see it completed', () => customer.statuses.includes('completed'))
  })

  it('a second launch with a deep link focuses the running app on that session', async () => {
    await (await find(driver, '[data-testid="nav-requests"]')).click()
    // Close the chat, then let the link bring it back.
    await driver.executeScript(
      `document.querySelector('[data-testid="chat"][data-session-id="${first.sessionId}"] [data-testid="close-chat"]').click()`,
    )
    await eventually('the chat tab to close', async () => (await driver.findElements(By.css('[data-testid="nav-chat"]'))).length === 0)
    const second = spawn(APP, [`wrenchline://session/${first.sessionId}`], { stdio: 'ignore' })
    const code = await new Promise((resolve) => second.on('exit', resolve))
    assert.equal(code, 0, 'the second instance exits')
    assert.equal(appPids().length, 1, 'one instance runs')
    await find(driver, `[data-testid="nav-chat"][data-session-id="${first.sessionId}"]`)
    await textContains(driver, '#room-status', 'Session completed')
  })

  it('refreshes the access token before it expires and keeps the feed alive', async () => {
    const logFile = path.join(process.env.HOME, '.local', 'share', 'dev.wrenchline.desk', 'logs', 'Wrenchline.log')
    await eventually('a token refresh in the app log', () => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('access token refreshed'), {
      timeout: 60000,
      every: 1000,
    })
    // Past the first access token's lifetime: the feed and the API still work.
    await sleep(Number(process.env.WRENCHLINE_ACCESS_TOKEN_TTL ?? 0) * 250)
    const late = await offeredRequest(server.base, {
      name: 'Lee Late',
      vehicle: { year: 2020, make: 'Mazda', model: 'CX-5', vin: null, mileage: 30000 },
      concern: 'Squeaky belt on start',
    })
    await eventually('the notification after the refresh', () =>
      notifications().find((n) => n.summary === 'New request: 2020 Mazda CX-5'),
    )
    await (await find(driver, '[data-testid="nav-requests"]')).click()
    await find(driver, `[data-testid="request"][data-session-id="${late.sessionId}"]`)
    const log = readFileSync(path.join(process.env.HOME, '.local', 'share', 'dev.wrenchline.desk', 'logs', 'Wrenchline.log'), 'utf8')
    assert.ok(!/could not load the requests/.test(log), 'the API kept answering')
  })

  it('signs out and forgets the stored token', async () => {
    await (await find(driver, '[data-testid="sign-out"]')).click()
    await find(driver, '[data-testid="sign-in-form"]')
    await eventually('the keyring entry to be removed', () => keyringEntries().filter((e) => e.username === proxy.base).length === 0)
    writeFileSync(path.join(dir, 'done'), 'ok')
  })
})
