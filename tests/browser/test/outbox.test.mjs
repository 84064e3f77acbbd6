// The chat's outbox in a real browser: with a TCP proxy between the page and the server, the
// network is cut for a while; messages typed meanwhile show as waiting, and once the network is
// back the page reconnects and sends them by itself, in typing order, each stored once under the
// client_id it was typed with. Then: a message still waiting when the page is reloaded is kept in
// the tab's sessionStorage and sent after the reload.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MechanicProcess,
  api,
  assertClean,
  createMechanic,
  inspectClean,
  launchBrowser,
  newCustomer,
  newRequest,
  sleep,
  startServer,
  waitForText,
} from '../lib/harness.mjs';
import { startProxy } from '../lib/proxy.mjs';

/** How long the network stays cut (the page must cope with any length; this is a typical drop). */
const CUT_MS = 12_000;

let server;
let proxy;
let browser;

before(async () => {
  server = await startServer();
  proxy = await startProxy(server.base);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await server?.stop();
});

/**
 * A customer live with a mechanic (process, straight to the server), the customer's page loaded
 * through the proxy. Every message the page posts is recorded with its client_id. Both are closed
 * when the test `t` ends, however it ends.
 */
async function liveSession(t, name) {
  proxy.restore();
  const account = await createMechanic(server, name);
  const mechanic = await MechanicProcess.start(server, account);
  t.after(() => mechanic.stop());
  const customer = await newCustomer(browser);
  t.after(() => customer.context.close());
  const { page } = customer;
  const posts = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && /\/api\/sessions\/[^/]+\/messages$/.test(new URL(r.url()).pathname)) {
      posts.push(r.postDataJSON());
    }
  });
  // The whole way through the proxy: the identity cookie is bound to the host (127.0.0.1, a
  // secure context for Chromium without TLS), and Origin must match the address the page uses.
  const id = await newRequest(page, proxy.base);
  await page.goto(`${proxy.base}/chat/${id}`);
  await waitForText(page.locator('#room-status'), /Waiting for a mechanic to accept/);
  await mechanic.accept(id);
  await mechanic.join(id);
  await waitForText(page.locator('#room-status'), new RegExp(`Live with ${name}`));
  const login = await api(server, 'POST', '/api/auth/login', { body: { email: account.email, password: account.password } });
  assert.equal(login.status, 200);
  /** The session's stored messages, as the mechanic reads them from the server. */
  const history = async () => {
    const res = await api(server, 'GET', `/api/sessions/${id}/messages`, { token: login.body.access_token });
    assert.equal(res.status, 200);
    return res.body;
  };
  return { id, mechanic, posts, history, ...customer };
}

async function type(page, text) {
  const composer = page.getByRole('textbox', { name: 'Message' });
  await composer.fill(text);
  await composer.press('Enter');
}

/** Every message the page shows: body and delivery, in order. */
function shown(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('li.message')].map((li) => [li.querySelector('.body')?.textContent ?? '', li.getAttribute('data-delivery'), li.querySelector('.delivery')?.textContent?.trim() ?? '']).map(([b, d, why]) => (d === 'failed' ? [b, d, why] : [b, d])),
  );
}

async function until(what, check, timeout) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last === true) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

