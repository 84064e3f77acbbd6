// Who may open what: a second customer cannot open the first one's chat (and gets a friendly
// page, not an error dump), nor can a browser without the identity cookie; unknown sessions,
// broken and expired resume links and unknown paths all get friendly pages.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  api,
  assertClean,
  inspectClean,
  launchBrowser,
  newCustomer,
  newRequest,
  signToken,
  startServer,
  waitForText,
} from '../lib/harness.mjs';

const SECRET = `browser-suite-secret-${randomUUID()}`;

let server;
let browser;

before(async () => {
  // A known signing secret, so the suite can make a resume link that has already expired.
  server = await startServer({ env: { WRENCHLINE_TOKEN_SECRET: SECRET } });
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

test('broken and expired resume links explain what to do', async () => {
  const { context, page } = await newCustomer(browser);
  await page.goto(`${server.base}/resume?token=not-a-token`);
  await waitForText(page.getByTestId('resume-invalid'), /This link doesn't work/);
  await inspectClean(page, 'resume-invalid');

  // A real customer and session, with a link signed by the server's secret that expired a minute ago.
  const intake = await api(server, 'POST', '/api/intake', {
    body: {
      name: 'Dana Driver',
      email: 'dana@example.com',
      vehicle: { year: 2018, make: 'Honda', model: 'Civic' },
      concern: 'Grinding noise when braking',
      plan: 'trial',
    },
  });
  assert.equal(intake.status, 201);
  const now = Math.floor(Date.now() / 1000);
  const expired = signToken(SECRET, {
    sub: intake.body.user.id,
    role: 'customer',
    typ: 'resume',
    iat: now - 3600,
    exp: now - 60,
    sid: intake.body.session.id,
  });
  assert.equal((await api(server, 'POST', '/api/resume', { body: { token: expired } })).status, 410);
  await page.goto(`${server.base}/resume?token=${expired}`);
  await waitForText(page.getByTestId('resume-expired'), /This link has expired/);
  await inspectClean(page, 'resume-expired');

  // The same link, still valid, works.
  const valid = signToken(SECRET, { sub: intake.body.user.id, role: 'customer', typ: 'resume', iat: now, exp: now + 600, sid: intake.body.session.id });
  await page.goto(`${server.base}/resume?token=${valid}`);
  await page.waitForURL(`**/chat/${intake.body.session.id}`);
  await page.getByRole('link', { name: 'Sign the waiver' }).waitFor();
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
