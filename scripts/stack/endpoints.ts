import { Redis, ReplyError } from 'ioredis';
import { MongoClient, MongoServerError } from 'mongodb';

export { DEFAULT_MONGODB_URI, DEFAULT_REDIS_URL } from '../../src/config/config';

export type Probe =
  | { state: 'up' }
  | { state: 'down'; detail: string }
  // Something answers but is not ready yet (e.g. Redis loading its AOF).
  | { state: 'starting'; detail: string }
  // Something answers but the command failed (e.g. bad credentials): starting another server would not help.
  | { state: 'error'; detail: string };

export interface Endpoint {
  host: string;
  port: number;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function redact(url: string): string {
  return url.replace(/\/\/([^/@:]*):([^/@]*)@/, '//$1:***@');
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

// 'localhost' may resolve to ::1 first; servers listen on IPv4 loopback, which clients fall back to.
export function listenHost(host: string): string {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' ? '127.0.0.1' : h;
}

export function hostPort(ep: Endpoint): string {
  const h = listenHost(ep.host);
  return h.includes(':') ? `[${h}]:${ep.port}` : `${h}:${ep.port}`;
}

export function parseRedisUrl(url: string): Endpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`REDIS_URL is not a valid URL: ${redact(url)}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new Error(`REDIS_URL must start with redis:// or rediss:// (got ${redact(url)})`);
  }
  return { host: u.hostname || '127.0.0.1', port: u.port ? Number(u.port) : 6379 };
}

export function parseMongoUri(uri: string): { endpoint: Endpoint; notStartable?: string } {
  const m = /^mongodb(\+srv)?:\/\/(?:[^@/]*@)?([^/?]+)/.exec(uri);
  const hosts = m?.[2];
  if (!m || !hosts) throw new Error(`MONGODB_URI is not a valid MongoDB URI: ${redact(uri)}`);
  const first = hosts.split(',')[0] ?? '';
  const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(first);
  if (!hp?.[1]) throw new Error(`cannot parse host in MONGODB_URI: ${redact(uri)}`);
  const endpoint = { host: hp[1], port: hp[2] ? Number(hp[2]) : 27017 };
  if (m[1]) return { endpoint, notStartable: 'a mongodb+srv:// URI names a DNS seed list, not a local server' };
  if (hosts.includes(',')) return { endpoint, notStartable: 'the URI lists several hosts (a replica set)' };
  return { endpoint };
}

export async function probeRedis(url: string, timeoutMs = 1000): Promise<Probe> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // Without a listener ioredis logs "Unhandled error event"; the event also has the useful cause (ECONNREFUSED).
  let lastError: string | undefined;
  client.on('error', (err: Error) => {
    lastError = err.message;
  });
  try {
    await client.connect();
    await client.ping();
    return { state: 'up' };
  } catch (err) {
    const detail = errorMessage(err);
    if (err instanceof ReplyError) {
      return detail.startsWith('LOADING') ? { state: 'starting', detail } : { state: 'error', detail };
    }
    return { state: 'down', detail: lastError ?? detail };
  } finally {
    client.disconnect();
  }
}

export async function probeMongo(uri: string, timeoutMs = 1500): Promise<Probe> {
  let client: MongoClient;
  try {
    client = new MongoClient(uri, { serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs });
  } catch (err) {
    throw new Error(`invalid MONGODB_URI ${redact(uri)}: ${errorMessage(err)}`);
  }
  try {
    await client.connect();
    await client.db('admin').command({ ping: 1 });
    return { state: 'up' };
  } catch (err) {
    // Only a reply from a server (e.g. auth failure) means something answers; the rest is network or DNS.
    const detail = errorMessage(err);
    return err instanceof MongoServerError ? { state: 'error', detail } : { state: 'down', detail };
  } finally {
    await client.close().catch(() => undefined);
  }
}
