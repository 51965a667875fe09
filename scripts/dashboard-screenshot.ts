// `npm run screenshot`: the dashboard as the README shows it. Starts the built API and a worker on a database of
// their own, sends an hour of demo data for three keys, opens the page in Chromium and saves docs/dashboard.png
// (1280 px wide) and docs/dashboard-narrow.png (420 px).
import path from 'node:path';
import { launchChromium } from '../test/browser/chromium';
import { startOwnService } from './own-service';

const DOCS = path.resolve(__dirname, '..', 'docs');
const KEYS = ['plant-1/boiler/temp', 'plant-1/boiler/pressure', 'plant-2/chiller/temp'];
const MINUTE = 60_000;

/** A value every 10 s for the last hour: a slow wave with noise, different per key. */
function demoPoints(key: string, index: number, now: number): { key: string; value: number; timestamp: number }[] {
  const points = [];
  for (let t = now - 60 * MINUTE; t <= now; t += 10_000) {
    const phase = (t / (20 * MINUTE)) * 2 * Math.PI + index;
    const base = [72, 4.2, 6.5][index] ?? 10;
    const swing = [6, 0.6, 1.5][index] ?? 1;
    const value = base + swing * Math.sin(phase) + (Math.random() - 0.5) * swing * 0.8;
    points.push({ key, value: Math.round(value * 100) / 100, timestamp: t });
  }
  return points;
}

async function ingest(baseUrl: string, points: unknown[]): Promise<void> {
  const response = await fetch(`${baseUrl}/api/data/ingest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ points }),
  });
  const body = (await response.json()) as { batchId: string };
  for (;;) {
    const status = (await (await fetch(`${baseUrl}/api/data/batches/${body.batchId}`)).json()) as { status: string };
    if (status.status === 'completed') return;
    if (status.status === 'failed') throw new Error(`demo batch ${body.batchId} failed`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function main(): Promise<void> {
  const service = await startOwnService('screenshot');
  const browser = await launchChromium();
  try {
    const now = Date.now();
    await ingest(
      service.baseUrl,
      KEYS.flatMap((key, index) => demoPoints(key, index, now)),
    );
    const query = `${KEYS.map((key) => `key=${encodeURIComponent(key)}`).join('&')}&range=1h`;
    for (const [file, width] of [
      ['dashboard.png', 1280],
      ['dashboard-narrow.png', 420],
    ] as const) {
      const page = await browser.newPage({ viewport: { width, height: 900 } });
      await page.goto(`${service.baseUrl}/test-socket.html?${query}`);
      await page.locator('#status[data-state="connected"]').waitFor();
      await page
        .locator('.card .chart canvas')
        .nth(KEYS.length - 1)
        .waitFor();
      await page.fill('#key-search', 'plant-');
      await page
        .locator('#key-results li')
        .nth(KEYS.length - 1)
        .waitFor();
      // A page that sent a batch: the feed shows it.
      await page.fill('#batch-key', 'demo/test-batch');
      await page.click('#send');
      await page.locator('#batches li').first().waitFor();
      await page.waitForTimeout(800);
      await page.screenshot({ path: path.join(DOCS, file), fullPage: width < 800 });
      process.stdout.write(`wrote docs/${file}\n`);
      await page.close();
    }
  } finally {
    await browser.close();
    await service.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
