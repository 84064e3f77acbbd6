// The session clock as the customer sees it: a request nobody accepts in time is closed with a
// "send a new request" that comes back filled in, and a mechanic who accepts but never joins
// hands the request back to the others, which the page says.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PASSWORD, api, assertClean, createMechanic, inspectClean, launchBrowser, newCustomer, newRequest, startServer, waitForText } from '../lib/harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer({ env: { WRENCHLINE_REQUEST_ACCEPT_TIMEOUT: '6', WRENCHLINE_MECHANIC_JOIN_TIMEOUT: '2' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a request nobody accepts says so and offers a new request, filled in', async () => {
  const { context, page } = await newCustomer(browser);
  const concern = 'Squealing belt when the engine is cold';
  const id = await newRequest(page, server.base, { name: 'Dana Driver', concern });
  await page.getByRole('link', { name: 'Start session now' }).click();
  await page.waitForURL(`**/chat/${id}`);
  await waitForText(page.locator('#room-status'), /Waiting for a mechanic to accept/);

  const notice = page.getByTestId('not-accepted');
  await notice.waitFor({ timeout: 20000 });
  await waitForText(notice, /No mechanic could take your request in time/, 20000);
  await waitForText(page.locator('#room-status'), /Session cancelled/);
  await inspectClean(page, 'chat-not-accepted');

  await notice.getByRole('button', { name: 'Send a new request' }).click();
  await page.waitForURL('**/intake');
  assert.equal(await page.getByLabel('Your name').inputValue(), 'Dana Driver');
  assert.match(await page.getByLabel('Email').inputValue(), /^dana-.*@example\.com$/);
  assert.equal(await page.getByLabel('Make').inputValue(), 'Honda');
  assert.equal(await page.getByLabel('Model').inputValue(), 'Civic');
  assert.equal(await page.getByLabel('What is going on?').inputValue(), concern);
  await page.getByRole('button', { name: 'Continue to the waiver' }).click();
  await page.waitForURL(/\/intake\/waiver\?session=/);
  const again = new URL(page.url()).searchParams.get('session');
  assert.notEqual(again, id, 'a new request');
  assertClean(page);
  await context.close();
});

test('a mechanic who accepts and never joins hands the request back, and the customer is told', async () => {
  const account = await createMechanic(server, 'Sam Spanner');
  const login = await api(server, 'POST', '/api/auth/login', { body: { email: account.email, password: PASSWORD } });
  assert.equal(login.status, 200);
  const { context, page } = await newCustomer(browser);
  const id = await newRequest(page, server.base);
  await page.getByRole('link', { name: 'Start session now' }).click();
  await page.waitForURL(`**/chat/${id}`);
  await waitForText(page.locator('#room-status'), /Waiting for a mechanic to accept/);

  const accepted = await api(server, 'POST', `/api/sessions/${id}/accept`, { token: login.body.access_token });
  assert.equal(accepted.status, 200);
  await waitForText(page.locator('#room-status'), /Sam Spanner accepted/);

  const back = page.getByTestId('handed-back');
  await back.waitFor({ timeout: 15000 });
  await waitForText(back, /did not join in time, so it is back with all our\s+mechanics/, 15000);
  await waitForText(page.locator('#room-status'), /Waiting for a mechanic to accept/);
  await waitForText(page.getByTestId('presence'), /No mechanic assigned yet/);
  await inspectClean(page, 'chat-handed-back');
  const feed = await api(server, 'GET', '/api/requests', { token: login.body.access_token });
  assert.deepEqual(feed.body.map((s) => s.id), [id]);
  assertClean(page);
  await context.close();
});
