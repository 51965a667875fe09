import { databaseName, loadConfig } from '../../src/config/config';

function startupError(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`expected loadConfig to reject ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('when nothing is set, then the documented defaults apply', () => {
    expect(loadConfig({})).toMatchObject({
      PORT: 3000,
      MONGODB_URI: 'mongodb://127.0.0.1:27017/realtime',
      REDIS_URL: 'redis://127.0.0.1:6379',
      QUEUE_NAME: 'ingest',
      LOG_LEVEL: 'info',
      CORS_ORIGINS: [],
    });
  });

  it('when every value is an empty string (as copied from .env.example), then the defaults apply', () => {
    const emptyEnv = Object.fromEntries(Object.keys(loadConfig({})).map((name) => [name, '']));
    expect(loadConfig(emptyEnv)).toEqual(loadConfig({}));
  });

  it('when valid values are set, then they are read with the right types', () => {
    const config = loadConfig({
      PORT: '8080',
      MONGODB_URI: 'mongodb+srv://user:pw@cluster.example.net/prod?retryWrites=true',
      REDIS_URL: 'rediss://cache.example.net:6380',
      QUEUE_NAME: 'ingest_prod-2',
      LOG_LEVEL: 'warn',
      MAX_POINTS_PER_REQUEST: '500',
      CORS_ORIGINS: 'https://a.example, https://b.example ,,',
    });
    expect(config).toMatchObject({
      PORT: 8080,
      MONGODB_URI: 'mongodb+srv://user:pw@cluster.example.net/prod?retryWrites=true',
      REDIS_URL: 'rediss://cache.example.net:6380',
      QUEUE_NAME: 'ingest_prod-2',
      LOG_LEVEL: 'warn',
      MAX_POINTS_PER_REQUEST: 500,
      CORS_ORIGINS: ['https://a.example', 'https://b.example'],
    });
  });

  it('when the environment holds unrelated variables, then they are ignored', () => {
    expect(loadConfig({ PATH: '/usr/bin', HOME: '/root', npm_config_foo: 'bar' })).toEqual(loadConfig({}));
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '3000.5'],
    ['MONGODB_URI', 'http://x'],
    ['MONGODB_URI', '127.0.0.1:27017/realtime'],
    ['REDIS_URL', 'http://x'],
    ['REDIS_URL', 'localhost:6379'],
    ['QUEUE_NAME', 'a b'],
    ['QUEUE_NAME', 'ingest:prod'],
    ['QUEUE_NAME', 'q'.repeat(65)],
    ['LOG_LEVEL', 'loud'],
    ['LOG_LEVEL', 'INFO'],
    ['MAX_BODY_BYTES', '0'],
    ['MAX_POINTS_PER_REQUEST', 'many'],
    ['JOB_CHUNK_SIZE', '10001'],
    ['WORKER_CONCURRENCY', '65'],
    ['JOB_ATTEMPTS', '1.5'],
    ['HISTORY_RETENTION', '0d'],
    ['HISTORY_RETENTION', '90 days'],
    ['HISTORY_RETENTION', '2w'],
    ['STORAGE_PROFILE', 'postgres'],
    ['AGGREGATE_SHARDS', '0'],
  ])('when %s=%p, then start-up fails with a message naming the variable', (name, value) => {
    const message = startupError({ [name]: value });
    expect(message).toMatch(/^Invalid configuration: /);
    expect(message).toContain(`${name}:`);
  });

  it('when several variables are wrong, then the message names every one of them', () => {
    const message = startupError({ PORT: 'abc', MONGODB_URI: 'http://x', QUEUE_NAME: 'a b' });
    expect(message).toContain('PORT:');
    expect(message).toContain('MONGODB_URI: must start with mongodb:// or mongodb+srv://');
    expect(message).toContain('QUEUE_NAME: use 1-64 letters, digits, "_" or "-"');
  });

  it('when PORT is only spaces, then start-up fails naming PORT instead of listening on a random port', () => {
    expect(startupError({ PORT: '   ' })).toContain('PORT:');
  });

  it('when a variable is wrong, then the message does not echo other variables that may hold secrets', () => {
    const message = startupError({ PORT: 'abc', MONGODB_URI: 'mongodb://admin:s3cret@db.example/realtime' });
    expect(message).not.toContain('s3cret');
  });
});

describe('HISTORY_RETENTION', () => {
  it.each([
    [undefined, null],
    ['keep', null],
    ['30m', 30 * 60_000],
    ['12h', 12 * 3_600_000],
    ['90d', 90 * 86_400_000],
  ])('when it is %p, then history is kept for %p ms (null: for good)', (value, ms) => {
    expect(loadConfig(value === undefined ? {} : { HISTORY_RETENTION: value }).HISTORY_RETENTION).toBe(ms);
  });
});

describe('databaseName', () => {
  it.each([
    ['mongodb://127.0.0.1:27017/realtime', 'realtime'],
    ['mongodb://user:pw@host:27017/metrics?authSource=admin', 'metrics'],
    ['mongodb+srv://cluster.example.net/prod', 'prod'],
    ['mongodb://127.0.0.1:27017', 'realtime'],
    ['mongodb://127.0.0.1:27017/', 'realtime'],
  ])('when MONGODB_URI is %s, then the database is %p', (uri, name) => {
    expect(databaseName(uri)).toBe(name);
  });
});
