/**
 * Counters a benchmark can read from `GET /admin/devhost/stats`: storage requests (every HTTP
 * request the table client sends, retries included) by kind, and the entity scheduler's
 * operation/batch counts and the orchestration scheduler's, so "storage requests per processed
 * operation" is directly observable.
 */
export type StorageRequestKind = 'query' | 'insert' | 'upsert' | 'delete' | 'transaction' | 'createTable' | 'other';

export class HostStats {
  readonly startedAt = new Date();
  storageRequests = 0;
  readonly storageRequestsByKind: Record<StorageRequestKind, number> = {
    query: 0,
    insert: 0,
    upsert: 0,
    delete: 0,
    transaction: 0,
    createTable: 0,
    other: 0,
  };
  operationsAccepted = 0;
  operationsProcessed = 0;
  /** Operations consumed without applying them (failed alone, timed out, or unpersistable). */
  operationsFailed = 0;
  batches = 0;
  batchRetriesOneByOne = 0;
  signalsDelivered = 0;
  entityLoads = 0;
  entityReads = 0;
  orchestrationsStarted = 0;
  orchestrationsFinished = 0;
  orchestrationEpisodes = 0;
  activitiesStarted = 0;
  httpRequests = 0;

  countStorageRequest(kind: StorageRequestKind): void {
    this.storageRequests++;
    this.storageRequestsByKind[kind]++;
  }

  toJSON(): object {
    return {
      startedAt: this.startedAt.toISOString(),
      storage: { requests: this.storageRequests, byKind: { ...this.storageRequestsByKind } },
      entities: {
        operationsAccepted: this.operationsAccepted,
        operationsProcessed: this.operationsProcessed,
        operationsFailed: this.operationsFailed,
        batches: this.batches,
        batchRetriesOneByOne: this.batchRetriesOneByOne,
        signalsDelivered: this.signalsDelivered,
        loads: this.entityLoads,
        reads: this.entityReads,
      },
      orchestrations: {
        started: this.orchestrationsStarted,
        finished: this.orchestrationsFinished,
        episodes: this.orchestrationEpisodes,
        activitiesStarted: this.activitiesStarted,
      },
      http: { requests: this.httpRequests },
    };
  }
}

/** Classifies a Table service request from its method and URL. */
export function classifyStorageRequest(method: string, url: string): StorageRequestKind {
  const path = new URL(url).pathname;
  const upper = method.toUpperCase();
  if (upper === 'POST' && path.endsWith('/$batch')) return 'transaction';
  if (upper === 'POST' && /\/Tables$/i.test(path)) return 'createTable';
  if (upper === 'POST') return 'insert';
  if (upper === 'GET') return 'query';
  if (upper === 'DELETE') return 'delete';
  if (upper === 'PUT' || upper === 'PATCH' || upper === 'MERGE') return 'upsert';
  return 'other';
}
