import { Schema, type Connection, type Model } from 'mongoose';

/**
 * The original design's documents: one stats document per key, with an
 * average stored beside count and sum, and one history document per point.
 */
export interface NaiveStats {
  key: string;
  count: number;
  sum: number;
  avg: number;
  min: number;
  max: number;
  lastValue: number;
  lastTimestamp: Date;
}

export interface NaivePoint {
  key: string;
  value: number;
  timestamp: Date;
  processedAt: Date;
}

export interface NaiveModels {
  stats: Model<NaiveStats>;
  points: Model<NaivePoint>;
}

const statsSchema = new Schema<NaiveStats>(
  {
    key: { type: String, required: true, unique: true },
    count: { type: Number, default: 0 },
    sum: { type: Number, default: 0 },
    avg: { type: Number, default: 0 },
    min: Number,
    max: Number,
    lastValue: Number,
    lastTimestamp: Date,
  },
  { collection: 'stats', versionKey: false },
);

const pointSchema = new Schema<NaivePoint>(
  {
    key: { type: String, required: true, index: true },
    value: { type: Number, required: true },
    timestamp: { type: Date, required: true },
    processedAt: { type: Date, required: true },
  },
  { collection: 'datapoints', versionKey: false },
);

export function createNaiveModels(connection: Connection): NaiveModels {
  return {
    stats: connection.model<NaiveStats>('NaiveStats', statsSchema),
    points: connection.model<NaivePoint>('NaivePoint', pointSchema),
  };
}

/** A job of the naive design: exactly one point. */
export interface NaiveJob {
  key: string;
  value: number;
  timestamp: number;
}

export const naiveChannel = (queueName: string): string => `${queueName}:stats`;

/** The naive processes read only these variables; the bench sets all of them. */
export function readNaiveEnv(env: NodeJS.ProcessEnv): { port: number; mongoUri: string; redisUrl: string; queueName: string } {
  const { PORT, MONGODB_URI, REDIS_URL, QUEUE_NAME } = env;
  if (!PORT || !MONGODB_URI || !REDIS_URL || !QUEUE_NAME) throw new Error('PORT, MONGODB_URI, REDIS_URL and QUEUE_NAME are required');
  return { port: Number(PORT), mongoUri: MONGODB_URI, redisUrl: REDIS_URL, queueName: QUEUE_NAME };
}
