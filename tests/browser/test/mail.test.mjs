// Mail in a real browser, against a real SMTP server (aiosmtpd, tests/support/smtp.mjs): the
// intake page promises email only when the server mails; the link in each received mail opens
// the customer's chat on another device (once); and every mail's HTML part is rendered in
// Chromium at phone width and photographed into tests/artifacts/mail/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  MechanicProcess,
  PASSWORD,
  assertClean,
  launchBrowser,
  newCustomer,
  newRequest,
  repoRoot,
  startServer,
  waitForText,
} from '../lib/harness.mjs';
import * as support from '../../support/server.mjs';
import { freePort, mailLink, startSmtp } from '../../support/smtp.mjs';

const FROM = 'Wrenchline <help@example.com>';
const mailArtifacts = path.join(repoRoot, 'tests', 'artifacts', 'mail');

let browser;
let smtp;
const servers = [];

before(async () => {
  browser = await launchBrowser();
  smtp = await startSmtp();
});

after(async () => {
  await browser?.close();
  for (const s of servers) {
    await s.stop();
    s.cleanup?.();
    s.database?.cleanup?.();
  }
  await smtp?.cleanup();
});

/** A server that mails through the test SMTP server; its public URL is its own address. */
async function mailServer(extra = []) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = await support.startServer({
    bind: `127.0.0.1:${port}`,
    args: ['--smtp-url', smtp.url, '--mail-from', FROM, '--public-url', base, ...extra],
    log: 'warn',
  });
  servers.push(server);
  return server;
}

/** Renders a mail's HTML part as a phone shows it and saves the picture. */
async function photograph(mail, name) {
  mkdirSync(mailArtifacts, { recursive: true });
  const { context, page } = await newCustomer(browser);
  await page.setContent(mail.html, { waitUntil: 'load' });
  assert.equal(await page.locator('script').count(), 0, `${name}: no script in a mail`);
  const button = page.getByRole('link').last();
  assert.match((await button.getAttribute('href')) ?? '', /\/resume#token=/, `${name}: the button is the link`);
  // Nothing wider than the phone: no sideways scrolling.
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `${name} is ${width} px wide at 375`);
  await page.screenshot({ path: path.join(mailArtifacts, `${name}.png`), fullPage: true });
  await context.close();
}

function assertMail(mail, to) {
  assert.deepEqual(mail.rcpt_tos, [to]);
  assert.equal(mail.content_type, 'multipart/alternative');
  assert.match(mail.from, /help@example\.com/);
}

test('without mail the intake page promises no email', async () => {
  const server = await startServer();
  try {
    const config = await support.expectStatus(server, 'GET', '/api/config', 200);
    assert.deepEqual(config, { mail: false });
    const { context, page } = await newCustomer(browser);
    await page.goto(`${server.base}/intake`);
    await page.getByLabel('Email').waitFor();
    await page.getByRole('button', { name: 'Continue to the waiver' }).waitFor();
    const text = await page.locator('main, body').first().textContent();
    assert.doesNotMatch(text, /we (send|email|mail)/i);
    assertClean(page);
    await context.close();
  } finally {
    await server.stop();
  }
});

