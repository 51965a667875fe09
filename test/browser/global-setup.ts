import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import stackSetup from '../global-setup';
import { chromiumPath } from './chromium';

/**
 * The stack, plus Debian's Chromium for the live-page test. On a machine
 * where we are root with apt-get (CI, a fresh dev VM) a missing Chromium is
 * installed, so `npm ci && npm test` passes there; elsewhere the test fails
 * with the command to run.
 */
export default async function globalSetup(): Promise<void> {
  await stackSetup();
  const executable = chromiumPath();
  if (existsSync(executable) || process.env.CHROMIUM_PATH) return;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) return;
  process.stderr.write('[browser] installing Debian chromium for the live-page test (once, a few minutes)\n');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'inherit', env });
}
