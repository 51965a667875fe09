/**
 * The original design's worker, re-created as the benchmark's baseline: per
 * job (one point) an upsert with `$inc`, the average recomputed and saved,
 * one history insert and one publish, four jobs at a time. Not part of the service.
 */
import Queue from 'bull';
import Redis from 'ioredis';
import mongoose from 'mongoose';
import { createNaiveModels, naiveChannel, readNaiveEnv, type NaiveJob } from './model';

const CONCURRENCY = 4;

async function main(): Promise<void> {
  const env = readNaiveEnv(process.env);
  const connection = await mongoose.createConnection(env.mongoUri).asPromise();
  const models = createNaiveModels(connection);
  await Promise.all([models.stats.init(), models.points.init()]);
  const publisher = new Redis(env.redisUrl);
  const queue = new Queue<NaiveJob>(env.queueName, env.redisUrl);
  void queue.process(CONCURRENCY, async (job) => {
    const { key, value, timestamp } = job.data;
    const stats = await models.stats.findOneAndUpdate(
      { key },
      {
        $inc: { count: 1, sum: value },
        $min: { min: value },
        $max: { max: value },
        $set: { lastValue: value, lastTimestamp: new Date(timestamp) },
      },
      { upsert: true, new: true },
    );
    stats.avg = stats.sum / stats.count;
    await stats.save();
    await models.points.create({ key, value, timestamp: new Date(timestamp), processedAt: new Date() });
    await publisher.publish(naiveChannel(env.queueName), JSON.stringify(stats.toObject()));
  });
  const stop = (): void => {
    void queue
      .close()
      .then(() => Promise.all([publisher.quit(), connection.close()]))
      .then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