test('messages typed while the network is cut wait, then go out by themselves, once each, in order', async (t) => {
  const { id, mechanic, posts, history, page } = await liveSession(t, 'Nina Nozzle');
  const log = page.getByRole('log', { name: 'Messages' });

  await type(page, 'Before the cut.');
  await until('the first message shown as sent', async () => {
    const now = await shown(page);
    return JSON.stringify(now) === JSON.stringify([['Before the cut.', 'sent']]) || now;
  }, 15000);

  proxy.cut();
  const cutAt = Date.now();
  await waitForText(page.locator('.banner'), /Reconnecting…/, 10000);

  const typed = ['First while cut: the brake pedal feels soft.', 'Second while cut: it got worse this morning.', 'Third while cut: the light is on now.'];
  for (const text of typed) await type(page, text);
  await until('the three messages shown as waiting', async () => {
    const now = await shown(page);
    const waiting = now.filter(([, delivery]) => delivery === 'queued').map(([body]) => body);
    return JSON.stringify(waiting) === JSON.stringify(typed) || now;
  }, 15000);
  await waitForText(log, /Waiting for connection/);
  await waitForText(page.getByTestId('outbox'), /3 messages are waiting to be sent/);
  await inspectClean(page, 'chat-messages-waiting-for-connection');

  // Nothing reached the server: the page holds them.
  const during = await history();
  assert.deepEqual(during.map((m) => m.body), ['Before the cut.']);
  assert.ok(proxy.stats.refused > 0, 'the page tried the network while it was cut');

  const left = CUT_MS - (Date.now() - cutAt);
  if (left > 0) await sleep(left);
  assert.ok(proxy.isCut);
  proxy.restore();
  const restoredAt = Date.now();

  // The page reconnects by itself and sends the queue by itself: nothing is clicked from here on.
  await page.locator('.banner').waitFor({ state: 'detached', timeout: 30000 });
  await until('every message shown as sent, once', async () => {
    const now = await shown(page);
    const want = [['Before the cut.', 'sent'], ...typed.map((t) => [t, 'sent'])];
    return JSON.stringify(now) === JSON.stringify(want) || now;
  }, 45000);
  const sentAfterMs = Date.now() - restoredAt;
  t.diagnostic(`cut ${CUT_MS} ms; ${proxy.stats.refused} connections reset while cut; all sent ${sentAfterMs} ms after the restore`);
  await waitForText(page.getByTestId('presence'), /Nina Nozzle is in the chat/, 15000);
  await waitForText(page.getByTestId('outbox'), /^\s*$/);

  // The server stored each exactly once, in typing order.
  const stored = await history();
  assert.deepEqual(stored.map((m) => m.body), ['Before the cut.', ...typed], `stored in typing order, once each (sent ${sentAfterMs} ms after the restore)`);
  assert.deepEqual(stored.map((m) => m.seq), [1, 2, 3, 4]);
  assert.ok(stored.every((m) => m.sender_role === 'customer'));

  // Every attempt at a message used the client_id it was typed with, and that is what was stored.
  for (const m of stored) {
    const attempts = posts.filter((p) => p.body === m.body);
    assert.ok(attempts.length >= 1, `the page posted "${m.body}"`);
    assert.deepEqual([...new Set(attempts.map((p) => p.client_id))], [m.client_id], `"${m.body}" kept its client_id over ${attempts.length} attempts`);
  }
  assert.ok(posts.filter((p) => typed.includes(p.body)).length >= 3);

  // The mechanic got each once over realtime; the page still shows each once.
  await sleep(1000);
  for (const text of typed) {
    const copies = mechanic.events.filter((e) => e.event === 'message' && e.body === text);
    assert.equal(copies.length, 1, `the mechanic got "${text}" once`);
  }
  assert.deepEqual(await page.locator('.message .body').allTextContents(), ['Before the cut.', ...typed]);
  assert.equal(await page.getByRole('button', { name: 'Retry' }).count(), 0);
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), `wrenchline:outbox:${id}`), null, 'the outbox is empty once acknowledged');
  assertClean(page);
});

test('a message still waiting when the page is reloaded is sent after the reload, under the same client_id', async (t) => {
  const { id, mechanic, posts, history, page } = await liveSession(t, 'Otto Oilpan');
  const key = `wrenchline:outbox:${id}`;
  const failPosts = (route) => (route.request().method() === 'POST' ? route.abort('internetdisconnected') : route.fallback());
  await page.route('**/messages', failPosts);

  await type(page, 'Typed before the reload.');
  await waitForText(page.getByRole('log', { name: 'Messages' }), /Waiting for connection/);
  const kept = JSON.parse((await page.evaluate((k) => sessionStorage.getItem(k), key)) ?? '[]');
  assert.deepEqual(kept.map((m) => m.body), ['Typed before the reload.']);
  const clientId = kept[0].client_id;

  await page.reload();
  await waitForText(page.locator('#room-status'), /Live with Otto Oilpan/);
  await until('the restored message shown as waiting', async () => {
    const now = await shown(page);
    return JSON.stringify(now) === JSON.stringify([['Typed before the reload.', 'queued']]) || now;
  }, 15000);

  // Posting works again; the realtime link never dropped, so the backoff timer sends it.
  await page.unroute('**/messages', failPosts);
  await until('the message shown as sent, once', async () => {
    const now = await shown(page);
    return JSON.stringify(now) === JSON.stringify([['Typed before the reload.', 'sent']]) || now;
  }, 30000);

  const stored = await history();
  assert.deepEqual(stored.map((m) => [m.body, m.client_id]), [['Typed before the reload.', clientId]]);
  assert.deepEqual([...new Set(posts.map((p) => p.client_id))], [clientId], 'before and after the reload, one client_id');
  assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), key), null);
  await mechanic.next((e) => e.event === 'message' && e.body === 'Typed before the reload.', { what: 'the message at the mechanic' });
  assertClean(page);
});
