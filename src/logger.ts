import pino, { type Logger, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';

/**
 * Human-readable lines on a terminal (`npm run dev`, `npm start` in one), one JSON line per event otherwise (pipes,
 * containers, log collectors). LOG_PRETTY=1 or 0 decides instead (`npm start` passes its own terminal's answer).
 */
export function wantsPrettyLogs(env: NodeJS.ProcessEnv = process.env, isTty = process.stdout.isTTY): boolean {
  if (env.LOG_PRETTY === '1') return true;
  if (env.LOG_PRETTY === '0') return false;
  return isTty && env.NODE_ENV !== 'production';
}

/** Payloads and credentials are never logged at info level. */
export function createLogger(level: string, name: string, prettyLines = wantsPrettyLogs()): Logger {
  const options: LoggerOptions = {
    name,
    level,
    redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie'], remove: true },
  };
  if (!prettyLines) return pino(options);
  // Synchronous: a process that exits right after a line (a start-up error) still shows it.
  return pino(options, pretty({ colorize: true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
}
