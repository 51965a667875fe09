import type { ProcessedRecordDocument, ProcessedRecordModel } from '../models/processed-record-model';
import type { Collection } from 'mongodb';
import { nativeCollection } from '../models';
import { isDuplicateKeyError } from './mongo-errors';

export class ProcessedRecordRepository {
  private readonly collection: Collection<ProcessedRecordDocument>;

  constructor(model: ProcessedRecordModel) {
    this.collection = nativeCollection(model);
  }

  async exists(jobId: string): Promise<boolean> {
    const doc = await this.collection.findOne({ _id: jobId }, { projection: { _id: 1 } });
    return doc !== null;
  }

  /** Records a finished job; a second record of the same job is a no-op. */
  async record(doc: ProcessedRecordDocument): Promise<void> {
    try {
      await this.collection.insertOne(doc);
    } catch (error) {
      if (!isDuplicateKeyError(error)) throw error;
    }
  }
}
