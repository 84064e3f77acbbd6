// Shared helpers of the browser suite: the real wrenchline-server on a random port with a fresh
// SQLite file and mechanics created with its CLI (both through tests/support/server.mjs),
// Debian's Chromium driven by playwright-core, the mechanic side as a line-protocol process
// (crates/client's example or the Node stand-in), axe checks and screenshots under
// tests/artifacts/.

import { spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import AxeBuilder from '@axe-core/playwright';
import * as support from '../../support/server.mjs';

export { sleep };

const here = path.dirname(fileURLToPath(import.meta.url));
export const suiteDir = path.resolve(here, '..');
export const repoRoot = path.resolve(suiteDir, '..', '..');
export const artifactsDir = path.join(repoRoot, 'tests', 'artifacts', 'browser');

export const PASSWORD = support.PASSWORD;

/** The widths every page is checked and photographed at: a phone first, then a desktop. */
export const VIEWPORTS = [
  { name: 'phone', width: 375, height: 812 },
  { name: 'desktop', width: 1280, height: 900 },
];

export const serverBinary = support.serverBinary;

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/**
 * Starts `wrenchline-server serve` on 127.0.0.1:0 with a fresh database; resolves once it is
 * ready. Options: `plans` (TOML text for --plans-file), `env` (extra environment). `kill(signal)`
 * stops it, `restart()` starts it again on the same address and database, `stop()` stops it and
 * removes its files.
 */
export async function startServer({ plans, env = {} } = {}) {
  const id = `${process.pid}-${randomUUID().slice(0, 8)}`;
  const limitsFile = path.join(tmpdir(), `wl-browser-${id}-limits.toml`);
  // Every test intake comes from 127.0.0.1: lift the per-address limits for the suite.
  writeFileSync(
    limitsFile,
    'intakes_per_address_per_hour = 100000\nlogin_per_address_per_minute = 10000\nlogin_per_account_per_minute = 10000\nmessages_per_user_per_minute = 10000\n',
  );
  const files = [limitsFile];
  const args = ['--limits-file', limitsFile];
  if (plans) {
    const plansFile = path.join(tmpdir(), `wl-browser-${id}-plans.toml`);
    writeFileSync(plansFile, plans);
    files.push(plansFile);
    args.push('--plans-file', plansFile);
  }
  const inner = await support.startServer({
    database: support.freshDatabase({ prefix: 'wl-browser' }),
    args,
    env,
    log: process.env.WRENCHLINE_LOG ?? 'warn',
  });
  return {
    dbUrl: inner.databaseUrl,
    databaseUrl: inner.databaseUrl,
    logs: inner.logs,
    get base() {
      return inner.base;
    },
    get child() {
      return inner.child;
    },
    tail: (n = 30) => inner.tail(n),
    kill: (signal = 'SIGTERM') => inner.stop(signal),
    restart: ({ gapMs = 0 } = {}) => inner.restart({ signal: 'SIGKILL', gapMs }),
    async stop() {
      await inner.stop();
      inner.cleanup();
      inner.database.cleanup();
      for (const f of files) rmSync(f, { force: true });
    },
  };
}

/** Plain HTTP to the server as a non-browser client (no Origin header): `{status, body}`. */
export async function api(server, method, pathname, { token, body } = {}) {
  const res = await support.request(server, method, pathname, { token, body });
  return { status: res.status, body: res.body };
}

/** An HS256 JWT as the server signs them, for forging an expired link with a known secret. */
export function signToken(secret, claims) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const head = `${b64({ typ: 'JWT', alg: 'HS256' })}.${b64(claims)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

let mechanics = 0;

/** A mechanic account made with the CLI, as an administrator would. */
export function createMechanic(server, name = `Sam Spanner ${++mechanics}`) {
  return support.addMechanic(server, { name, password: PASSWORD });
}

// ---------------------------------------------------------------------------------------------
// Mechanic process: `accept|join|say|leave|end <id>` in, JSON events out
// ---------------------------------------------------------------------------------------------

/** crates/client's scriptable mechanic (`cargo build -p wrenchline-client --example mechanic`). */
export const rustMechanic = support.cargoBinary(path.join('examples', 'mechanic'));

/** `rust` (crates/client's example) or `node` (the stand-in); WRENCHLINE_MECHANIC decides. */
export function mechanicKind() {
  const asked = process.env.WRENCHLINE_MECHANIC;
  if (asked === 'rust' || asked === 'node') return asked;
  if (asked) throw new Error(`WRENCHLINE_MECHANIC must be rust or node, not ${asked}`);
  return existsSync(rustMechanic) ? 'rust' : 'node';
}

export class MechanicProcess {
  static async start(server, account) {
    const kind = mechanicKind();
    const args = ['--server', server.base, '--email', account.email, '--password', account.password];
    const child =
      kind === 'rust'
        ? spawn(rustMechanic, args, { stdio: ['pipe', 'pipe', 'pipe'] })
        : spawn(process.execPath, [path.join(suiteDir, 'mechanic-standin.mjs'), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const m = new MechanicProcess(kind, child, account);
    await m.next((e) => e.event === 'ready', { what: 'ready', timeout: 20000 });
    return m;
  }

  constructor(kind, child, account) {
    this.kind = kind;
    this.child = child;
    this.account = account;
    this.events = [];
    this.stderr = [];
    this.taken = new Set();
    this.waiters = new Set();
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (!line) continue;
        let event;
        try {
          event = JSON.parse(line);
        } catch {
          this.stderr.push(`[stdout, not JSON] ${line}`);
          continue;
        }
        this.events.push(event);
        for (const w of this.waiters) w();
      }
    });
    child.stderr.on('data', (d) => this.stderr.push(String(d)));
  }

  send(line) {
    this.child.stdin.write(`${line}\n`);
  }

  /**
   * The first event not yet taken that matches, whenever it came (events of one action can arrive
   * in any order: a presence change may come before `joined`); takes it. Fails on an `error`
   * event not yet taken unless `errors` is true.
   */
  async next(predicate, { timeout = 15000, what = 'event', errors = false } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      for (const e of this.events) {
        if (this.taken.has(e)) continue;
        if (predicate(e)) {
          this.taken.add(e);
          return e;
        }
        if (!errors && e.event === 'error') {
          this.taken.add(e);
          throw new Error(`mechanic (${this.kind}) reported an error while waiting for ${what}: ${JSON.stringify(e)}`);
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `mechanic (${this.kind}) gave no ${what} within ${timeout} ms; events: ${JSON.stringify(this.events.slice(-15))}; stderr: ${this.stderr.join('').slice(-2000)}`,
        );
      }
      await new Promise((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(wake, left);
        this.waiters.add(wake);
      });
    }
  }

  async accept(id) {
    this.send(`accept ${id}`);
    return this.next((e) => e.event === 'accepted', { what: 'accepted' });
  }

  async join(id) {
    this.send(`join ${id}`);
    return this.next((e) => e.event === 'joined' && e.session_id === id, { what: 'joined' });
  }

  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const done = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await done;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Browser
// ---------------------------------------------------------------------------------------------

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
}

/**
 * A fresh browser context (its own cookies: a separate person or device) at phone size, whose
 * pages record console errors, CSP violations and uncaught exceptions for `assertClean`.
 */
export async function newCustomer(browser, { viewport = VIEWPORTS[0] } = {}) {
  const context = await browser.newContext({
    viewport: { width: viewport.width, height: viewport.height },
    acceptDownloads: true,
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write']).catch(() => undefined);
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content Security Policy|Refused to/i.test(text)) page.problems.push(`CSP: ${text}`);
  });
  return { context, page };
}

/** Fails if the page threw or the browser refused anything under the CSP. */
export function assertClean(page) {
  if (page.problems.length) throw new Error(`page problems:\n${page.problems.join('\n')}`);
}

function slug(s) {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

export const axeFindings = [];

/**
 * Runs axe on the page as it is and photographs it, at 375 px and at 1280 px; returns the
 * serious or critical violations. The viewport is put back afterwards.
 */
export async function inspect(page, name) {
  mkdirSync(artifactsDir, { recursive: true });
  const before = page.viewportSize();
  const bad = [];
  for (const vp of VIEWPORTS) {
    await page.setViewportSize({ width: vp.width, height: vp.height });
    await page.evaluate(() => document.fonts?.ready);
    await sleep(150);
    await page.screenshot({ path: path.join(artifactsDir, `${slug(name)}-${vp.width}.png`), fullPage: true });
    const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
    for (const v of results.violations) {
      const entry = { page: name, width: vp.width, id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) };
      axeFindings.push(entry);
      if (v.impact === 'serious' || v.impact === 'critical') bad.push(entry);
    }
  }
  if (before) await page.setViewportSize(before);
  return bad;
}

/** `inspect` that fails the test on a serious or critical violation. */
export async function inspectClean(page, name) {
  const bad = await inspect(page, name);
  if (bad.length) throw new Error(`axe found serious/critical violations on ${name}:\n${JSON.stringify(bad, null, 2)}`);
}

// ---------------------------------------------------------------------------------------------
// The customer's way through the pages
// ---------------------------------------------------------------------------------------------

export const VEHICLE = { year: '2018', make: 'Honda', model: 'Civic', vin: '1HGCM82633A004352', mileage: '84000' };

/** Fills and sends the intake on /intake; resolves with the new session id (from the waiver URL). */
export async function fillIntake(
  page,
  base,
  { name = 'Dana Driver', concern = 'Grinding noise when braking at low speed', plan = 'Free trial', expectWaiver = true } = {},
) {
  await page.goto(`${base}/intake`);
  await page.getByLabel('Your name').fill(name);
  await page.getByLabel('Email').fill(`dana-${randomUUID().slice(0, 6)}@example.com`);
  await page.getByLabel('Phone (optional)').fill('+1 (555) 010-2030');
  await page.getByLabel('Year').fill(VEHICLE.year);
  await page.getByLabel('Make').fill(VEHICLE.make);
  await page.getByLabel('Model').fill(VEHICLE.model);
  await page.getByLabel('VIN (optional)').fill(VEHICLE.vin);
  await page.getByLabel('Mileage (optional)').fill(VEHICLE.mileage);
  await page.getByLabel('What is going on?').fill(concern);
  await page.getByRole('radio', { name: new RegExp(plan) }).check();
  await page.getByRole('button', { name: 'Continue to the waiver' }).click();
  if (!expectWaiver) return null;
  await page.waitForURL(/\/intake\/waiver\?session=/);
  return new URL(page.url()).searchParams.get('session');
}

export async function signWaiver(page, name = 'Dana Driver') {
  await page.getByLabel('Type your full name to sign').fill(name);
  await page.getByLabel(/I have read the waiver/).check();
  await page.getByRole('button', { name: 'Sign and continue' }).click();
  await page.waitForURL(/\/thank-you\?session=/);
}

/** Intake, waiver and thank-you in one go; resolves with the session id, on the thank-you page. */
export async function newRequest(page, base, opts) {
  const id = await fillIntake(page, base, opts);
  await signWaiver(page, opts?.name);
  return id;
}

export async function waitForText(locator, pattern, timeout = 15000) {
  const deadline = Date.now() + timeout;
  let last = '';
  while (Date.now() < deadline) {
    last = (await locator.textContent().catch(() => '')) ?? '';
    if (pattern.test(last)) return last;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${pattern}; last text: ${JSON.stringify(last.slice(0, 300))}`);
}

/** Seconds shown by the countdown (mm:ss). */
export async function countdownSeconds(page) {
  const text = (await page.getByTestId('countdown').textContent())?.trim() ?? '';
  const m = /^(\d+):(\d\d)$/.exec(text);
  if (!m) throw new Error(`countdown shows ${JSON.stringify(text)}`);
  return Number(m[1]) * 60 + Number(m[2]);
}
