// The chat when the network is not perfect: a message whose post fails waits and is sent again by
// the page itself, and when its answer is lost too it is still stored once, under one client_id; typing notices go both ways; when the server goes away the page
// says "Reconnecting…", and when it is back the page catches up on what it missed.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { RealtimeClient } from '@supabase/realtime-js';
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

/** A customer live with a mechanic (process), on the chat page. */
async function liveSession(name) {
  const account = await createMechanic(server, name);
  const mechanic = await MechanicProcess.start(server, account);
  const customer = await newCustomer(browser);
  const id = await newRequest(customer.page, server.base);
  await customer.page.goto(`${server.base}/chat/${id}`);
  await waitForText(customer.page.locator('#room-status'), /Waiting for a mechanic to accept/);
  await mechanic.accept(id);
  await mechanic.join(id);
  await waitForText(customer.page.locator('#room-status'), new RegExp(`Live with ${name}`));
  return { id, mechanic, account, ...customer };
}

test('a message whose post failed and whose answer was then lost is sent again by itself and stored once', async () => {
  const { id, mechanic, page, context } = await liveSession('Pat Piston');
  const firstTry = page.waitForRequest((r) => r.url().endsWith('/messages') && r.method() === 'POST');
  const composer = page.getByRole('textbox', { name: 'Message' });
  const log = page.getByRole('log', { name: 'Messages' });

  // First failure: the request never reaches the server; the message waits, no Retry to click.
  await page.route('**/messages', (route) => (route.request().method() === 'POST' ? route.abort('internetdisconnected') : route.fallback()));
  await composer.fill('Can you hear me?');
  await composer.press('Enter');
  await waitForText(log, /Waiting for connection/);
  const firstClientId = (await firstTry).postDataJSON().client_id;
  assert.equal(await page.getByRole('button', { name: 'Retry' }).count(), 0);
  await inspectClean(page, 'chat-message-waiting');

  // The page's own next attempt: the server stores it, but the answer is lost on the way back.
  await page.unroute('**/messages');
  const clientIds = [];
  await page.route('**/messages', async (route) => {
    if (route.request().method() !== 'POST') return route.fallback();
    clientIds.push(route.request().postDataJSON().client_id);
    await route.fetch();
    await route.abort('connectionreset');
  });
  await mechanic.next((e) => e.event === 'message' && e.body === 'Can you hear me?', { what: 'the stored message', timeout: 30000 });

  // The page learns of the stored message from realtime and shows it as sent, once.
  await waitForText(log, /Sent/);
  await page.unroute('**/messages');
  assert.ok(clientIds.length >= 1);
  assert.deepEqual([...new Set(clientIds)], [firstClientId], 'every attempt used the first client_id');
  assert.deepEqual(await page.locator('.message .body').allTextContents(), ['Can you hear me?']);
  assert.equal(await page.getByRole('button', { name: 'Retry' }).count(), 0);

  // Had the page retried again, the server would have answered with the message it already has.
  const again = await page.evaluate(
    async ([sessionId, clientId]) => {
      const r = await fetch(`/api/sessions/${sessionId}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ body: 'Can you hear me?', client_id: clientId }),
      });
      return { status: r.status, seq: (await r.json()).seq };
    },
    [id, clientIds[0]],
  );
  assert.deepEqual(again, { status: 200, seq: 1 });
  await sleep(500);
  const copies = mechanic.events.filter((e) => e.event === 'message' && e.body === 'Can you hear me?');
  assert.equal(copies.length, 1, 'the mechanic got it once');
  assert.equal(await page.locator('.message .body').count(), 1);
  assertClean(page);
  await mechanic.stop();
  await context.close();
});

test('typing notices go both ways', async () => {
  const { id, mechanic, account, page, context } = await liveSession('Tess Torque');
  // The mechanic's side of typing, through realtime-js as the desktop app's client will send it.
  const login = await api(server, 'POST', '/api/auth/login', { body: { email: account.email, password: account.password } });
  const client = new RealtimeClient(`${server.base.replace('http', 'ws')}/realtime/v1`, {
    transport: WebSocket,
    params: { apikey: login.body.access_token },
  });
  await client.setAuth(login.body.access_token);
  const heard = [];
  const channel = client.channel(`chat:session-${id}`);
  channel.on('broadcast', { event: 'typing' }, (m) => heard.push(m.payload));
  await new Promise((resolve, reject) =>
    channel.subscribe((status, err) => (status === 'SUBSCRIBED' ? resolve() : status !== 'CLOSED' && reject(err ?? new Error(status)))),
  );

  await page.getByRole('textbox', { name: 'Message' }).pressSequentially('Hello the', { delay: 30 });
  for (let i = 0; i < 50 && heard.length === 0; i++) await sleep(100);
  assert.ok(heard.length >= 1, 'the mechanic heard the customer typing');
  assert.equal(heard[0].role, 'customer');
  assert.ok(heard.length <= 2, `typing notices are throttled (${heard.length} for 9 keys)`);

  await channel.send({ type: 'broadcast', event: 'typing', payload: { user_id: login.body.user.id, role: 'mechanic' } });
  await waitForText(page.locator('.typing'), /Tess Torque is typing…/);
  await waitForText(page.locator('.typing'), /^\s*$/, 8000);

  await client.removeAllChannels();
  client.disconnect();
  assertClean(page);
  await mechanic.stop();
  await context.close();
});

test('a server restart shows "Reconnecting…" and the page catches up afterwards', async () => {
  const { id, mechanic, account, page, context } = await liveSession('Rex Radiator');
  const log = page.getByRole('log', { name: 'Messages' });
  mechanic.send(`say ${id} Before the restart.`);
  await waitForText(log, /Before the restart\./);

  await server.kill('SIGKILL');
  await waitForText(page.locator('.banner'), /Reconnecting…/, 20000);
  await inspectClean(page, 'chat-reconnecting');
  await server.restart();

  // While the page is still reconnecting, the mechanic writes (over HTTP, as any client could).
  const login = await api(server, 'POST', '/api/auth/login', { body: { email: account.email, password: account.password } });
  const sent = await api(server, 'POST', `/api/sessions/${id}/messages`, {
    token: login.body.access_token,
    body: { body: 'While you were away.', client_id: 'restart-test-1' },
  });
  assert.equal(sent.status, 201);

  await waitForText(log, /While you were away\./, 30000);
  await page.locator('.banner').waitFor({ state: 'detached', timeout: 30000 });
  assert.deepEqual(await page.locator('.message .body').allTextContents(), ['Before the restart.', 'While you were away.']);
  await waitForText(page.locator('#room-status'), /Live with Rex Radiator/);
  assertClean(page);
  await mechanic.stop();
  await context.close();
});
