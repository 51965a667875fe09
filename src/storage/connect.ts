import mongoose, { type Connection } from 'mongoose';
import type { Logger } from 'pino';

// Server selection gives up after 5 s, so a request or job fails (and is retried) instead of hanging while MongoDB is down.
const SERVER_SELECTION_TIMEOUT_MS = 5000;
const CONNECT_RETRY_MS = 2000;
// A command with no answer for 60 s fails (the job is retried, the request gets 503) instead of hanging forever;
// far above any healthy command.
const SOCKET_TIMEOUT_MS = 60_000;

/**
 * Connects to MongoDB. The worker waits as long as it takes (`patient`); the
 * API gives up after its first attempts, so a misconfigured URI is reported.
 */
export async function connectMongo(uri: string, logger: Logger, patient: boolean): Promise<Connection> {
  for (let attempt = 1; ; attempt += 1) {
    const connection = mongoose.createConnection(uri, {
      bufferCommands: false,
      autoIndex: false,
      autoCreate: false,
      serverSelectionTimeoutMS: SERVER_SELECTION_TIMEOUT_MS,
      socketTimeoutMS: SOCKET_TIMEOUT_MS,
    });
    try {
      await connection.asPromise();
      return connection;
    } catch (error) {
      await connection.close().catch(() => undefined);
      if (!patient && attempt >= 3) throw error;
      logger.warn({ attempt, err: (error as Error).message }, 'MongoDB is not reachable yet; retrying');
      await new Promise((resolve) => setTimeout(resolve, CONNECT_RETRY_MS));
    }
  }
}
