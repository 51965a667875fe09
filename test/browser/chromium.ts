import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const DEFAULT_CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Launches the system Chromium (playwright-core downloads no browser).
 * Fails with the fix in the message when it is missing: a browser test that
 * skips itself would pass on a machine where it never ran.
 */
export function chromiumPath(): string {
  return process.env.CHROMIUM_PATH ?? DEFAULT_CHROMIUM_PATH;
}

export async function launchChromium(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!existsSync(executablePath)) {
    throw new Error(
      `No Chromium at ${executablePath}. Install it with \`apt-get update && apt-get install -y chromium\` ` +
        '(or point CHROMIUM_PATH at a Chromium or Chrome executable) to run the browser tests.',
    );
  }
  return chromium.launch({
    executablePath,
    // --no-sandbox: containers and CI run as root, where Chromium's sandbox cannot start.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
