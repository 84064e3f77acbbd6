// The waiting room and what a session leaves the customer: while a request waits, the chat page
// shows the mechanics online, the place in line and the expected wait, and updates them by itself
// (it asks the server every 5 s) when a request ahead is accepted; with nobody online it says when
// mechanics usually are; once the session is completed it shows the mechanic's summary and takes
// the customer's rating. The mechanic is crates/client's example (availability, join, end) plus
// plain HTTP for the summary. The tests run in order and share the server and the mechanic Sam.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  MechanicProcess,
  PASSWORD,
  api,
  assertClean,
  createMechanic,
  inspectClean,
  launchBrowser,
  mechanicKind,
  newCustomer,
  newRequest,
  rustMechanic,
  startServer,
  waitForText,
} from '../lib/harness.mjs';

const skip = mechanicKind() === 'rust' ? false : "needs crates/client's mechanic example (--availability)";

let server;
let browser;
let sam;
let samToken;
const running = [];
// Customer A's request (accepted first, then completed) and its page.
let first;

before(async () => {
  if (skip) return;
  server = await startServer();
  browser = await launchBrowser();
  const account = await createMechanic(server, 'Sam Spanner');
  const args = ['--server', server.base, '--email', account.email, '--password', account.password, '--availability', 'online'];
  sam = new MechanicProcess('rust', spawn(rustMechanic, args, { stdio: ['pipe', 'pipe', 'pipe'] }), account);
  running.push(sam);
  await sam.next((e) => e.event === 'availability' && e.availability === 'online', { what: 'tracked online', timeout: 20000 });
  await sam.next((e) => e.event === 'ready', { what: 'ready' });
  const { status, body } = await api(server, 'POST', '/api/auth/login', { body: { email: account.email, password: PASSWORD } });
  assert.equal(status, 200);
  samToken = body.access_token;
});

after(async () => {
  for (const m of running) await m.stop();
  await first?.context.close();
  await browser?.close();
  await server?.stop();
});

async function setAvailability(availability) {
  sam.send(`availability ${availability}`);
  await sam.next((e) => e.event === 'availability' && e.availability === availability, { what: `tracked ${availability}` });
}

test('the place in line and the expected wait are shown and follow the line by themselves', { skip }, async () => {
  first = await newCustomer(browser);
  const firstId = await newRequest(first.page, server.base);
  await first.page.goto(`${server.base}/chat/${firstId}`);
  await waitForText(first.page.getByTestId('place-in-line'), /You are next in line/);
  first.id = firstId;

  const { context, page } = await newCustomer(browser);
  const id = await newRequest(page, server.base, { name: 'Lee Park' });
  await page.goto(`${server.base}/chat/${id}`);
  await waitForText(page.locator('#room-status'), /Waiting for a mechanic to accept/);
  await waitForText(page.getByTestId('mechanics-online'), /^\s*1 mechanic online\s*$/);
  const line = page.getByTestId('place-in-line');
  await waitForText(line, /1 request ahead of you/);
  assert.equal(await page.getByTestId('expected-wait').count(), 0, 'no accept yet: no estimate');
  await inspectClean(page, 'waiting-room-one-ahead');

  // Sam accepts the request ahead: this page learns it on its next ask (5 s), without a reload.
  await sam.accept(firstId);
  await waitForText(line, /You are next in line/, 12000);
  await waitForText(page.getByTestId('expected-wait'), /Expected wait: (under a minute|about \d+ minutes?)/, 12000);
  const room = await api(server, 'GET', `/api/sessions/${id}/waiting-room`, { token: samToken });
  assert.equal(room.status, 404, "a mechanic who is not this request's does not read its room");
  await inspectClean(page, 'waiting-room-next-with-expected-wait');

  // Nobody online: the page says so and, from this hour's history, when mechanics usually are.
  await setAvailability('away');
  await waitForText(page.getByTestId('mechanics-online'), /No mechanic is online right now/, 12000);
  await waitForText(page.getByTestId('usually-online'), /Mechanics are usually online from \w+ at \d/, 12000);
  await inspectClean(page, 'waiting-room-nobody-online');
  await setAvailability('online');
  assertClean(page);
  await context.close();
});

test('the completed page shows the mechanic\'s summary and takes a rating, changeable later', { skip }, async () => {
  const { page } = first;
  const id = first.id;
  await sam.join(id);
  await waitForText(page.locator('#room-status'), /live|Live|minutes? left|\d:\d\d/i, 20000);
  const summary = await api(server, 'PUT', `/api/sessions/${id}/summary`, {
    token: samToken,
    body: { found: 'Front brake pads worn to the backing plate.', next_steps: 'Replace the front pads and rotors.', urgency: 'urgent' },
  });
  assert.equal(summary.status, 200, JSON.stringify(summary.body));
  const notes = await api(server, 'PUT', `/api/sessions/${id}/notes`, { token: samToken, body: { body: 'Private: upsell rotors' } });
  assert.equal(notes.status, 200);
  sam.send(`end ${id}`);
  await waitForText(page.locator('#room-status'), /ended|over|completed/i, 20000);

  const card = page.getByTestId('mechanic-summary');
  await waitForText(card, /Front brake pads worn/);
  assert.match(await card.textContent(), /Urgent: within days/);
  assert.match(await card.textContent(), /Replace the front pads and rotors/);
  assert.doesNotMatch(await page.content(), /upsell rotors/, 'private notes never reach the customer');

  await page.getByTestId('star-4').check({ force: true });
  await page.getByTestId('rating-comment').fill('Clear and quick.');
  await inspectClean(page, 'completed-summary-and-rating');
  await page.getByTestId('rating-submit').click();
  await waitForText(page.getByTestId('rating-saved'), /Thank you/);
  let outcome = await api(server, 'GET', `/api/sessions/${id}/outcome`, { token: samToken });
  assert.equal(outcome.body.rating.stars, 4);
  assert.equal(outcome.body.rating.comment, 'Clear and quick.');

  // Back on the page later (as from the mail's link): the rating is there, and can be changed.
  await page.reload();
  await waitForText(page.getByTestId('rating-submit'), /Update rating/);
  assert.equal(await page.getByTestId('star-4').isChecked(), true);
  await page.getByTestId('star-5').check({ force: true });
  await page.getByTestId('rating-submit').click();
  await waitForText(page.getByTestId('rating-saved'), /Thank you/);
  outcome = await api(server, 'GET', `/api/sessions/${id}/outcome`, { token: samToken });
  assert.equal(outcome.body.rating.stars, 5);
  await inspectClean(page, 'completed-rated');
  assertClean(page);
});
