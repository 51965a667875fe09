import Redis from 'ioredis';
import type { Connection } from 'mongoose';
import { loadConfig, type Config } from '../../../src/config/config';
import { connectMongo } from '../../../src/composition';
import { createLogger } from '../../../src/logger';
import { createModels, type Models } from '../../../src/models';
import { BatchStore } from '../../../src/queue/batch-store';
import { eventsChannel } from '../../../src/queue/events';
import { KeyLocks } from '../../../src/queue/key-locks';
import { AggregateRepository } from '../../../src/repositories/aggregate-repository';
import { HistoryRepository } from '../../../src/repositories/history-repository';
import { ProcessedRecordRepository } from '../../../src/repositories/processed-record-repository';
import { JobProcessor, type JobProcessorDeps } from '../../../src/services/job-processor';
import { GUARD_RETENTION, LanePool } from '../../../src/services/lane-pool';
import type { Scenario } from './lab';

/**
 * Job processors in the test process, wired as the worker wires them, on a scenario's database and Redis: for the
 * cases a real process cannot show in minutes (a re-run a day later, with a clock of the test's choosing).
 */
export class ProcessorFactory {
  private constructor(
    private readonly config: Config,
    private readonly connection: Connection,
    private readonly models: Models,
    private readonly redis: Redis,
  ) {}

  static async open(scenario: Scenario): Promise<ProcessorFactory> {
    const config = loadConfig(scenario.env());
    const connection = await connectMongo(config.MONGODB_URI, createLogger('silent', 'test'), false);
    const factory = new ProcessorFactory(config, connection, createModels(connection), new Redis(config.REDIS_URL));
    // As every worker does at start-up (idempotent): the shard documents exist before any guarded update.
    await factory.aggregates().prepare(new Date());
    return factory;
  }

  /** A processor (its own lanes, like a worker process of its own) whose clock reads `clock()`. */
  build(clock: () => number, override?: (deps: JobProcessorDeps) => Partial<JobProcessorDeps>): JobProcessor {
    const { config, models } = this;
    const deps: JobProcessorDeps = {
      aggregates: this.aggregates(),
      history: new HistoryRepository(models.dataPoint),
      processed: new ProcessedRecordRepository(models.processedRecord),
      batches: new BatchStore(this.redis, config.QUEUE_NAME),
      lanes: new LanePool(),
      locks: new KeyLocks(this.redis, config.QUEUE_NAME),
      publisher: this.redis,
      channel: eventsChannel(config.QUEUE_NAME),
      logger: createLogger('silent', 'test'),
      clock,
    };
    return new JobProcessor({ ...deps, ...override?.(deps) });
  }

  /** The aggregate repository a worker of the scenario uses (same shards, same write batches). */
  aggregates(): AggregateRepository {
    const { config, models } = this;
    return new AggregateRepository(models.aggregate, GUARD_RETENTION, config.AGGREGATE_WRITE_BATCH, config.AGGREGATE_SHARDS);
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
export function dyingHalfWay(real: AggregateRepository, dyingAfter: ReadonlySet<string>): AggregateRepository {
  const dying = Object.create(real) as AggregateRepository;
  dying.applyGroup = async (jobs, now) => {
    for (const { deltas, guard } of jobs) {
      const written = deltas.filter((delta) => real.shardsOf([delta.key]).every((shard) => dyingAfter.has(shard)));
      await real.applyDeltas(written, guard, now);
    }
    throw new Error('worker killed half-way through the aggregate writes');
  };
  return dying;
}
