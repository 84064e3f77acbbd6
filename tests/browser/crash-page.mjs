#!/usr/bin/env node
// One customer's chat page in headless Chromium, driven line by line by another process: the
// server's crash test (crates/server/tests/api/reliability.rs) makes it one of the customers of a
// `kill -9` and restart, and checks what a person would see on this page.
//
//   CHROMIUM_PATH=/usr/bin/chromium node crash-page.mjs --base http://ADDR --resume "/resume#token=…"
//
// The page opens the resume link (it moves the customer's identity to this browser), lands on
// /chat/{id} and shows it with the presence debug view, whose raw state tells a presence the
// server sent after a reconnect (new connection keys) from the one kept from before. stdin, one
// command a line:
//   send <text>     type and send a message in the page
//   wait <text>     until a message with this text is shown as stored
//   history         the messages the page shows, in order
//   countdown       the seconds the countdown shows
//   close           the page's problems (uncaught exceptions, CSP refusals), then exit
// stdout, one JSON object a line:
//   {"event":"opened","session_id":…}            on /chat/{id}
//   {"event":"live"}                              live, the mechanic shown in the chat
//   {"event":"reconnecting"}                      the "Reconnecting…" banner appeared
//   {"event":"reconnected","ms":…,"banner_ms":…}  live again with the mechanic present under a new
//                                                 connection key, ms after the banner appeared;
//                                                 banner_ms: how long the banner showed
//   {"event":"sent","status":…,"id":…,"seq":…,"client_id":…}   the answer to the page's post,
//                                                 once the page shows the message as sent
//   {"event":"shown","body":…}
//   {"event":"history","messages":[{"body":…,"delivery":…,"mine":bool}]}
//   {"event":"countdown","seconds":…}
//   {"event":"closed","problems":[…]}
//   {"event":"error","command":…,"message":…}

import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { countdownSeconds, launchBrowser, newCustomer, sleep } from './lib/harness.mjs';

const { values: args } = parseArgs({
  options: { base: { type: 'string' }, resume: { type: 'string' } },
});
if (!args.base || !args.resume) {
  process.stderr.write('usage: crash-page.mjs --base URL --resume "/resume#token=…"\n');
  process.exit(2);
}

const STEP_MS = 50;
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const browser = await launchBrowser();
const { page } = await newCustomer(browser);
await page.goto(new URL(args.resume, args.base).href);
await page.waitForURL('**/chat/*', { timeout: 30000 });
const sessionId = new URL(page.url()).pathname.split('/').pop();
await page.goto(`${args.base}/chat/${sessionId}?debug=presence`);
emit({ event: 'opened', session_id: sessionId });

/** What the page shows right now, read in one go. */
function view() {
  return page.evaluate(() => ({
    banner: document.querySelector('.banner') !== null,
    phase: document.querySelector('#room-status')?.getAttribute('data-phase') ?? null,
    present: document.querySelector('[data-testid="presence"] .dot.on') !== null,
    mechanicKeys: Object.entries(JSON.parse(document.querySelector('[data-testid="presence-raw"]')?.textContent || '{}'))
      .filter(([, metas]) => metas.some((meta) => meta.role === 'mechanic'))
      .map(([key]) => key),
    messages: [...document.querySelectorAll('li.message')].map((li) => ({
      body: li.querySelector('.body')?.textContent ?? '',
      delivery: li.getAttribute('data-delivery'),
      mine: li.classList.contains('mine'),
    })),
  }));
}

async function until(what, check, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await view();
    if (check(now)) return now;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; the page shows ${JSON.stringify(now)}`);
    await sleep(STEP_MS);
  }
}

const together = (v) => !v.banner && v.phase === 'live' && v.present && v.mechanicKeys.length > 0;

/**
 * Watches the page for the whole run: `live` once, then `reconnecting` when the banner shows and
 * `reconnected` once the mechanic is present again under connection keys not seen before.
 */
async function watch() {
  let keys = (await until('the session to be live with the mechanic in the chat', together, 60000)).mechanicKeys;
  emit({ event: 'live' });
  let since = null;
  let bannerGone = null;
  for (;;) {
    const v = await view().catch(() => null);
    if (v === null) return;
    if (since === null && v.banner) {
      since = Date.now();
      bannerGone = null;
      emit({ event: 'reconnecting' });
    } else if (since !== null) {
      if (v.banner) bannerGone = null;
      else if (bannerGone === null) bannerGone = Date.now();
      if (together(v) && v.mechanicKeys.every((key) => !keys.includes(key))) {
        emit({ event: 'reconnected', ms: Date.now() - since, banner_ms: (bannerGone ?? Date.now()) - since });
        keys = v.mechanicKeys;
        since = null;
      }
    }
    await sleep(STEP_MS);
  }
}

const shownStored = (v, text) => v.messages.some((m) => m.body === text && m.delivery === 'sent');

async function send(text) {
  const answered = page.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === `/api/sessions/${sessionId}/messages`,
    { timeout: 15000 },
  );
  const composer = page.getByRole('textbox', { name: 'Message' });
  await composer.fill(text);
  await composer.press('Enter');
  const response = await answered;
  const message = await response.json();
  await until(`"${text}" shown as sent`, (v) => shownStored(v, text));
  emit({ event: 'sent', status: response.status(), id: message.id, seq: message.seq, client_id: message.client_id });
}

const commands = {
  send,
  async wait(text) {
    await until(`"${text}" shown`, (v) => shownStored(v, text));
    emit({ event: 'shown', body: text });
  },
  async history() {
    emit({ event: 'history', messages: (await view()).messages });
  },
  async countdown() {
    emit({ event: 'countdown', seconds: await countdownSeconds(page) });
  },
};

async function close() {
  emit({ event: 'closed', problems: page.problems });
  await browser.close();
  process.exit(0);
}

watch().catch((e) => emit({ event: 'error', command: 'watch', message: String(e?.message ?? e) }));

// Commands run one after the other, in the order they came.
let queue = Promise.resolve();
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [name, ...rest] = line.trim().split(' ');
  if (!name) return;
  queue = queue.then(async () => {
    if (name === 'close') return close();
    const run = commands[name];
    try {
      if (!run) throw new Error(`unknown command ${name}`);
      await run(rest.join(' '));
    } catch (e) {
      emit({ event: 'error', command: name, message: String(e?.message ?? e) });
    }
  });
});
lines.on('close', () => {
  queue = queue.then(close);
});
