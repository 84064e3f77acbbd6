// The mechanic's availability, write-up and History in the desktop app, against a real
// wrenchline-server: Away and Online reach the server's count; during a live session the mechanic
// writes the summary the customer reads and private notes the customer never gets; after it, the
// History view finds the session by vehicle and by customer name and opens it with its transcript,
// summary and rating. One app, one server, steps in order.

import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import {
  addMechanic,
  api,
  APP,
  appPids,
  By,
  Customer,
  eventually,
  find,
  launchApp,
  login,
  offeredRequest,
  quitApp,
  screenshots,
  signIn,
  signOut,
  startServer,
  textContains,
} from '../harness.mjs'

const ROSA = { email: 'rosa@garage.example', name: 'Rosa Ratchet', password: 'rosa-secret-password-1' }

describe('History, summary and availability in the desktop app', { concurrency: false }, () => {
  let dir, server, driver, request, customer, token

  before(async () => {
    assert.ok(appPids().length === 0, `another ${APP} is already running`)
    dir = mkdtempSync(path.join(tmpdir(), 'wl-desktop-history-'))
    server = await startServer(dir)
    addMechanic(server, ROSA)
    token = (await login(server.base, ROSA.email, ROSA.password)).access_token
  })

  after(async () => {
    await customer?.leave()
    if (driver) await signOut(driver).catch(() => undefined)
    if (driver) await quitApp(driver).catch(() => undefined)
    server?.stop()
  })

  const online = async () => (await api(server.base, 'GET', '/api/availability')).body.mechanics_online

  it('signs in, and Away and Online reach the server', async () => {
    driver = await launchApp()
    await signIn(driver, server.base, ROSA)
    await eventually('the server to count the mechanic', async () => (await online()) === 1)
    await (await find(driver, '[data-testid="availability"] option[value="away"]')).click()
    await eventually('the server to stop counting the mechanic', async () => (await online()) === 0)
    await (await find(driver, '[data-testid="availability"] option[value="online"]')).click()
    await eventually('the server to count the mechanic again', async () => (await online()) === 1)
  })

  it('writes a summary for the customer and private notes during the session', async () => {
    request = await offeredRequest(server.base, {
      name: 'Jordan Quill',
      vehicle: { year: 2016, make: 'Subaru', model: 'Outback', vin: null, mileage: 120000 },
      concern: 'Engine light on and a rough idle when cold',
    })
    await (await find(driver, `[data-testid="request"][data-session-id="${request.sessionId}"] [data-testid="accept"]`)).click()
    await find(driver, `[data-testid="chat"][data-session-id="${request.sessionId}"]`)
    customer = new Customer(server.base, request)
    await customer.join()
    await textContains(driver, '#room-status', 'Live')
    const said = await customer.say('It shakes at every red light.')
    assert.equal(said.status, 201)

    const editor = await find(driver, `[data-testid="chat"][data-session-id="${request.sessionId}"] [data-testid="summary-editor"][data-loaded="true"]`)
    await (await editor.findElement(By.css('[data-testid="summary-found"]'))).sendKeys('Misfire on cylinder 3: a worn ignition coil.')
    await (await editor.findElement(By.css('[data-testid="summary-next"]'))).sendKeys('Replace the coil and the spark plugs.')
    await (await editor.findElement(By.css('[data-testid="summary-urgency"] option[value="soon"]'))).click()
    await (await editor.findElement(By.css('[data-testid="summary-save"]'))).click()
    await textContains(driver, '[data-testid="summary-status"]', 'Summary saved')
    await (await editor.findElement(By.css('[data-testid="notes-body"]'))).sendKeys('Customer mentioned a cheap aftermarket coil last year.')
    await (await editor.findElement(By.css('[data-testid="notes-save"]'))).click()
    await textContains(driver, '[data-testid="notes-status"]', 'Notes saved')
    await screenshots(driver, 'desktop-summary-editor')

    const seen = await api(server.base, 'GET', `/api/sessions/${request.sessionId}/outcome`, { cookie: request.cookie })
    assert.equal(seen.status, 200)
    assert.equal(seen.body.summary.found, 'Misfire on cylinder 3: a worn ignition coil.')
    assert.equal(seen.body.summary.urgency, 'soon')
    assert.doesNotMatch(JSON.stringify(seen.body), /aftermarket coil/, 'the notes are not the customer\'s')
    const notes = await api(server.base, 'GET', `/api/sessions/${request.sessionId}/notes`, { cookie: request.cookie })
    assert.equal(notes.status, 403)
  })

  it('finds the session in History by vehicle and by customer name, with transcript, summary and rating', async () => {
    const ended = await api(server.base, 'POST', `/api/sessions/${request.sessionId}/end`, { token })
    assert.equal(ended.status, 200)
    assert.equal(ended.body.status, 'completed')
    const rated = await api(server.base, 'PUT', `/api/sessions/${request.sessionId}/rating`, {
      cookie: request.cookie,
      body: { stars: 5, comment: 'Spot on.' },
    })
    assert.equal(rated.status, 200, JSON.stringify(rated.body))
    // Another session of Rosa's that the searches must tell apart.
    const other = await offeredRequest(server.base, {
      name: 'Avery Stone',
      vehicle: { year: 2019, make: 'Toyota', model: 'Camry', vin: null, mileage: null },
      concern: 'Brakes squeal',
    })
    assert.equal((await api(server.base, 'POST', `/api/sessions/${other.sessionId}/accept`, { token })).status, 200)

    await (await find(driver, '[data-testid="nav-history"]')).click()
    await find(driver, `[data-testid="history-entry"][data-session-id="${other.sessionId}"]`)
    const search = await find(driver, '[data-testid="history-search"]')
    const shown = async () => {
      const els = await driver.findElements(By.css('[data-testid="history-entry"]'))
      return Promise.all(els.map((e) => e.getAttribute('data-session-id')))
    }
    await search.sendKeys('Outback')
    await eventually('only the Subaru listed', async () => JSON.stringify(await shown()) === JSON.stringify([request.sessionId]))
    await search.clear()
    await search.sendKeys('avery')
    await eventually('only Avery\'s session listed', async () => JSON.stringify(await shown()) === JSON.stringify([other.sessionId]))
    await search.clear()
    await search.sendKeys('jordan quill')
    await eventually('only Jordan\'s session listed', async () => JSON.stringify(await shown()) === JSON.stringify([request.sessionId]))

    await (await find(driver, `[data-testid="history-entry"][data-session-id="${request.sessionId}"]`)).click()
    await find(driver, `[data-testid="history-detail"][data-session-id="${request.sessionId}"]`)
    await textContains(driver, '[data-testid="history-transcript"]', 'It shakes at every red light.')
    await textContains(driver, '[data-testid="history-summary"]', 'Soon: within a few weeks')
    await textContains(driver, '[data-testid="history-rating"]', '★★★★★')
    await textContains(driver, '[data-testid="history-rating"]', 'Spot on.')
    const notes = await find(driver, '[data-testid="history-detail"] [data-testid="summary-editor"][data-loaded="true"] [data-testid="notes-body"]')
    assert.match(await notes.getAttribute('value'), /aftermarket coil/, 'the mechanic sees their own notes')
    await screenshots(driver, 'desktop-history')
  })
})
