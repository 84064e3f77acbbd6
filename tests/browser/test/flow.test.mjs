// The seed's Tests 1–3 in a real browser against the real server: the customer waits ("waiting
// for a mechanic"), the mechanic accepts and joins, both are present by payload user_id, the
// session goes live with a countdown, and they chat both ways. Then: a reload during the live
// session keeps the history and the time left, the resume link opens the same session in another
// browser context, and ending it leaves a read-only room with a transcript to download.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  MechanicProcess,
  assertClean,
  countdownSeconds,
  createMechanic,
  inspectClean,
  launchBrowser,
  newCustomer,
  newRequest,
  sleep,
  startServer,
  waitForText,
} from '../lib/harness.mjs';

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

test('a customer and a mechanic meet, go live, chat, reload, resume and finish', async (t) => {
  const { context, page } = await newCustomer(browser);
  const status = page.locator('#room-status');
  const messages = page.getByRole('log', { name: 'Messages' });

  // Intake → waiver → thank-you.
  const id = await newRequest(page, server.base);
  await page.getByRole('heading', { name: /Your request is in/ }).waitFor();
  const resumeUrl = await page.getByLabel('Resume link').inputValue();
  assert.match(resumeUrl, /^http:\/\/127\.0\.0\.1:\d+\/resume#token=/);
  await inspectClean(page, 'thank-you');

  // Seed Test 1: the customer joins first and waits.
  await page.getByRole('link', { name: 'Start session now' }).click();
  await page.waitForURL(`**/chat/${id}`);
  await waitForText(status, /Waiting for a mechanic to accept/);
  await waitForText(page.getByTestId('presence'), /No mechanic assigned yet/);
  assert.equal(await page.getByRole('textbox', { name: 'Message' }).isDisabled(), true, 'no chat before an accept');
  await inspectClean(page, 'chat-waiting-for-accept');

  // Seed Test 2: the mechanic accepts (the customer sees it), then joins.
  const accepted = await mechanic.accept(id);
  assert.equal(accepted.session.status, 'waiting');
  await waitForText(status, /Sam Spanner accepted, joining…/);
  await inspectClean(page, 'chat-accepted-joining');
  await mechanic.join(id);
  // Present by payload user_id on both sides, whatever the connection keys are.
  await mechanic.next((e) => e.event === 'presence' && e.customer_present === true, { what: 'customer present' });
  await mechanic.next((e) => e.event === 'session' && e.status === 'live', { what: 'session live' });

  // Seed Test 3: live, with a countdown on the server's clock.
  await waitForText(status, /Live with Sam Spanner/);
  await waitForText(page.getByTestId('presence'), /Sam Spanner is in the chat/);
  const first = await countdownSeconds(page);
  assert.ok(first <= 600 && first >= 590, `a 10-minute trial starts near 10:00, shows ${first}s`);
  await sleep(2200);
  const later = await countdownSeconds(page);
  assert.ok(later < first && later >= first - 4, `the countdown runs down (${first}s → ${later}s)`);

  // Chat both ways.
  const composer = page.getByRole('textbox', { name: 'Message' });
  await composer.fill('Hi, the brakes grind when I stop.');
  await composer.press('Enter');
  await mechanic.next((e) => e.event === 'message' && e.body === 'Hi, the brakes grind when I stop.' && e.sender_role === 'customer', {
    what: 'the customer message at the mechanic',
  });
  await waitForText(messages, /Sent/);
  mechanic.send(`say ${id} Sounds like worn pads. Any squeal before the grinding?`);
  await waitForText(messages, /Sounds like worn pads\. Any squeal before the grinding\?/);
  await composer.fill('Yes, for about two weeks.');
  await page.getByRole('button', { name: 'Send' }).click();
  await mechanic.next((e) => e.event === 'message' && e.body === 'Yes, for about two weeks.', { what: 'second customer message' });
  await inspectClean(page, 'chat-live');

  // Reload during the live session: same history (once each), same time left.
  const beforeReload = await countdownSeconds(page);
  await page.reload();
  await waitForText(status, /Live with Sam Spanner/);
  await waitForText(messages, /Yes, for about two weeks\./);
  const bodies = await page.locator('.message .body').allTextContents();
  assert.deepEqual(bodies, [
    'Hi, the brakes grind when I stop.',
    'Sounds like worn pads. Any squeal before the grinding?',
    'Yes, for about two weeks.',
  ]);
  const afterReload = await countdownSeconds(page);
  assert.ok(afterReload <= beforeReload && afterReload >= beforeReload - 10, `time left kept over a reload (${beforeReload}s → ${afterReload}s)`);

  // A message while the page was away shows up after it comes back (history after the last seq).
  mechanic.send(`say ${id} I will walk you through checking the pads.`);
  await waitForText(messages, /walk you through checking the pads/);

  // The resume link opens the same session in another browser (another device).
  const other = await newCustomer(browser);
  await other.page.goto(resumeUrl);
  await other.page.waitForURL(`**/chat/${id}`);
  await waitForText(other.page.locator('#room-status'), /Live with Sam Spanner/);
  await waitForText(other.page.getByRole('log', { name: 'Messages' }), /walk you through checking the pads/);
  assert.equal(await other.page.locator('.message .body').count(), 4);
  await other.page.getByRole('textbox', { name: 'Message' }).fill('Now on my phone.');
  await other.page.getByRole('textbox', { name: 'Message' }).press('Enter');
  await mechanic.next((e) => e.event === 'message' && e.body === 'Now on my phone.', { what: 'message from the resumed device' });
  await waitForText(messages, /Now on my phone\./);
  assertClean(other.page);
  await other.context.close();

  // The presence debug view shows raw connection keys and payloads.
  await page.goto(`${server.base}/chat/${id}?debug=presence`);
  const raw = page.getByTestId('presence-raw');
  await waitForText(raw, /(?=[\s\S]*"role": "mechanic")(?=[\s\S]*"role": "customer")/);
  const state = JSON.parse((await raw.textContent()) ?? '{}');
  const payloads = Object.values(state).flat();
  assert.ok(payloads.some((p) => p.role === 'customer'), 'the customer is in the raw state');
  assert.ok(!Object.keys(state).includes(accepted.session.mechanic_id), 'keys are connections, not user ids');
  await inspectClean(page, 'chat-presence-debug');

  // The customer ends the session: read-only, transcript downloadable.
  await page.getByRole('button', { name: 'End session' }).click();
  await page.getByRole('button', { name: 'End session' }).click();
  await waitForText(status, /Session completed/);
  await mechanic.next((e) => e.event === 'session' && e.status === 'completed', { what: 'completed at the mechanic' });
  assert.equal(await page.getByRole('textbox', { name: 'Message' }).count(), 0, 'no composer once over');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: /Download transcript/ }).click(),
  ]);
  assert.match(download.suggestedFilename(), /^wrenchline-2018-honda-civic-[0-9a-f]{8}\.txt$/);
  const transcript = readFileSync(await download.path(), 'utf8');
  for (const line of ['Hi, the brakes grind when I stop.', 'Sounds like worn pads.', 'Now on my phone.', 'Sam Spanner (mechanic)']) {
    assert.ok(transcript.includes(line), `transcript has ${line}`);
  }
  await inspectClean(page, 'chat-completed');
  assertClean(page);
  await context.close();
  t.diagnostic(`mechanic played by: ${mechanic.kind}`);
});
