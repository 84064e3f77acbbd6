// Attachments in the desktop app, against a real wrenchline-server: with the window closed to the
// tray, the customer's photo and voice note arrive as native notifications that say "Photo" and
// "Voice note"; in the chat the photo shows inline and the voice note plays, both loaded through
// the shell's `wlmedia:` scheme (the page holds no token); the mechanic pastes an image into the
// composer (a synthesized paste event carrying a File), sees its preview, sends it, and the
// customer receives it as an `image`; the photo opens full screen, and "Save" writes the file
// into ~/Downloads exactly as the server serves it.

import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import {
  addMechanic,
  By,
  closeWindow,
  Customer,
  eventually,
  find,
  launchApp,
  notifications,
  offeredRequest,
  quitApp,
  screenshots,
  signIn,
  signOut,
  sleep,
  startServer,
  textContains,
  windowShown,
} from '../harness.mjs'

const KIM = { email: 'kim@garage.example', name: 'Kim Torque', password: 'kim-secret-password-1' }

/** A real JPEG and a WebM/Opus voice note, made by ffmpeg. */
function media(dir) {
  const photo = path.join(dir, 'leak.jpg')
  const voice = path.join(dir, 'idle-noise.webm')
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=800x600:rate=1', '-frames:v', '1', photo])
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=220:duration=3', '-c:a', 'libopus', voice])
  return { photo, voice }
}

/** The customer uploads a file and sends it in a message, as the web page does. */
async function customerSends(base, request, file, type) {
  const form = new FormData()
  form.append('file', new Blob([readFileSync(file)], { type }), path.basename(file))
  const upload = await fetch(`${base}/api/sessions/${request.sessionId}/attachments`, {
    method: 'POST',
    headers: { cookie: `wl_customer=${request.cookie}` },
    body: form,
  })
  const stored = await upload.json()
  assert.equal(upload.status, 201, JSON.stringify(stored))
  const post = await fetch(`${base}/api/sessions/${request.sessionId}/messages`, {
    method: 'POST',
    headers: { cookie: `wl_customer=${request.cookie}`, 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: `c-${stored.id}`, attachment_ids: [stored.id] }),
  })
  assert.ok(post.ok, `message ${post.status}`)
  return stored
}

