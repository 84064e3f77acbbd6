// Who may open what: a second customer cannot open the first one's chat (and gets a friendly
// page, not an error dump), nor can a browser without the identity cookie; unknown sessions,
// broken resume links and unknown paths all get friendly pages.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  assertClean,
  inspectClean,
  launchBrowser,
  newCustomer,
  newRequest,
  startServer,
  waitForText,
} from '../lib/harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("a second customer cannot open the first one's session", async () => {
  const first = await newCustomer(browser);
  const id = await newRequest(first.page, server.base, { name: 'Dana Driver' });

  const second = await newCustomer(browser);
  await newRequest(second.page, server.base, { name: 'Eve Other' });

  for (const path of [`/chat/${id}`, `/thank-you?session=${id}&plan=trial`, `/intake/waiver?session=${id}`]) {
    await second.page.goto(server.base + path);
    const problem = second.page.getByTestId('session-problem');
    await problem.waitFor();
    await waitForText(problem, /We can't open this session/);
    const text = (await second.page.locator('main').textContent()) ?? '';
    assert.ok(!text.includes('Dana'), `nothing of the first customer leaks on ${path}`);
    assert.ok(!/not_found|404|No such session/.test(text), `no raw error on ${path}`);
  }
  await inspectClean(second.page, 'session-not-yours');

  // The first customer still gets in.
  await first.page.goto(`${server.base}/chat/${id}`);
  await waitForText(first.page.locator('#room-status'), /Waiting for a mechanic to accept/);
  assertClean(first.page);
  assertClean(second.page);
  await first.context.close();
  await second.context.close();
});

test('a browser without the identity cookie, and unknown sessions, get the friendly page', async () => {
  const owner = await newCustomer(browser);
  const id = await newRequest(owner.page, server.base);
  const stranger = await newCustomer(browser);
  for (const path of [`/chat/${id}`, `/chat/${randomUUID()}`, '/chat/not-a-uuid', '/intake/waiver', '/thank-you']) {
    await stranger.page.goto(server.base + path);
    await waitForText(stranger.page.getByTestId('session-problem'), /We can't open this session/);
  }
  assertClean(stranger.page);
  await owner.context.close();
  await stranger.context.close();
});

test('broken resume links explain what to do', async () => {
  const { context, page } = await newCustomer(browser);
  // The token travels in the fragment; the old query form carries nothing the page reads.
  for (const path of ['/resume#token=not-a-token', '/resume?token=not-a-token', '/resume']) {
    await page.goto(`${server.base}${path}`);
    await waitForText(page.getByTestId('resume-invalid'), /This link doesn't work/);
  }
  await inspectClean(page, 'resume-invalid');
  // Expired, already used and identity-switching links: test/resume.test.mjs.
  assertClean(page);
  await context.close();
});

test('unknown paths get the 404 page', async () => {
  const { context, page } = await newCustomer(browser);
  await page.goto(`${server.base}/no/such/page`);
  await page.getByRole('heading', { name: 'Page not found' }).waitFor();
  await inspectClean(page, 'not-found');
  await page.getByRole('link', { name: 'Get help with your vehicle' }).click();
  await page.waitForURL('**/intake');
  await page.getByRole('heading', { name: 'Tell us about your vehicle' }).waitFor();
  assertClean(page);
  await context.close();
});
