import type { Collection } from 'mongodb';
import type { ProcessedRecordStore } from '../contract';
import type { ProcessedRecordDocument, ProcessedRecordModel } from './models/processed-record-model';
import { nativeCollection } from './models';
import { insertNew } from './mongo-errors';

export class ProcessedRecordRepository implements ProcessedRecordStore {
  private readonly collection: Collection<ProcessedRecordDocument>;

  constructor(model: ProcessedRecordModel) {
    this.collection = nativeCollection(model);
  }

  async exists(jobId: string): Promise<boolean> {
    const doc = await this.collection.findOne({ _id: jobId }, { projection: { _id: 1 } });
    return doc !== null;
  }

  /** Records finished jobs in one unordered insert; records already there are no-ops. */
  async recordAll(docs: readonly ProcessedRecordDocument[]): Promise<void> {
    await insertNew(this.collection, docs);
  }
}
