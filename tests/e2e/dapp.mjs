// The dapp page (examples/dapp) in a real browser against a running fixpoint node: serve the
// page, open it in headless Chromium, draw digits with synthetic mouse strokes, press
// "Recognize on chain", wait for the page to show the result, and report what it showed; then
// open the per-op trace view, and deploy a contract from the page. The Rust test
// (node/tests/dapp.rs) checks what the page showed against the chain over RPC.
// Usage: RPC_URL=... CONTRACT=0x... CHROMIUM=/usr/bin/chromium ARTIFACTS=dir node tests/e2e/dapp.mjs
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { build } from '../../examples/dapp/build.mjs';
import { serve } from '../../examples/dapp/serve.mjs';

const { RPC_URL, CONTRACT, CHROMIUM = '/usr/bin/chromium', ARTIFACTS } = process.env;
if (!RPC_URL || !CONTRACT || !ARTIFACTS) throw new Error('RPC_URL, CONTRACT and ARTIFACTS are required');
mkdirSync(ARTIFACTS, { recursive: true });

// Strokes in pad coordinates (0..1), each a polyline drawn with the mouse button held, and the
// digit a person would read in them.
const ellipse = (cx, cy, rx, ry, n = 48) =>
  Array.from({ length: n + 1 }, (_, i) => [cx + rx * Math.sin((2 * Math.PI * i) / n), cy - ry * Math.cos((2 * Math.PI * i) / n)]);
const DRAWINGS = [
  { digit: 0, strokes: [ellipse(0.5, 0.5, 0.22, 0.36)] },
  { digit: 4, strokes: [[[0.55, 0.12], [0.25, 0.6], [0.75, 0.6]], [[0.6, 0.35], [0.6, 0.9]]] },
  { digit: 7, strokes: [[[0.25, 0.15], [0.75, 0.15], [0.45, 0.88]], [[0.4, 0.5], [0.72, 0.5]]] },
];

await build();
const server = await serve();
const site = `http://127.0.0.1:${server.address().port}/`;
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
const log = [];
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));

  /** Waits until body[data-<key>] is one of `states`; throws with the page's error otherwise. */
  const settle = async (key, states) => {
    await page.waitForFunction(
      ([k, s]) => [...s, 'error'].includes(document.body.dataset[k]) || document.body.dataset.state === 'error',
      [key, states],
      { timeout: 60_000 },
    );
    const state = await page.evaluate((k) => document.body.dataset[k], key);
    if (state === 'error' || (await page.evaluate(() => document.body.dataset.state)) === 'error') {
      throw new Error(`the page failed: ${await page.textContent('#error')}\n${log.join('\n')}`);
    }
    return state;
  };
  const text = async (id) => (await page.textContent(`#${id}`)).trim();

  await page.goto(`${site}?rpc=${encodeURIComponent(RPC_URL)}&contract=${CONTRACT}&signer=dev`);
  await settle('state', ['ready']);
  const pad = await page.locator('#pad').boundingBox();
  const drawings = [];
  for (const d of DRAWINGS) {
    await page.click('#clear');
    for (const stroke of d.strokes) {
      const pts = stroke.map(([x, y]) => [pad.x + x * pad.width, pad.y + y * pad.height]);
      await page.mouse.move(...pts[0]);
      await page.mouse.down();
      for (const p of pts.slice(1)) await page.mouse.move(...p, { steps: 8 });
      await page.mouse.up();
    }
    const pixels = JSON.parse(await text('pixels'));
    await page.click('#recognize');
    await settle('state', ['done']);
    drawings.push({
      digit: d.digit,
      pixels,
      label: await text('label'),
      block: await text('block'),
      tx: await text('tx'),
      recordModel: await text('record-model'),
      recordInput: await text('record-input'),
      recordOutput: await text('record-output'),
      recordCall: await text('record-call'),
      traceHref: await page.getAttribute('#trace-link', 'href'),
    });
  }
  const screenshot = join(ARTIFACTS, 'dapp.png');
  await page.screenshot({ path: screenshot, fullPage: true });

  // The per-op trace of the last inference, through the page's link.
  await page.click('#trace-link');
  const traceState = await settle('trace', ['done', 'unavailable']);
  const trace = {
    state: traceState,
    message: await text('trace-message'),
    tx: await text('trace-tx'),
    call: await text('trace-call'),
    outputHash: (await page.textContent('#trace-output')).trim(),
    ops: await page.$$eval('#trace-table tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))),
  };
  const traceScreenshot = join(ARTIFACTS, 'dapp-trace.png');
  await page.screenshot({ path: traceScreenshot, fullPage: true });

  // Without ?contract the page deploys its own DigitRecognizer.
  await page.goto(`${site}?rpc=${encodeURIComponent(RPC_URL)}&signer=dev`);
  await settle('state', ['ready']);
  await page.click('#deploy');
  await page.waitForFunction(() => document.getElementById('contract').textContent.startsWith('0x') || document.body.dataset.state === 'error', null, { timeout: 60_000 });
  await settle('state', ['ready']);
  const deployed = { contract: await text('contract'), model: await text('model') };

  console.log(JSON.stringify({ drawings, trace, deployed, screenshot, traceScreenshot }));
} finally {
  if (log.length) console.error(log.join('\n'));
  await browser.close();
  server.close();
}
