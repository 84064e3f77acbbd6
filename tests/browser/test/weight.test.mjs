// What /intake costs a phone: the bytes the browser actually transferred to show it (the server
// sends assets uncompressed today), and what the same files weigh gzipped. Written to
// tests/artifacts/browser/page-weight.json and held to a budget.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { artifactsDir, assertClean, launchBrowser, newCustomer, repoRoot, startServer } from '../lib/harness.mjs';

/** Transferred bytes of a first visit to /intake, uncompressed as served today. */
const TRANSFER_BUDGET = 200 * 1024;
/** The same files gzipped: what a compressing server or proxy would send. */
const GZIP_BUDGET = 60 * 1024;

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

test('the weight of /intake on a first visit', async (t) => {
  const { context, page } = await newCustomer(browser);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  const urls = new Map();
  const sizes = new Map();
  cdp.on('Network.responseReceived', (e) => urls.set(e.requestId, e.response.url));
  cdp.on('Network.loadingFinished', (e) => sizes.set(e.requestId, e.encodedDataLength));
  await page.goto(`${server.base}/intake`, { waitUntil: 'networkidle' });
  await page.getByRole('radio', { name: /Free trial/ }).waitFor();

  const resources = [...sizes].map(([id, bytes]) => ({ url: urls.get(id) ?? id, bytes }));
  const transferred = resources.reduce((sum, r) => sum + r.bytes, 0);
  let gzipped = 0;
  const files = [];
  for (const r of resources) {
    const { pathname } = new URL(r.url);
    if (!pathname.startsWith('/assets/') && pathname !== '/intake') continue;
    const file = pathname === '/intake' ? 'index.html' : pathname.slice(1);
    const data = readFileSync(path.join(repoRoot, 'ui', 'dist', file));
    const gz = gzipSync(data, { level: 9 }).length;
    gzipped += gz;
    files.push({ file, bytes: data.length, gzip: gz });
  }
  const report = { page: '/intake', transferred_bytes: transferred, requests: resources.length, shell_gzip_bytes: gzipped, files, resources };
  mkdirSync(artifactsDir, { recursive: true });
  writeFileSync(path.join(artifactsDir, 'page-weight.json'), JSON.stringify(report, null, 2));
  t.diagnostic(`/intake: ${resources.length} requests, ${(transferred / 1024).toFixed(1)} KiB transferred, shell ${(gzipped / 1024).toFixed(1)} KiB gzipped`);
  assert.ok(!resources.some((r) => /module-|realtime/.test(r.url)), 'realtime-js is not loaded before a chat opens');
  assert.ok(transferred < TRANSFER_BUDGET, `transferred ${transferred} B, budget ${TRANSFER_BUDGET} B`);
  assert.ok(gzipped < GZIP_BUDGET, `gzipped ${gzipped} B, budget ${GZIP_BUDGET} B`);
  assertClean(page);
  await context.close();
});
