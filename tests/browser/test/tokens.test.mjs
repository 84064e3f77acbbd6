// Short-lived realtime tokens: the page refreshes its token (POST /api/auth/token + setAuth)
// before the server would close its channels, so a chat stays connected for longer than a token
// lives, without a reconnect.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MechanicProcess,
  api,
  assertClean,
  createMechanic,
  launchBrowser,
  newCustomer,
  newRequest,
  sleep,
  startServer,
  waitForText,
} from '../lib/harness.mjs';

// The shortest lifetime the server accepts.
const TTL_SECONDS = 30;

let server;
let browser;

before(async () => {
  server = await startServer({ env: { WRENCHLINE_ACCESS_TOKEN_TTL: String(TTL_SECONDS) } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the chat stays connected across several token lifetimes', async (t) => {
  const account = await createMechanic(server, 'Kim Clutch');
  const mechanic = await MechanicProcess.start(server, account);
  const { context, page } = await newCustomer(browser);
  const id = await newRequest(page, server.base);
  const tokenCalls = [];
  page.on('request', (r) => r.url().endsWith('/api/auth/token') && tokenCalls.push(Date.now()));
  await page.goto(`${server.base}/chat/${id}?debug=presence`);
  await waitForText(page.locator('#room-status'), /Waiting for a mechanic to accept/);
  await mechanic.accept(id);
  await mechanic.join(id);
  await waitForText(page.locator('#room-status'), /Live with Kim Clutch/);
  // Watch the reconnecting banner for the whole wait: it must never show.
  await page.evaluate(() => {
    window.__banner = false;
    new MutationObserver(() => {
      if (document.querySelector('.banner')) window.__banner = true;
    }).observe(document.body, { childList: true, subtree: true });
  });

  await sleep(TTL_SECONDS * 2.2 * 1000);
  // A message now can only arrive over realtime: nothing else would fetch history.
  const login = await api(server, 'POST', '/api/auth/login', { body: { email: account.email, password: account.password } });
  const sent = await api(server, 'POST', `/api/sessions/${id}/messages`, {
    token: login.body.access_token,
    body: { body: 'Still with me?', client_id: 'token-test-1' },
  });
  assert.equal(sent.status, 201);
  await waitForText(page.getByRole('log', { name: 'Messages' }), /Still with me\?/, 5000);
  assert.equal(await page.evaluate(() => window.__banner), false, 'no reconnect was needed');
  assert.ok(tokenCalls.length >= 3, `the token was refreshed (${tokenCalls.length} token calls)`);
  await waitForText(page.getByTestId('presence-debug'), /Link\s*subscribed/);
  // Diagnostic only: whether the mechanic process kept its presence past its own token's lifetime.
  const debug = (await page.getByTestId('presence-debug').textContent()) ?? '';
  t.diagnostic(`mechanic (${mechanic.kind}) present after ${TTL_SECONDS * 2.2}s: ${/Mechanic id[^:]+: present/.test(debug)}`);
  assertClean(page);
  await mechanic.stop();
  await context.close();
});