test('the links in received mails open the chat, once, and the mails render on a phone', async () => {
  const server = await mailServer(['--mail-unread-after', '1']);
  const base = server.base;
  const resume = `${base}/resume#token=`;

  // The intake says mail will come, and the waiver brings the first one.
  const dana = await newCustomer(browser);
  await dana.page.goto(`${base}/intake`);
  await waitForText(dana.page.locator('form'), /We email you when a mechanic accepts/);
  const id = await newRequest(dana.page, base);
  const received = await smtp.waitForMail(/We received your request/);
  const email = received.rcpt_tos[0];
  assert.match(email, /^dana-[0-9a-f]+@example\.com$/);
  assertMail(received, email);
  assert.match(received.text, /Grinding noise when braking at low speed/);
  await photograph(received, '1-request-received');
  await dana.context.close();

  // Its link on another device lands in the chat; a second use is refused.
  const phone = await newCustomer(browser);
  const link = mailLink(received, resume);
  await phone.page.goto(link);
  await phone.page.waitForURL(`**/chat/${id}`);
  await waitForText(phone.page.locator('#room-status'), /Waiting for a mechanic to accept/);
  assertClean(phone.page);
  await phone.context.close();
  const again = await newCustomer(browser);
  await again.page.goto(link);
  await waitForText(again.page.getByTestId('resume-used'), /already used/);
  await again.context.close();

  // A mechanic accepts: the second mail names them.
  const account = await support.createMechanic(server, { name: 'Sam Spanner', password: PASSWORD });
  await support.expectStatus(server, 'POST', `/api/sessions/${id}/accept`, 200, { token: account.token });
  const accepted = await smtp.waitForMail(/Sam Spanner accepted your request/);
  assertMail(accepted, email);
  await photograph(accepted, '2-accepted');

  // The mechanic writes while nobody has the chat open: one mail, whose link shows the message.
  const note = 'Hi Dana, <b>check</b> the pads & rotors';
  await support.expectStatus(server, 'POST', `/api/sessions/${id}/messages`, 201, {
    token: account.token,
    body: { body: note, client_id: 'mail-test-1' },
  });
  const unread = await smtp.waitForMail(/Sam Spanner sent you a message/);
  assertMail(unread, email);
  await photograph(unread, '3-unread-messages');
  const back = await newCustomer(browser);
  await back.page.goto(mailLink(unread, resume));
  await back.page.waitForURL(`**/chat/${id}`);
  await waitForText(back.page.getByRole('log', { name: 'Messages' }), /Hi Dana, <b>check<\/b> the pads & rotors/);

  // Both in the chat: live; the mechanic ends it and the last mail carries the transcript.
  const mechanic = await MechanicProcess.start(server, account);
  try {
    await mechanic.join(id);
    await waitForText(back.page.locator('#room-status'), /Live with Sam Spanner/);
  } finally {
    await mechanic.stop();
  }
  await support.expectStatus(server, 'POST', `/api/sessions/${id}/end`, 200, { token: account.token });
  const ended = await smtp.waitForMail(/has ended/);
  assertMail(ended, email);
  assert.ok(ended.text.includes(note), ended.text);
  assert.ok(ended.html.includes('Hi Dana, &lt;b&gt;check&lt;/b&gt; the pads &amp; rotors'));
  await photograph(ended, '4-session-ended');
  assertClean(back.page);
  await back.context.close();
  const rate = await newCustomer(browser);
  await rate.page.goto(mailLink(ended, resume));
  await rate.page.waitForURL(`**/chat/${id}`);
  await rate.context.close();

  // Each mail once.
  const subjects = smtp.mails().filter((m) => m.rcpt_tos[0] === email).map((m) => m.subject);
  assert.equal(subjects.length, 4, JSON.stringify(subjects));
});

test('a request nobody accepts is mailed what to do next', async () => {
  const server = await mailServer(['--request-accept-timeout', '1']);
  const customer = await support.createCustomerSession(server, { token: false });
  const email = (await support.expectStatus(server, 'GET', `/api/sessions/${customer.sessionId}`, 200, { cookie: customer.cookie }))
    && customer.user.email;
  const lapsed = await smtp.waitForMail(/No mechanic was free/);
  assertMail(lapsed, email);
  assert.ok(lapsed.text.includes(`${server.base}/ `), lapsed.text);
  await photograph(lapsed, '5-not-accepted');
  const { context, page } = await newCustomer(browser);
  await page.goto(mailLink(lapsed, `${server.base}/resume#token=`));
  await page.waitForURL(`**/chat/${customer.sessionId}`);
  await context.close();
});
