import type Redis from 'ioredis';
import { createRedis } from '../../../src/queue/redis';
import type { Db } from 'mongodb';
import type { Connection } from 'mongoose';
import { loadConfig, type Config } from '../../../src/config/config';
import { createJobProcessor } from '../../../src/composition';
import { connectMongo } from '../../../src/storage/connect';
import { createLogger } from '../../../src/logger';
import type { JobProcessor, JobProcessorDeps } from '../../../src/services/job-processor';
import type { AggregateStore } from '../../../src/storage/contract';
import { createRepositories, type Repositories } from '../../../src/storage';
import { applyJob, statisticsDocumentOf } from '../../support/store-writes';
import type { Scenario } from './lab';

/**
 * Job processors in the test process, wired as the worker wires them, on a scenario's database and Redis: for the
 * cases a real process cannot show in minutes (a re-run a day later, with a clock of the test's choosing).
 */
export class ProcessorFactory {
  private constructor(
    private readonly config: Config,
    private readonly connection: Connection,
    private readonly repos: Repositories,
    private readonly redis: Redis,
  ) {}

  static async open(scenario: Scenario): Promise<ProcessorFactory> {
    const config = loadConfig(scenario.env());
    const logger = createLogger('silent', 'test');
    const connection = await connectMongo(config.MONGODB_URI, logger, false);
    const redis = createRedis(config.REDIS_URL, 'worker', logger);
    // As every worker does at start-up: the same profile, and the documents that must exist before any update.
    const repos = await createRepositories({ connection, config, redis, logger });
    return new ProcessorFactory(config, connection, repos, redis);
  }

  /** A processor (its own lanes, like a worker process of its own) whose clock reads `clock()`. */
  build(clock: () => number, override?: (deps: JobProcessorDeps) => Partial<JobProcessorDeps>): JobProcessor {
    const { config, repos, redis } = this;
    return createJobProcessor({ repos, redis, config, logger: createLogger('silent', 'test') }, (deps) => ({
      clock,
      ...override?.({ ...deps, clock }),
    }));
  }

  /** The aggregate store a worker of the scenario uses (same profile, same shards). */
  aggregates(): AggregateStore {
    return this.repos.aggregates;
  }

  /** Which statistics document holds a key (see test/support/store-writes.ts). */
  documentOf(): Promise<(key: string) => string> {
    return statisticsDocumentOf(this.repos, this.connection.db as Db);
  }

  async close(): Promise<void> {
    await this.connection.close();
    await this.redis.quit();
  }
}

/**
 * An aggregate repository that writes the shards of `dyingAfter` and then "dies": a worker killed between two
 * statements of its aggregate write. (A shard is one statement: it is written entirely or not at all.)
 */
export function dyingHalfWay(real: AggregateStore, documentOf: (key: string) => string, dyingAfter: ReadonlySet<string>): AggregateStore {
  const dying = Object.create(real) as AggregateStore;
  dying.applyGroup = async (jobs, now) => {
    for (const { deltas, guard } of jobs) {
      const written = deltas.filter((delta) => dyingAfter.has(documentOf(delta.key)));
      await applyJob(real, written, guard, now);
    }
    throw new Error('worker killed half-way through the aggregate writes');
  };
  return dying;
}
