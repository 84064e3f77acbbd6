// Whatever people type is shown as text: markup in the intake (name, vehicle, concern) and in chat
// messages from either side never becomes elements and never runs.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MechanicProcess,
  assertClean,
  createMechanic,
  launchBrowser,
  newCustomer,
  startServer,
  signWaiver,
  waitForText,
} from '../lib/harness.mjs';

const IMG = '<img src=x onerror=window.__xss=1>';
const SVG = '<svg onload="window.__xss=2"></svg>';
const SCRIPT = '<script>window.__xss=3</script>';

let server;
let browser;
let mechanic;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  mechanic = await MechanicProcess.start(server, await createMechanic(server, 'Sam Spanner'));
});

after(async () => {
  await mechanic?.stop();
  await browser?.close();
  await server?.stop();
});

async function assertInert(page, where) {
  assert.equal(await page.evaluate(() => window.__xss), undefined, `nothing ran on ${where}`);
  assert.equal(await page.locator('main img, main svg:not(.mark), main script').count(), 0, `no injected elements on ${where}`);
}

test('markup in the intake and in messages renders as text', async () => {
  const { context, page } = await newCustomer(browser);
  const concern = `Brakes grind ${IMG} and squeal ${SCRIPT}`;
  await page.goto(`${server.base}/intake`);
  await page.getByLabel('Your name').fill(`<b>Dana</b>${IMG}`);
  await page.getByLabel('Email').fill('dana@example.com');
  await page.getByLabel('Year').fill('2018');
  await page.getByLabel('Make').fill(SVG.slice(0, 50));
  await page.getByLabel('Model').fill('<i>Civic</i>');
  await page.getByLabel('What is going on?').fill(concern);
  await page.getByRole('button', { name: 'Continue to the waiver' }).click();
  await page.waitForURL(/\/intake\/waiver/);
  const id = new URL(page.url()).searchParams.get('session');
  await waitForText(page.locator('main'), /<svg onload=/);
  await assertInert(page, 'the waiver');
  await signWaiver(page, 'Dana');

  await waitForText(page.locator('.concern'), /Brakes grind <img src=x onerror=window\.__xss=1> and squeal <script>/);
  await waitForText(page.locator('h1'), /<b>Dana<\/b><img src=x/);
  await assertInert(page, 'the thank-you page');

  await page.goto(`${server.base}/chat/${id}`);
  await page.locator('details.concern summary').click();
  await waitForText(page.locator('details.concern'), /Brakes grind <img src=x onerror/);
  await assertInert(page, 'the chat while waiting');

  await mechanic.accept(id);
  await mechanic.join(id);
  await waitForText(page.locator('#room-status'), /Live with Sam Spanner/);
  const composer = page.getByRole('textbox', { name: 'Message' });
  await composer.fill(`look ${IMG}`);
  await composer.press('Enter');
  await mechanic.next((e) => e.event === 'message' && e.body === `look ${IMG}`, { what: 'the customer message' });
  mechanic.send(`say ${id} and ${SVG} ${SCRIPT}`);
  const log = page.getByRole('log', { name: 'Messages' });
  await waitForText(log, /and <svg onload="window\.__xss=2"><\/svg> <script>window\.__xss=3<\/script>/);
  await waitForText(log, /look <img src=x onerror=window\.__xss=1>/);
  await page.reload();
  await waitForText(page.getByRole('log', { name: 'Messages' }), /and <svg onload=/);
  await assertInert(page, 'the live chat after a reload');
  assertClean(page);
  await context.close();
});
