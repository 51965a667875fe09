import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { MongoClient } from 'mongodb';
import type { Browser, Locator, Page } from 'playwright-core';
import { createApiComponents, createWorkerComponents, type ApiComponents, type WorkerComponents } from '../../src/composition';
import { type Config, DEFAULT_REDIS_URL, loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/logger';
import { launchChromium } from './chromium';
import { mongoServerUri } from '../support/harness';

/**
 * The dashboard (`/test-socket.html`) in a real Chromium against an API and
 * a worker running in this process, on a database and a queue of their own.
 * Screenshots: /tmp/dashboard-*.png.
 */

const SCREENSHOT_DIR = '/tmp';
const STAT_FIELDS = ['count', 'avg', 'min', 'max', 'lastValue'] as const;
const MINUTE = 60_000;
// A job goes API -> Redis -> worker -> MongoDB -> pub/sub -> socket; well under a second here, 20 s leaves room for a slow CI box.
const UPDATE_TIMEOUT_MS = 20_000;

const suffix = randomBytes(4).toString('hex');
const TEMP_KEY = 'sensor-1/temp';
const HUMIDITY_KEY = 'sensor-2/humidity';
const HTML_KEY = 'room <img src=x onerror=alert(1)>';

let config: Config;
let api: ApiComponents | undefined;
let worker: WorkerComponents | undefined;
let browser: Browser | undefined;
let page: Page;
let pageOpened = false;
let baseUrl: string;
const pageProblems: string[] = [];

const quoted = (key: string): string => key.replace(/["\\]/g, '\\$&');

function card(key: string): Locator {
  return page.locator(`#cards .card[data-key="${quoted(key)}"]`);
}

async function statText(key: string, field: string): Promise<string> {
  return ((await card(key).locator(`dd[data-field="${field}"]`).textContent()) ?? '').trim();
}

async function cardStats(key: string): Promise<Record<string, string>> {
  const texts = await Promise.all(STAT_FIELDS.map((field) => statText(key, field)));
  return Object.fromEntries(STAT_FIELDS.map((field, index) => [field, texts[index] ?? '']));
}

interface Drawn {
  start: string;
  avg: number;
  min: number;
  max: number;
  perMinute: number;
}

/** The buckets the key's chart draws (uPlot's data: x in seconds, then avg, min, max, points per minute). */
async function drawnBuckets(key: string): Promise<Drawn[]> {
  return card(key)
    .locator('.chart')
    .evaluate((chart) => {
      const data = (chart as unknown as { uplot: { data: (number | null)[][] } }).uplot.data;
      const [xs = [], avg = [], min = [], max = [], rate = []] = data;
      const drawn = [];
      for (let i = 0; i < xs.length; i += 1) {
        if (avg[i] === null || avg[i] === undefined) continue;
        drawn.push({ start: new Date((xs[i] ?? 0) * 1000).toISOString(), avg: avg[i], min: min[i], max: max[i], perMinute: rate[i] });
      }
      return drawn as Drawn[];
    });
}

async function apiSeries(
  key: string,
  step: string,
  from: number,
): Promise<{ start: string; count: number; avg: number; min: number; max: number }[]> {
  const response = await fetch(`${baseUrl}/api/data/series?key=${encodeURIComponent(key)}&step=${step}&from=${from}`);
  expect(response.status).toBe(200);
  const body = (await response.json()) as {
    series: { buckets: { start: string; count: number; avg: number; min: number; max: number }[] }[];
  };
  return body.series[0]?.buckets ?? [];
}

async function cardOrder(): Promise<string[]> {
  return page.locator('#cards .card').evaluateAll((cards) => cards.map((node) => node.getAttribute('data-key') ?? ''));
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: `${SCREENSHOT_DIR}/dashboard-${name}.png`, fullPage: true, animations: 'disabled' });
}

/** Retries `assertion` until it passes; after `timeoutMs` its last failure is the test's failure. */
async function eventually(assertion: () => Promise<void>, timeoutMs = UPDATE_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await assertion();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function ingest(points: unknown[]): Promise<{ batchId: string; accepted: number }> {
  const response = await fetch(`${baseUrl}/api/data/ingest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ points }),
  });
  expect(response.status).toBe(202);
  return (await response.json()) as { batchId: string; accepted: number };
}

async function subscribeFromPage(input: string): Promise<void> {
  await page.fill('#keys', input);
  await page.click('#subscribe');
}

beforeAll(async () => {
  // First, so that a machine without Chromium fails at once with the fix, before any service starts.
  browser = await launchChromium();

  const baseUri = mongoServerUri();
  config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    MONGODB_URI: `${baseUri}/test_browser_${suffix}`,
    REDIS_URL: process.env.REDIS_URL ?? DEFAULT_REDIS_URL,
    QUEUE_NAME: `test-browser-${suffix}`,
    METRICS_PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  });
  const logger = createLogger(config.LOG_LEVEL, 'test');
  worker = await createWorkerComponents(config, logger);
  worker.start();
  api = await createApiComponents(config, logger);
  baseUrl = `http://127.0.0.1:${await api.listen(config.PORT)}`;

  // en-US and UTC, so that formatted numbers and times are the same on every machine.
  const context = await browser.newContext({ locale: 'en-US', timezoneId: 'UTC', viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
  pageOpened = true;
  page.on('pageerror', (error) => pageProblems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageProblems.push(`console error: ${message.text()}`);
  });
  page.on('dialog', (dialog) => {
    pageProblems.push(`dialog opened: ${dialog.message()}`);
    void dialog.dismiss();
  });
  await page.goto(`${baseUrl}/test-socket.html`);
  await page.locator('#status[data-state="connected"]').waitFor({ timeout: 10_000 });
}, 60_000);

afterAll(async () => {
  // Taken here so that a failed run leaves a picture of the page too.
  if (pageOpened) await shot('last').catch(() => undefined);
  await browser?.close();
  await worker?.close();
  await api?.close();
  if (!api && !worker) return;

  const mongo = await MongoClient.connect(config.MONGODB_URI);
  try {
    await mongo.db().dropDatabase();
  } finally {
    await mongo.close();
  }
  const redis = new Redis(config.REDIS_URL);
  try {
    for (const pattern of [`bull:${config.QUEUE_NAME}:*`, `${config.QUEUE_NAME}:*`]) {
      for await (const keys of redis.scanStream({ match: pattern, count: 500 })) {
        const found = keys as string[];
        if (found.length > 0) await redis.del(...found);
      }
    }
  } finally {
    await redis.quit();
  }
}, 60_000);

describe('dashboard in a real browser', () => {
  const now = Date.now();
  // The points of the last few minutes, so that the 1 h range holds them in minute buckets.
  const minuteAgo = (n: number): number => Math.floor(now / MINUTE) * MINUTE - n * MINUTE + 5_000;

  it('when the user adds two keys without data, then both cards show empty statistics and an empty chart at once', async () => {
    await subscribeFromPage(`${TEMP_KEY} ${HUMIDITY_KEY}`);

    await card(TEMP_KEY).waitFor();
    await card(HUMIDITY_KEY).waitFor();
    expect(await cardOrder()).toEqual([TEMP_KEY, HUMIDITY_KEY]);
    expect(await statText(TEMP_KEY, 'count')).toBe('—');
    expect(await card(HUMIDITY_KEY).locator('.chart-empty').isVisible()).toBe(true);
    expect(await page.locator('#error').isVisible()).toBe(false);
    expect(await page.inputValue('#keys')).toBe('');
    expect(new URL(page.url()).searchParams.getAll('key')).toEqual([TEMP_KEY, HUMIDITY_KEY]);
  });

  it('when points of several minutes are ingested, then the card shows the exact statistics and the chart draws the buckets GET /api/data/series returns', async () => {
    const points = [
      [1.5, minuteAgo(5)],
      [2.5, minuteAgo(5) + 1_000],
      [10, minuteAgo(3)],
      [-4, minuteAgo(1)],
      [7, minuteAgo(1) + 2_000],
    ].map(([value, timestamp]) => ({ key: TEMP_KEY, value, timestamp }));
    await ingest(points);

    await eventually(async () => {
      expect(await cardStats(TEMP_KEY)).toEqual({ count: '5', avg: '3.4', min: '-4', max: '10', lastValue: '7' });
    });
    const buckets = await apiSeries(TEMP_KEY, '1m', now - 60 * MINUTE);
    expect(buckets.map((bucket) => bucket.count)).toEqual([2, 1, 2]);
    await eventually(async () => {
      expect(await drawnBuckets(TEMP_KEY)).toEqual(
        buckets.map((bucket) => ({ start: bucket.start, avg: bucket.avg, min: bucket.min, max: bucket.max, perMinute: bucket.count })),
      );
    });
    expect(await card(TEMP_KEY).locator('.chart canvas').count()).toBe(1);
    expect(await statText(HUMIDITY_KEY, 'count')).toBe('—');
    await shot('chart');
  });

  it('when a POST lands in the current minute, then the chart moves within 2 s', async () => {
    const currentMinute = new Date(Math.floor(Date.now() / MINUTE) * MINUTE).toISOString();
    const before = (await drawnBuckets(TEMP_KEY)).find((bucket) => bucket.start === currentMinute)?.perMinute ?? 0;
    await ingest([
      { key: TEMP_KEY, value: 20 },
      { key: TEMP_KEY, value: 30 },
    ]);
    const posted = Date.now();
    await eventually(async () => {
      const bucket = (await drawnBuckets(TEMP_KEY)).find((candidate) => candidate.start === currentMinute);
      expect(bucket?.perMinute).toBe(before + 2);
    }, 2_000);
    expect(Date.now() - posted).toBeLessThan(2_500);
  });

  it('when the user searches a prefix, then the key browser lists the matching keys with their counts, and picking one adds its card last', async () => {
    await ingest([{ key: 'sensor-3/pressure', value: 1 }]);
    await eventually(async () => {
      await page.fill('#key-search', 'sensor-3');
      await page.locator('#key-results li[data-key="sensor-3/pressure"]').waitFor({ timeout: 1_000 });
    });
    expect(await page.locator('#key-results li').count()).toBe(1);
    expect(await page.locator('#key-results li .key-count').textContent()).toBe('1 pts');
    await page.locator('#key-results li button').click();

    await card('sensor-3/pressure').waitFor();
    await eventually(async () => {
      expect(await statText('sensor-3/pressure', 'count')).toBe('1');
    });
    expect(await cardOrder()).toEqual([TEMP_KEY, HUMIDITY_KEY, 'sensor-3/pressure']);
  });

  it('when the page is reloaded, then the same keys come back in the same order with their data', async () => {
    await page.reload();
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: 10_000 });
    expect(await cardOrder()).toEqual([TEMP_KEY, HUMIDITY_KEY, 'sensor-3/pressure']);
    await eventually(async () => {
      expect(await statText(TEMP_KEY, 'count')).toBe('7');
      expect((await drawnBuckets(TEMP_KEY)).length).toBeGreaterThanOrEqual(3);
    });
  });

  it('when the user picks 7 d, then the charts draw hourly buckets and the range is kept in the URL', async () => {
    await page.click('#range button[data-range="7d"]');
    const hours = await apiSeries(TEMP_KEY, '1h', now - 7 * 24 * 60 * MINUTE);
    await eventually(async () => {
      expect(await drawnBuckets(TEMP_KEY)).toEqual(
        hours.map((bucket) => ({ start: bucket.start, avg: bucket.avg, min: bucket.min, max: bucket.max, perMinute: bucket.count / 60 })),
      );
    });
    expect(new URL(page.url()).searchParams.get('range')).toBe('7d');
    await shot('7d');
    await page.click('#range button[data-range="1h"]');
  });

  it('when a batch of another client completes, then the feed shows it only with "show every client\'s batches"', async () => {
    const { batchId } = await ingest([{ key: TEMP_KEY, value: 3 }]);
    await eventually(async () => {
      expect(await statText(TEMP_KEY, 'count')).toBe('8');
    });
    expect(await page.locator(`#batches li[data-batch-id="${batchId}"]`).count()).toBe(0);
    await page.check('#all-batches');
    await page.locator(`#batches li[data-batch-id="${batchId}"]`).waitFor();
    expect(await page.locator(`#batches li[data-batch-id="${batchId}"] .badge`).first().textContent()).toBe('completed');
    await page.uncheck('#all-batches');
  });

  it('when the user removes a card, then it goes away, its later updates are not shown, and a reload does not bring it back', async () => {
    await card(HUMIDITY_KEY).locator('button[data-action="unsubscribe"]').click();
    await card(HUMIDITY_KEY).waitFor({ state: 'detached' });
    await ingest([{ key: HUMIDITY_KEY, value: 55 }]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await card(HUMIDITY_KEY).count()).toBe(0);
    expect(await cardOrder()).toEqual([TEMP_KEY, 'sensor-3/pressure']);
  });

  it('when a key holds HTML, then the key browser and its card show it as text and create no element from it', async () => {
    await ingest([{ key: HTML_KEY, value: 42 }]);
    await eventually(async () => {
      await page.fill('#key-search', 'room');
      await page.locator(`#key-results li[data-key="${quoted(HTML_KEY)}"]`).waitFor({ timeout: 1_000 });
    });
    expect(await page.locator('#key-results li .key-name').textContent()).toBe(HTML_KEY);
    await page.locator('#key-results li button').click();
    await eventually(async () => {
      expect(await statText(HTML_KEY, 'count')).toBe('1');
    });
    expect(await card(HTML_KEY).locator('h3').textContent()).toBe(HTML_KEY);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.content()).toContain('room &lt;img src=x onerror=alert(1)&gt;');
  });

  it('when the server rejects a subscription, then the error area shows its message and no card is added', async () => {
    const before = await cardOrder();
    await subscribeFromPage('k'.repeat(201));

    const error = page.locator('#error');
    await error.waitFor({ state: 'visible' });
    expect(await error.textContent()).toContain('key must be at most 200 characters');
    expect(await cardOrder()).toEqual(before);
  });

  it('when the user sends a test batch from the form, then the feed shows it as sent here and the card moves', async () => {
    await page.fill('#batch-key', TEMP_KEY);
    expect(await page.inputValue('#batch-points')).toBe('10');

    await page.click('#send');

    const result = page.locator('#send-result[data-state="ok"]');
    await result.waitFor();
    expect(await result.textContent()).toContain('202 Accepted: 10 accepted');
    const batchId = (await result.locator('[data-field="batchId"]').textContent()) ?? '';
    expect(batchId).not.toBe('');
    await eventually(async () => {
      expect(await statText(TEMP_KEY, 'count')).toBe('18');
    });
    const item = page.locator(`#batches li[data-batch-id="${batchId}"]`);
    await item.waitFor({ timeout: UPDATE_TIMEOUT_MS });
    expect(await item.getAttribute('data-status')).toBe('completed');
    expect(await item.textContent()).toContain('sent here');
    await shot('desktop');
  });

  it('when the window is 420 px wide, then nothing overflows sideways and the charts fit', async () => {
    await page.setViewportSize({ width: 420, height: 900 });
    await page.waitForTimeout(300);
    const overflow = await page.locator('html').evaluate((root) => root.scrollWidth - root.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    const canvasWidth = await card(TEMP_KEY)
      .locator('.chart canvas')
      .evaluate((canvas) => canvas.getBoundingClientRect().width);
    expect(canvasWidth).toBeLessThanOrEqual(420);
    await shot('narrow');
  });

  it('then the page ran without a script error, a blocked resource or a dialog', () => {
    expect(pageProblems).toEqual([]);
  });
});
