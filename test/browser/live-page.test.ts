import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { MongoClient } from 'mongodb';
import type { Browser, Locator, Page } from 'playwright-core';
import { createApiComponents, createWorkerComponents, type ApiComponents, type WorkerComponents } from '../../src/composition';
import { loadConfig, type Config } from '../../src/config/config';
import { createLogger } from '../../src/logger';
import { launchChromium } from './chromium';
import { mongoServerUri } from '../support/harness';

/**
 * The live page (`/test-socket.html`) in a real Chromium against an API and
 * a worker running in this process, on a database and a queue of their own.
 */

const SCREENSHOT_PATH = '/tmp/live-page.png';
const STAT_FIELDS = ['count', 'sum', 'avg', 'min', 'max', 'lastValue'] as const;
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

function row(key: string): Locator {
  return page.locator(`#rows tr[data-key="${key.replace(/["\\]/g, '\\$&')}"]`);
}

async function cellText(key: string, field: string): Promise<string> {
  return ((await row(key).locator(`td[data-field="${field}"]`).textContent()) ?? '').trim();
}

async function rowStats(key: string): Promise<Record<string, string>> {
  const texts = await Promise.all(STAT_FIELDS.map((field) => cellText(key, field)));
  return Object.fromEntries(STAT_FIELDS.map((field, index) => [field, texts[index] ?? '']));
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
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
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
  if (pageOpened) await page.screenshot({ path: SCREENSHOT_PATH, fullPage: true, animations: 'disabled' }).catch(() => undefined);
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

describe('live page in a real browser', () => {
  it('when the user subscribes to two keys without data, then both rows show "no data yet" at once', async () => {
    await subscribeFromPage(`${TEMP_KEY} ${HUMIDITY_KEY}`);

    await row(TEMP_KEY).waitFor();
    await row(HUMIDITY_KEY).waitFor();
    expect(await cellText(TEMP_KEY, 'empty')).toBe('no data yet');
    expect(await cellText(HUMIDITY_KEY, 'empty')).toBe('no data yet');
    expect(await page.locator('#error').isVisible()).toBe(false);
    expect(await page.inputValue('#keys')).toBe('');
  });

  it('when a batch is ingested for one key, then its row shows the exact statistics and the other row does not change', async () => {
    const humidityBefore = await row(HUMIDITY_KEY).textContent();
    const t0 = Date.parse('2025-01-01T00:00:00.000Z');
    const values = [1.5, 2.5, 10, -4, 7];

    const { batchId } = await ingest(values.map((value, index) => ({ key: TEMP_KEY, value, timestamp: t0 + index * 1000 })));

    await eventually(async () => {
      expect(await rowStats(TEMP_KEY)).toEqual({ count: '5', sum: '17', avg: '3.4', min: '-4', max: '10', lastValue: '7' });
    });
    expect(await row(TEMP_KEY).getAttribute('data-updates')).toBe('1');
    expect(await row(TEMP_KEY).locator('td[data-field="lastTimestamp"]').getAttribute('data-value')).toBe('2025-01-01T00:00:04.000Z');
    expect(await cellText(TEMP_KEY, 'lastTimestamp')).toBe('Jan 1, 2025, 12:00:04 AM');
    expect(await row(TEMP_KEY).locator('td[data-field="updatedAt"]').getAttribute('data-value')).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    // The batch:done event comes with the last job's stats event, so by then any stray update would have arrived.
    await page.locator(`#batches li[data-batch-id="${batchId}"]`).waitFor({ timeout: UPDATE_TIMEOUT_MS });
    expect(await row(HUMIDITY_KEY).textContent()).toBe(humidityBefore);
    expect(await row(HUMIDITY_KEY).getAttribute('data-updates')).toBe('0');
    expect(await cellText(HUMIDITY_KEY, 'empty')).toBe('no data yet');
  });

  it('when a batch is fully persisted, then the completed feed lists it first with status completed', async () => {
    const { batchId } = await ingest([
      { key: TEMP_KEY, value: 3 },
      { key: TEMP_KEY, value: 5 },
    ]);

    const item = page.locator('#batches li').first();
    await eventually(async () => {
      expect(await item.getAttribute('data-batch-id')).toBe(batchId);
    });
    expect(await item.getAttribute('data-status')).toBe('completed');
    expect(await item.locator('.badge').first().textContent()).toBe('completed');
    expect(await item.textContent()).toContain('2 points · 1 key');
    await eventually(async () => {
      expect(await cellText(TEMP_KEY, 'count')).toBe('7');
    });
    expect(await page.locator('#batches li').count()).toBe(2);
  });

  it('when the user unsubscribes from a key, then its row goes away and its later updates are not shown', async () => {
    await row(HUMIDITY_KEY).locator('button[data-action="unsubscribe"]').click();
    await row(HUMIDITY_KEY).waitFor({ state: 'detached' });

    const { batchId } = await ingest([{ key: HUMIDITY_KEY, value: 55 }]);

    await page.locator(`#batches li[data-batch-id="${batchId}"]`).waitFor({ timeout: UPDATE_TIMEOUT_MS });
    expect(await row(HUMIDITY_KEY).count()).toBe(0);
  });

  it('when a key holds HTML, then the page shows it as text and creates no element from it', async () => {
    // A comma makes the comma the separator, so a key may hold spaces.
    await subscribeFromPage(`${HTML_KEY},`);
    await row(HTML_KEY).waitFor();

    await ingest([{ key: HTML_KEY, value: 42 }]);

    await eventually(async () => {
      expect(await cellText(HTML_KEY, 'count')).toBe('1');
    });
    expect(await cellText(HTML_KEY, 'key')).toBe(HTML_KEY);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.content()).toContain('room &lt;img src=x onerror=alert(1)&gt;');
  });

  it('when the server rejects a subscription, then the error area shows its message', async () => {
    await subscribeFromPage('k'.repeat(201));

    const error = page.locator('#error');
    await error.waitFor({ state: 'visible' });
    expect(await error.textContent()).toContain('key must be at most 200 characters');
    expect(await page.locator('#rows tr').count()).toBe(2);
  });

  it('when the user sends a test batch from the form, then the page shows the accepted batch and the row moves', async () => {
    await page.fill('#batch-key', TEMP_KEY);
    expect(await page.inputValue('#batch-points')).toBe('10');

    await page.click('#send');

    const result = page.locator('#send-result[data-state="ok"]');
    await result.waitFor();
    expect(await result.textContent()).toContain('202 Accepted: 10 accepted');
    const batchId = (await result.locator('[data-field="batchId"]').textContent()) ?? '';
    expect(batchId).not.toBe('');
    await eventually(async () => {
      expect(await cellText(TEMP_KEY, 'count')).toBe('17');
    });
    const item = page.locator(`#batches li[data-batch-id="${batchId}"]`);
    await item.waitFor({ timeout: UPDATE_TIMEOUT_MS });
    expect(await item.getAttribute('data-status')).toBe('completed');
    expect(await item.textContent()).toContain('sent here');
  });

  it('then the page ran without a script error, a blocked resource or a dialog', () => {
    expect(pageProblems).toEqual([]);
  });
});
