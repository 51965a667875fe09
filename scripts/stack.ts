// Makes Redis and a MongoDB-compatible server available for local development and tests.
// Usage: npx tsx scripts/stack.ts start|stop|status   (reads REDIS_URL and MONGODB_URI, loads .env)
import fs from 'node:fs';
import path from 'node:path';
import { config as loadDotenv } from 'dotenv';
import { DEFAULT_MONGODB_URI, DEFAULT_REDIS_URL, errorMessage } from './stack/endpoints';
import { ensureStack, printStatus, stopStack } from './stack/services';

type Log = (msg: string) => void;
const ROOT = path.resolve(__dirname, '..');

async function main(argv: string[]): Promise<number> {
  const envFile = path.join(ROOT, '.env');
  if (fs.existsSync(envFile)) loadDotenv({ path: envFile, quiet: true });
  const redisUrl = process.env.REDIS_URL || DEFAULT_REDIS_URL;
  const mongoUri = process.env.MONGODB_URI || DEFAULT_MONGODB_URI;
  const log: Log = (msg) => console.log(msg);

  switch (argv[0]) {
    case 'start': {
      const info = await ensureStack({ redisUrl, mongoUri, log });
      console.log(`stack ready (${info.started.length ? `started: ${info.started.join(', ')}` : 'all reused'})`);
      return 0;
    }
    case 'stop': {
      const stopped = await stopStack({ log });
      console.log(stopped.length ? `stopped: ${stopped.join(', ')}` : 'nothing to stop');
      return 0;
    }
    case 'status':
      return (await printStatus(redisUrl, mongoUri)) ? 0 : 1;
    default:
      console.error('usage: tsx scripts/stack.ts start|stop|status');
      return 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`stack: ${errorMessage(err)}`);
      process.exit(1);
    },
  );
}