describe('attachments in the desktop app', { concurrency: false }, () => {
  let dir, server, driver, request, customer, files

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'wl-desktop-media-'))
    files = media(dir)
    server = await startServer(dir)
    addMechanic(server, KIM)
    driver = await launchApp()
    await signIn(driver, server.base, KIM)
    request = await offeredRequest(server.base, { name: 'Dana Driver', concern: 'Oil under the car after parking' })
    await (await find(driver, `[data-testid="request"][data-session-id="${request.sessionId}"] [data-testid="accept"]`)).click()
    await find(driver, `[data-testid="chat"][data-session-id="${request.sessionId}"]`)
    customer = new Customer(server.base, request)
    await customer.join()
    await textContains(driver, '#room-status', 'Live with Dana Driver', 30000)
  })

  after(async () => {
    await customer?.leave()
    if (driver) await signOut(driver).catch(() => undefined)
    if (driver) await quitApp(driver).catch(() => undefined)
    server?.stop()
  })

  let photo, voice

  it('notifies "Photo" and "Voice note" for messages that carry only them', async () => {
    closeWindow('Wrenchline')
    await eventually('the window to be hidden', () => !windowShown('Wrenchline'))
    spawnSync('dunstctl', ['close-all'])
    photo = await customerSends(server.base, request, files.photo, 'image/jpeg')
    const photoNotice = await eventually('a Notify call for the photo', () =>
      notifications().find((n) => n.summary === 'New message from Dana Driver' && n.body === 'Photo'),
    )
    assert.equal(photoNotice.app, 'Wrenchline')
    voice = await customerSends(server.base, request, files.voice, 'audio/webm')
    await eventually('a Notify call for the voice note', () =>
      notifications().find((n) => n.summary === 'New message from Dana Driver' && n.body === 'Voice note'),
    )
    await sleep(500)
    const r = spawnSync('dunstctl', ['action', '0'], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    await eventually('the window to be shown again', () => windowShown('Wrenchline'))
  })

  it('shows the photo inline and plays the voice note, served by the shell without a token', async () => {
    const img = await find(driver, `li[data-attachment-id="${photo.id}"][data-kind="image"] img`)
    await eventually('the thumbnail to load', () =>
      driver.executeScript('return arguments[0].complete && arguments[0].naturalWidth > 0', img),
    )
    const src = await img.getAttribute('src')
    assert.match(src, /^(wlmedia:\/\/localhost\/|http:\/\/wlmedia\.localhost\/)/)
    assert.doesNotMatch(src, /token|bearer|eyJ/i, 'no token in the address')
    const audio = await find(driver, `li[data-attachment-id="${voice.id}"][data-kind="audio"] audio`)
    // A recorder's WebM states no duration (the player may say Infinity): the server's reading
    // of it is in the caption below.
    await eventually('the voice note to load its metadata', async () => {
      const state = await driver.executeScript('return [arguments[0].readyState, arguments[0].error && arguments[0].error.code]', audio)
      assert.equal(state[1], null, `the player failed: ${JSON.stringify(state)}`)
      return state[0] >= 1
    })
    const text = await (await find(driver, `li[data-attachment-id="${voice.id}"]`)).getText()
    assert.match(text, /Voice note, 0:0[23]/)
  })

  it('sends a pasted image with a preview first, and the customer receives it as a photo', async () => {
    const before = customer.messages.length
    // A PNG drawn on a canvas, pasted into the composer as a clipboard File.
    await driver.executeAsyncScript(`
      const done = arguments[arguments.length - 1]
      const canvas = document.createElement('canvas')
      canvas.width = 400
      canvas.height = 300
      const g = canvas.getContext('2d')
      g.fillStyle = '#c0392b'
      g.fillRect(0, 0, 400, 300)
      g.fillStyle = '#f1c40f'
      g.fillRect(100, 75, 200, 150)
      canvas.toBlob((blob) => {
        const file = new File([blob], 'screenshot.png', { type: 'image/png' })
        const data = new DataTransfer()
        data.items.add(file)
        const input = document.querySelector('#composer-input')
        let event
        try {
          event = new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true })
        } catch (e) {
          event = null
        }
        if (event && event.clipboardData && event.clipboardData.files.length === 1) {
          input.dispatchEvent(event)
        } else {
          const drop = new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true })
          input.dispatchEvent(drop)
        }
        done()
      }, 'image/png')
    `)
    const preview = await find(driver, '[data-testid="picked"] li[data-kind="image"] img')
    await eventually('the preview to draw', () =>
      driver.executeScript('return arguments[0].complete && arguments[0].naturalWidth === 400', preview),
    )
    await screenshots(driver, 'attachments-pasted-preview')
    await (await find(driver, 'form.composer button[type="submit"]')).click()
    const received = await eventually('the customer to receive the photo', () =>
      customer.messages.slice(before).find((m) => m.sender_role === 'mechanic' && m.attachments?.length === 1),
    )
    assert.equal(received.attachments[0].kind, 'image')
    await find(driver, `li[data-attachment-id="${received.attachments[0].id}"] img`)
  })

  it('opens the photo full screen and saves it to Downloads as served', async () => {
    const thumb = await find(driver, `li[data-attachment-id="${photo.id}"] button.thumb`)
    await thumb.click()
    const viewer = await find(driver, '[data-testid="attachment-viewer"]')
    const full = await viewer.findElement(By.css('img'))
    await eventually('the full picture to load', () =>
      driver.executeScript('return arguments[0].complete && arguments[0].naturalWidth', full),
    )
    assert.equal(await driver.executeScript('return arguments[0].naturalWidth', full), photo.width ?? 800)
    await sleep(300) // let the decoded picture paint
    await screenshots(driver, 'attachments-full-view')
    await (await viewer.findElement(By.xpath(".//button[normalize-space()='Save']"))).click()
    await (await find(driver, '[data-testid="close-viewer"]')).click()
    await textContains(driver, 'p.saved', 'Saved to', 20000)
    const saved = await (await find(driver, 'p.saved')).getText()
    const file = saved.replace(/^Saved to /, '').trim()
    assert.ok(file.startsWith(path.join(process.env.HOME, 'Downloads')), file)
    assert.ok(existsSync(file), file)
    const served = await fetch(`${server.base}/api/attachments/${photo.id}`, { headers: { cookie: `wl_customer=${request.cookie}` } })
    assert.deepEqual(readFileSync(file), Buffer.from(await served.arrayBuffer()))
    await screenshots(driver, 'attachments-chat')
  })
})
