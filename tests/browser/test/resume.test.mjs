// Resume links in a real browser: the token travels in the URL fragment and leaves the address
// bar at once, a link opens its session once (a second use gets the "already used" page), a
// browser that holds another customer is asked before it switches (and nothing changes when the
// answer is no), and an expired link says what to do.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClean, inspectClean, launchBrowser, newCustomer, newRequest, sleep, startServer, waitForText } from '../lib/harness.mjs';

let server;
let browser;

before(async () => {
  // Every request is logged (tower_http at debug), as an access log would: the token must never be there.
  server = await startServer({ env: { WRENCHLINE_LOG: 'info,tower_http=debug' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A customer with an offered request, on its thank-you page: {context, page, id, url}. */
async function customerWithLink(name) {
  const customer = await newCustomer(browser);
  const id = await newRequest(customer.page, server.base, { name });
  const url = await customer.page.getByLabel('Resume link').inputValue();
  return { ...customer, id, url };
}

test('a resume link opens its session from the fragment, once', async () => {
  const dana = await customerWithLink('Dana Driver');
  assert.match(dana.url, /^http:\/\/127\.0\.0\.1:\d+\/resume#token=[A-Za-z0-9_-]{43}$/);
  const token = dana.url.split('#token=')[1];

  const phone = await newCustomer(browser);
  await phone.page.goto(dana.url);
  await phone.page.waitForURL(`**/chat/${dana.id}`);
  assert.equal(new URL(phone.page.url()).hash, '', 'the token left the address bar');
  await waitForText(phone.page.locator('#room-status'), /Waiting for a mechanic to accept/);
  const logged = server.logs.map((line) => line.replace(/\x1b\[[0-9;]*m/g, ''));
  assert.ok(logged.some((line) => line.includes('path=/resume ')), 'the page request was logged');
  assert.ok(!logged.some((line) => line.includes(token)), 'the token never reached the server log');

  // The same link again, on a third device: refused, with what to do.
  const third = await newCustomer(browser);
  await third.page.goto(dana.url);
  const used = third.page.getByTestId('resume-used');
  await waitForText(used, /This link was already used — ask for a new one from the device you started on/);
  assert.equal(new URL(third.page.url()).hash, '');
  await inspectClean(third.page, 'resume-used');
  await third.page.goto(`${server.base}/chat/${dana.id}`);
  await waitForText(third.page.getByTestId('session-problem'), /We can't open this session/);

  // The thank-you page makes a new link on demand, and that one works.
  await dana.page.getByRole('button', { name: 'Make a new link' }).click();
  await sleep(300);
  const fresh = await dana.page.getByLabel('Resume link').inputValue();
  assert.notEqual(fresh, dana.url);
  await third.page.goto(fresh);
  await third.page.waitForURL(`**/chat/${dana.id}`);
  for (const c of [dana, phone, third]) assertClean(c.page);
  for (const c of [dana, phone, third]) await c.context.close();
});

test('a browser that holds another customer asks before it switches', async () => {
  const dana = await customerWithLink('Dana Driver');
  const riley = await customerWithLink('Riley Other');

  await riley.page.goto(dana.url);
  const prompt = riley.page.getByTestId('resume-switch');
  await waitForText(prompt, /already signed in as Riley Other/);
  await waitForText(prompt, /Riley Other's requests no longer open in this browser/);
  assert.equal(new URL(riley.page.url()).hash, '');
  await inspectClean(riley.page, 'resume-switch');

  // No: nothing changes, and the link stays unused.
  await prompt.getByRole('button', { name: 'Stay signed in as Riley Other' }).click();
  await waitForText(riley.page.getByTestId('resume-kept'), /The link was not used/);
  await riley.page.goto(`${server.base}/chat/${riley.id}`);
  await waitForText(riley.page.locator('#room-status'), /Waiting for a mechanic to accept/);

  // Yes: this browser now opens Dana's session, and no longer Riley's.
  await riley.page.goto(dana.url);
  await riley.page.getByTestId('resume-switch').getByRole('button', { name: 'Switch to the linked session' }).click();
  await riley.page.waitForURL(`**/chat/${dana.id}`);
  await waitForText(riley.page.locator('#room-status'), /Waiting for a mechanic to accept/);
  await riley.page.goto(`${server.base}/chat/${riley.id}`);
  await waitForText(riley.page.getByTestId('session-problem'), /We can't open this session/);
  assertClean(riley.page);
  assertClean(dana.page);
  await dana.context.close();
  await riley.context.close();
});

test('an expired resume link says what to do', async () => {
  const quick = await startServer({ env: { WRENCHLINE_RESUME_LINK_TTL: '1' } });
  try {
    const customer = await newCustomer(browser);
    await newRequest(customer.page, quick.base);
    const url = await customer.page.getByLabel('Resume link').inputValue();
    await sleep(1500);
    const other = await newCustomer(browser);
    await other.page.goto(url);
    await waitForText(other.page.getByTestId('resume-expired'), /This link has expired/);
    await inspectClean(other.page, 'resume-expired');
    assertClean(other.page);
    await customer.context.close();
    await other.context.close();
  } finally {
    await quick.stop();
  }
});
