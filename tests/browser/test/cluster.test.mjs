// The customer's page through HAProxy (deploy/haproxy.cfg) in front of a three-node cluster on
// PostgreSQL and Redis, the mechanic connected straight to one node: the customer waits, the
// mechanic accepts and joins, the session goes live and they chat both ways, whichever node
// HAProxy gave the page. Needs PostgreSQL and Redis (`make test-cluster` runs it under
// scripts/with-postgres.sh and scripts/with-redis.sh); without them it is skipped and says so.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as support from '../../support/server.mjs';
import { MechanicProcess, PASSWORD, assertClean, launchBrowser, newCustomer, newRequest, waitForText } from '../lib/harness.mjs';

const available = Boolean(process.env.WRENCHLINE_TEST_POSTGRES_URL && process.env.WRENCHLINE_TEST_REDIS_URL);
let cluster;
let proxy;
let browser;
let mechanic;
let dir;

before(async () => {
  if (!available) return;
  dir = mkdtempSync(path.join(tmpdir(), 'wl-browser-cluster-'));
  const limits = path.join(dir, 'limits.toml');
  writeFileSync(limits, 'intakes_per_address_per_hour = 100000\nlogin_per_address_per_minute = 10000\n');
  cluster = await support.startCluster({ args: ['--limits-file', limits], env: { WRENCHLINE_TRUSTED_PROXIES: '127.0.0.1' }, log: 'warn' });
  proxy = await support.startProxy(cluster);
  browser = await launchBrowser();
  const account = await support.addMechanic(cluster.node(1), { name: 'Sam Spanner', password: PASSWORD });
  mechanic = await MechanicProcess.start(cluster.node(1), account);
});

after(async () => {
  await mechanic?.stop();
  await browser?.close();
  await proxy?.stop();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the customer page through HAProxy meets a mechanic on another node, goes live and chats', { skip: !available && 'needs WRENCHLINE_TEST_POSTGRES_URL and WRENCHLINE_TEST_REDIS_URL (make test-cluster)' }, async () => {
  const { page } = await newCustomer(browser);
  const status = page.locator('#room-status');
  const messages = page.getByRole('log', { name: 'Messages' });

  const id = await newRequest(page, proxy.base);
  await page.getByRole('link', { name: 'Start session now' }).click();
  await page.waitForURL(`**/chat/${id}`);
  await waitForText(status, /Waiting for a mechanic to accept/);

  const accepted = await mechanic.accept(id);
  assert.equal(accepted.session.status, 'waiting');
  await waitForText(status, /Sam Spanner accepted, joining…/);
  await mechanic.join(id);
  await mechanic.next((e) => e.event === 'presence' && e.customer_present === true, { what: 'customer present, across nodes' });
  await mechanic.next((e) => e.event === 'session' && e.status === 'live', { what: 'session live' });
  await waitForText(status, /Live with Sam Spanner/);
  await waitForText(page.getByTestId('presence'), /Sam Spanner is in the chat/);

  const composer = page.getByRole('textbox', { name: 'Message' });
  await composer.fill('Hello through the load balancer.');
  await composer.press('Enter');
  await mechanic.next((e) => e.event === 'message' && e.body === 'Hello through the load balancer.' && e.sender_role === 'customer', {
    what: 'the customer message at the mechanic',
  });
  mechanic.send(`say ${id} Hello from another node.`);
  await waitForText(messages, /Hello from another node\./);
  assert.equal(await page.locator('.message .body').count(), 2);
  assertClean(page);
});
