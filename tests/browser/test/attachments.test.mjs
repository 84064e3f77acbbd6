// Photos and voice notes from the customer's page, in Chromium with a fake microphone and camera
// (`--use-fake-device-for-media-stream`, `--use-fake-ui-for-media-stream`): a photo picked with
// the camera input (a real JPEG made by ffmpeg) shows its preview, uploads, and arrives at the
// mechanic (crates/client's example, or the Node stand-in) as an `image` attachment; the
// thumbnail opens full screen; a voice note recorded with MediaRecorder arrives as `audio`. A
// file that is not a picture and one over the size limit are refused, and the page shows the
// server's reason. Photographed at 375 px and 1280 px.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  CHROMIUM_ARGS,
  MechanicProcess,
  assertClean,
  createMechanic,
  inspectClean,
  newCustomer,
  newRequest,
  sleep,
  startServer,
  waitForText,
} from '../lib/harness.mjs';

let server;
let browser;
let mechanic;
let work;

before(async () => {
  server = await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: [...CHROMIUM_ARGS, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
  });
  mechanic = await MechanicProcess.start(server, await createMechanic(server, 'Sam Spanner'));
  work = mkdtempSync(path.join(tmpdir(), 'wl-attachments-'));
});

after(async () => {
  await mechanic?.stop();
  await browser?.close();
  await server?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A real 640×480 JPEG (ffmpeg's test pattern), as a phone camera would hand it over. */
function cameraJpeg() {
  const file = path.join(work, 'dash-light.jpg');
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=640x480:rate=1', '-frames:v', '1', file]);
  return file;
}

/** The mechanic's next message event carrying attachments; on a timeout, what the page shows. */
async function nextAttachmentMessage(page) {
  try {
    return await mechanic.next((e) => e.event === 'message' && Array.isArray(e.message?.attachments) && e.message.attachments.length > 0, {
      what: 'a message with attachments',
      timeout: 20000,
    });
  } catch (e) {
    const shown = await page.locator('li.message').allTextContents();
    throw new Error(`${e.message}\nthe page shows: ${JSON.stringify(shown.slice(-3))}`);
  }
}

test('the customer sends a photo and a voice note; the mechanic receives them; refusals are explained', async (t) => {
  const { context, page } = await newCustomer(browser);
  t.after(() => context.close());
  await context.grantPermissions(['microphone', 'camera']).catch(() => undefined);
  const id = await newRequest(page, server.base);
  await page.goto(`${server.base}/chat/${id}`);
  await waitForText(page.locator('#room-status'), /Waiting for a mechanic to accept/);
  await mechanic.accept(id);
  await mechanic.join(id);
  await waitForText(page.locator('#room-status'), /Live with Sam Spanner/);

  // A photo from the camera input: previewed, then sent with a line of text.
  const posts = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && /\/api\/sessions\/[^/]+\/messages$/.test(new URL(r.url()).pathname)) posts.push(r.postDataJSON());
  });
  await page.getByTestId('camera-photo').setInputFiles(cameraJpeg());
  const picked = page.getByTestId('picked');
  await picked.locator('li[data-kind="image"] img').waitFor();
  await page.locator('#composer-input').fill('This light came on this morning');
  await page.getByRole('button', { name: 'Send', exact: true }).click();

  const photoMessage = await nextAttachmentMessage(page);
  assert.equal(photoMessage.message.body, 'This light came on this morning');
  assert.deepEqual(photoMessage.message.attachments.map((a) => a.kind), ['image']);
  const photo = photoMessage.message.attachments[0];
  assert.equal(photo.content_type.startsWith('image/'), true);
  assert.equal(posts.length, 1, 'the message is posted once');
  assert.deepEqual(posts[0].attachment_ids, [photo.id]);

  // Inline: the thumbnail loads (from the server, with the customer's cookie) and opens full screen.
  const thumb = page.locator(`li[data-attachment-id="${photo.id}"] img`);
  await thumb.waitFor();
  await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await thumb.elementHandle());
  await page.getByRole('button', { name: /Open the photo from You full screen/ }).click();
  const viewer = page.getByTestId('attachment-viewer');
  await viewer.waitFor();
  const full = viewer.locator('img');
  await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await full.elementHandle());
  assert.equal(await full.evaluate((el) => el.naturalWidth), photo.width ?? 640);
  await inspectClean(page, 'chat photo full screen');
  await page.getByTestId('close-viewer').click();
  await viewer.waitFor({ state: 'detached' });

  // A voice note from the (fake) microphone.
  await page.getByTestId('record-voice').click();
  await page.getByTestId('recording').waitFor();
  await sleep(2000);
  await page.getByTestId('stop-recording').click();
  await picked.locator('li[data-kind="audio"] audio').waitFor();
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  const voiceMessage = await nextAttachmentMessage(page);
  assert.deepEqual(voiceMessage.message.attachments.map((a) => a.kind), ['audio']);
  const voice = voiceMessage.message.attachments[0];
  assert.ok(voice.content_type.startsWith('audio/'), voice.content_type);
  const player = page.locator(`li[data-attachment-id="${voice.id}"] audio`);
  await player.waitFor();
  await page.waitForFunction((el) => el.readyState >= 1, await player.elementHandle());

  // A file that is not a picture, whatever its name says: the server's reason, on the page.
  await page.getByTestId('file-picker').setInputFiles({ name: 'notes.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('these are my notes, not a photo\n'.repeat(20)) });
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  const refused = page.locator('li.message[data-delivery="failed"]').last();
  await waitForText(refused, /“notes\.jpg” was not sent/);
  const refusedText = await refused.textContent();
  assert.doesNotMatch(refusedText, /Something went wrong/);
  await page.getByTestId('cancel-upload').last().click();
  await refused.waitFor({ state: 'detached' });

  // Over the size limit (a JPEG's start and 26 MB after it): refused with the limit named.
  const big = Buffer.alloc(26 * 1024 * 1024);
  readFileSync(cameraJpeg()).copy(big);
  await page.getByTestId('file-picker').setInputFiles({ name: 'huge.jpg', mimeType: 'image/jpeg', buffer: big });
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  const tooBig = page.locator('li.message[data-delivery="failed"]').last();
  await waitForText(tooBig, /“huge\.jpg” was not sent: .*\d+\s*MB/, 30000);
  await inspectClean(page, 'chat attachments refused');
  await page.getByTestId('cancel-upload').last().click();

  await inspectClean(page, 'chat with photo and voice note');
  assertClean(page);
});
