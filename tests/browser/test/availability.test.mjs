// How many mechanics are online, as the customer sees it: the intake says plainly when nobody is,
// counts a mechanic whose app tracks "online" on the request feed (played by crates/client's
// example with --availability), refreshes every 30 s (the page's clock is driven by the test),
// stops counting a mechanic who switches to away, and the chat page shows the count while the
// request waits for a mechanic. The tests run in order and share the mechanic Sam.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  MechanicProcess,
  api,
  assertClean,
  createMechanic,
  inspectClean,
  launchBrowser,
  mechanicKind,
  newCustomer,
  newRequest,
  rustMechanic,
  sleep,
  startServer,
  waitForText,
} from '../lib/harness.mjs';

// The Node stand-in does not speak `--availability`; only the Rust example does.
const skip = mechanicKind() === 'rust' ? false : 'needs crates/client\'s mechanic example (--availability)';

const NONE = /^\s*No mechanic is online right now\./;
const ONE = /^\s*1 mechanic online\s*$/;
const TWO = /^\s*2 mechanics online\s*$/;

let server;
let browser;
const running = [];

before(async () => {
  if (skip) return;
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  for (const m of running) await m.stop();
  await browser?.close();
  await server?.stop();
});

/** A mechanic whose app is on the request feed with `availability` tracked. */
async function startMechanic(availability) {
  const account = await createMechanic(server);
  const args = ['--server', server.base, '--email', account.email, '--password', account.password, '--availability', availability];
  const m = new MechanicProcess('rust', spawn(rustMechanic, args, { stdio: ['pipe', 'pipe', 'pipe'] }), account);
  running.push(m);
  await m.next((e) => e.event === 'availability' && e.availability === availability, { what: `tracked ${availability}`, timeout: 20000 });
  await m.next((e) => e.event === 'ready', { what: 'ready' });
  return m;
}

async function setAvailability(m, availability) {
  m.send(`availability ${availability}`);
  await m.next((e) => e.event === 'availability' && e.availability === availability, { what: `tracked ${availability}` });
}

async function mechanicsOnline() {
  const { status, body } = await api(server, 'GET', '/api/availability');
  assert.equal(status, 200);
  return body.mechanics_online;
}

/** Waits until the server counts `want` (a stopped mechanic's socket closes a moment later). */
async function untilOnline(want) {
  const deadline = Date.now() + 10000;
  let got;
  while ((got = await mechanicsOnline()) !== want) {
    if (Date.now() > deadline) throw new Error(`the server counts ${got} mechanics, expected ${want}`);
    await sleep(50);
  }
}

let sam;

test('the intake says when no mechanic is online, and counts one who is', { skip }, async () => {
  const { context, page } = await newCustomer(browser);
  await page.goto(`${server.base}/intake`);
  const line = page.getByTestId('mechanics-online');
  await waitForText(line, NONE);
  assert.match(await line.textContent(), /You can still send your request/);
  await inspectClean(page, 'intake-no-mechanic-online');

  sam = await startMechanic('online');
  assert.equal(await mechanicsOnline(), 1);
  await page.reload();
  await waitForText(line, ONE);
  await inspectClean(page, 'intake-one-mechanic-online');
  assertClean(page);
  await context.close();
});

test('the intake refreshes the count every 30 s', { skip }, async () => {
  const { context, page } = await newCustomer(browser);
  await page.clock.install();
  await page.goto(`${server.base}/intake`);
  const line = page.getByTestId('mechanics-online');
  await waitForText(line, ONE);
  // From here on the page's time moves only when the test says so.
  await page.clock.pauseAt((await page.evaluate(() => Date.now())) + 100);

  await setAvailability(sam, 'away');
  assert.equal(await mechanicsOnline(), 0);
  // The page asks every 30 s, not on every change.
  await page.clock.runFor(25_000);
  await sleep(300);
  assert.match(await line.textContent(), ONE);
  await page.clock.runFor(5_000);
  await waitForText(line, NONE);

  const kim = await startMechanic('online');
  await setAvailability(sam, 'online');
  await page.clock.runFor(30_000);
  await waitForText(line, TWO);

  await kim.stop();
  await untilOnline(1);
  await page.clock.runFor(30_000);
  await waitForText(line, ONE);
  assertClean(page);
  await context.close();
});

test('while a request waits for a mechanic, the chat page shows the count', { skip }, async () => {
  const { context, page } = await newCustomer(browser);
  const id = await newRequest(page, server.base);
  await page.goto(`${server.base}/chat/${id}`);
  await waitForText(page.locator('#room-status'), /Waiting for a mechanic to accept/);
  const line = page.getByTestId('mechanics-online');
  await waitForText(line, ONE);
  await inspectClean(page, 'chat-waiting-one-mechanic-online');

  await setAvailability(sam, 'away');
  await page.reload();
  await waitForText(line, NONE);
  assert.match(await line.textContent(), /this page shows it as soon as a mechanic accepts/);
  await inspectClean(page, 'chat-waiting-no-mechanic-online');

  // Once accepted the count is beside the point and goes away.
  await sam.accept(id);
  await waitForText(page.locator('#room-status'), /accepted, joining/);
  assert.equal(await line.count(), 0);
  assertClean(page);
  await context.close();
});
