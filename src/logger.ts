import pino, { type Logger } from 'pino';

/** One JSON line per event. Payloads and credentials are never logged at info level. */
export function createLogger(level: string, name: string): Logger {
  return pino({
    name,
    level,
    redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie'], remove: true },
  });
}
