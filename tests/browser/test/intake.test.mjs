// The intake and the waiver as a customer meets them: problems shown next to their field as they
// are found (client side, with the server's rules), a problem only the server can find shown next
// to its field too, nothing typed ever lost, and the waiver's explicit agreement.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertClean,
  fillIntake,
  inspectClean,
  launchBrowser,
  newCustomer,
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

const errorOf = (page, field) => page.locator(`.error[data-field="${field}"]`);

test('the landing page leads to the intake', async () => {
  const { context, page } = await newCustomer(browser);
  await page.goto(`${server.base}/`);
  await inspectClean(page, 'landing');
  await page.getByRole('link', { name: 'Get help now' }).click();
  await page.waitForURL('**/intake');
  await page.getByRole('radio', { name: /Free trial.*10 minutes.*Free/ }).waitFor();
  await page.getByRole('radio', { name: /Standard.*30 minutes.*\$29\.00/ }).waitFor();
  await page.getByRole('radio', { name: /Extended.*60 minutes.*\$49\.00/ }).waitFor();
  await inspectClean(page, 'intake');
  assertClean(page);
  await context.close();
});

test('client-side problems show inline, and nothing typed is lost', async () => {
  const { context, page } = await newCustomer(browser);
  await page.goto(`${server.base}/intake`);
  await page.getByLabel('Your name').fill('Dana Driver');
  await page.getByLabel('Email').fill('dana@example');
  await page.getByLabel('VIN (optional)').fill('1HGCM82643A004352');
  await page.getByLabel('What is going on?').fill('noise');
  await page.getByRole('button', { name: 'Continue to the waiver' }).click();

  // Nothing was sent; each problem sits under its field, which is marked invalid.
  assert.match(page.url(), /\/intake$/);
  await waitForText(errorOf(page, 'email'), /Please enter an email address like name@example\.com/);
  await waitForText(errorOf(page, 'vehicle.vin'), /check digit \(9th character\) does not match/);
  await waitForText(errorOf(page, 'concern'), /Please write at least 10 characters/);
  await waitForText(errorOf(page, 'vehicle.year'), /The model year must be between 1900 and \d{4}/);
  await waitForText(errorOf(page, 'vehicle.make'), /This field is required/);
  assert.equal(await errorOf(page, 'name').count(), 0, 'a good name has no error');
  assert.equal(await page.getByLabel('Email').getAttribute('aria-invalid'), 'true');
  // This suite's server sends no mail, so the email field has no hint promising one (mail.test.mjs
  // has the page with mail on): the field is described by its error alone.
  assert.equal(await page.getByLabel('Email').evaluate((el) => el.getAttribute('aria-describedby')), 'f-email-error');
  // Focus goes to the first field that needs attention, and a summary links to every one.
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'f-email');
  await page.getByRole('alert').getByRole('link', { name: /Email: Please enter an email address/ }).waitFor();
  // What was typed is still there.
  assert.equal(await page.getByLabel('Your name').inputValue(), 'Dana Driver');
  assert.equal(await page.getByLabel('VIN (optional)').inputValue(), '1HGCM82643A004352');
  await inspectClean(page, 'intake-errors');
  // The dark scheme keeps its contrast too.
  await page.emulateMedia({ colorScheme: 'dark' });
  await inspectClean(page, 'intake-errors-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  // Errors go away as fields are fixed; a reload keeps the draft (this tab only).
  await page.getByLabel('Email').fill('dana@example.com');
  await waitForText(page.locator('form'), /^(?![\s\S]*Please enter an email address)/);
  await page.reload();
  assert.equal(await page.getByLabel('Email').inputValue(), 'dana@example.com');
  assert.equal(await page.getByLabel('What is going on?').inputValue(), 'noise');
  assertClean(page);
  await context.close();
});

test('a problem only the server finds shows next to its field', async () => {
  const { context, page } = await newCustomer(browser);
  // The page is offered a plan the server does not sell (as after a plan was withdrawn): only
  // the server can refuse it.
  await page.route('**/api/plans', async (route) => {
    const response = await route.fetch();
    const plans = await response.json();
    await route.fulfill({ response, json: [...plans, { id: 'gold', name: 'Gold', minutes: 90, price_cents: 9900 }] });
  });
  const answered = page.waitForResponse((r) => r.url().endsWith('/api/intake'));
  await fillIntake(page, server.base, { plan: 'Gold', expectWaiver: false });
  const response = await answered;
  const answer = { status: response.status(), body: await response.json() };
  await waitForText(errorOf(page, 'plan'), /Please choose one of the plans offered/);
  assert.equal(answer?.status, 422);
  assert.deepEqual(Object.keys(answer.body.fields), ['plan']);
  assert.match(page.url(), /\/intake$/);
  assert.equal(await page.getByLabel('Model').inputValue(), 'Civic', 'the form kept what was typed');
  await inspectClean(page, 'intake-server-error');

  // Choosing an offered plan clears it and the request goes through.
  await page.getByRole('radio', { name: /Standard/ }).check();
  assert.equal(await errorOf(page, 'plan').count(), 0);
  await page.getByRole('button', { name: 'Continue to the waiver' }).click();
  await page.waitForURL(/\/intake\/waiver\?session=/);
  assertClean(page);
  await context.close();
});

test('the waiver needs a typed name and an explicit agreement', async () => {
  const { context, page } = await newCustomer(browser);
  const id = await fillIntake(page, server.base);
  await page.getByText(/version \S+/).first().waitFor();
  await inspectClean(page, 'waiver');
  await page.getByRole('button', { name: 'Sign and continue' }).click();
  await waitForText(page.locator('#f-signed-name-error'), /Type your full name to sign/);
  await waitForText(page.locator('#f-agree-error'), /You need to agree to the waiver to continue/);
  await inspectClean(page, 'waiver-errors');
  await page.getByLabel('Type your full name to sign').fill('Dana Driver');
  await page.getByRole('button', { name: 'Sign and continue' }).click();
  await waitForText(page.locator('#f-agree-error'), /You need to agree/);
  await page.getByLabel(/I have read the waiver/).check();
  await page.getByRole('button', { name: 'Sign and continue' }).click();
  await page.waitForURL(`**/thank-you?session=${id}&plan=trial`);
  // Signing twice is not possible: the waiver page now says so.
  await page.goto(`${server.base}/intake/waiver?session=${id}`);
  await page.getByText('You have already signed the waiver for this request.').waitFor();
  assertClean(page);
  await context.close();
});
