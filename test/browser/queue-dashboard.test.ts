import type { Browser, Page } from 'playwright-core';
import type { JobPayload } from '../../src/domain/job-payload';
import { startHarness, waitFor, type Harness } from '../support/harness';
import { launchChromium } from './chromium';

/** The queue dashboard (bull-board at /admin/queues) in a real Chromium, opened with an admin key. */

const ADMIN_KEY = 'admin-key-for-the-dashboard-test';
const SCREENSHOT_PATH = '/tmp/queue-dashboard.png';
let h: Harness;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  h = await startHarness({ ADMIN_API_KEYS: ADMIN_KEY }, { workers: 0 });
  browser = await launchChromium();
  const context = await browser.newContext({
    httpCredentials: { username: 'admin', password: ADMIN_KEY },
    viewport: { width: 1280, height: 800 },
  });
  page = await context.newPage();
});

afterAll(async () => {
  await browser.close();
  await h.close();
});

describe('the queue dashboard', () => {
  it('when a job has failed, then an admin sees it with its error in the browser and retries it from there', async () => {
    // A job whose payload is not one ingest makes: the worker fails it for good at once.
    const job = await h.api.queue.add({ batchId: 'dashboardjob', points: 'not a list' } as unknown as JobPayload);
    const worker = await h.startWorker();
    const failed = await waitFor(
      async () => ((await (await h.api.queue.getJob(job.id))?.getState()) === 'failed' ? await h.api.queue.getJob(job.id) : undefined),
      20_000,
      'the job failed',
    );
    await worker.close();
    const reason = failed?.failedReason ?? '';
    expect(reason).not.toBe('');

    await page.goto(`${h.baseUrl}/admin/queues/queue/${encodeURIComponent(h.config.QUEUE_NAME)}?status=failed`);
    await page.getByText(reason.slice(0, 40)).first().waitFor({ timeout: 20_000 });
    await page.screenshot({ path: SCREENSHOT_PATH, fullPage: true });

    await page.getByRole('button', { name: /retry/i }).first().click();
    // Some versions ask to confirm a retry.
    const confirm = page.getByRole('button', { name: /^(confirm|retry)$/i }).last();
    if (await confirm.isVisible().catch(() => false)) await confirm.click();
    await waitFor(
      async () => ((await (await h.api.queue.getJob(job.id))?.getState()) === 'waiting' ? true : undefined),
      10_000,
      'the job back in waiting',
    );
  });
});
