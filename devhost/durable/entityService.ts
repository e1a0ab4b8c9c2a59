/**
 * The entity scheduler: accepts operations (durably, before answering), runs each entity's
 * operations in arrival order, one batch at a time per entity and different entities in parallel,
 * commits each batch atomically, and delivers the signals entities send each other.
 *
 * Memory is a cache of what is committed: this host is the only writer of its table, so after an
 * entity's partition is loaded once, reads are answered from memory and the storage traffic per
 * operation is one insert (accept) plus a share of one transaction (its batch).
 *
 * Ordering: every operation gets the entity's next sequence number when it is accepted; it is
 * stored under a row key built from it, so arrival order survives restarts. A batch takes only a
 * prefix of durably stored operations and stops at one whose insert is still in flight.
 *
 * Exactly once: a batch commit deletes its operation rows in the same transaction that writes the
 * state, so after a crash an operation either ran and is gone, or did not count and runs again.
 * Entity-to-entity signals (and the results of orchestrations' calls) are written to an outbox in
 * that transaction and delivered after it; the receiver records the newest (outbox seq, index) it
 * processed per sender in its own commit, and a re-delivery after a crash is recognised against that
 * mark or its pending operations. Orchestrations send with their own sequence (the task's event id);
 * their marks are only kept while they have messages left to deliver, so they do not pile up.
 */
import type { EntityFunction } from '../catalog';
import { describeError, type Logger } from '../log';
import type { HostStats } from '../stats';
import { backoffMs, delay, isTransientStorageError, retryStorage } from './storageRetry';
import { fromPartitionKey, makeEntityId, schedulerId, toPartitionKey, type EntityId } from './entityId';
import { responseMessageJson, type BatchOutcome, type EntityBatchRunner, type EntityStateValue } from './entityRunner';
import {
  emptyHeader,
  UnpersistableBatchError,
  type BatchCommit,
  type EntityCaller,
  type EntityResponse,
  type EntityHeader,
  type EntityTableStore,
  type ListedEntity,
  type OutboxEntry,
  type SignalOrigin,
  type SourceMarks,
  type StoredOperation,
} from './tableStore';

interface QueuedOperation {
  operation: StoredOperation;
  durable: boolean;
}

class EntityRecord {
  readonly partitionKey: string;
  readonly schedulerId: string;
  header: EntityHeader | undefined;
  nextSeq = 1;
  readonly queue: QueuedOperation[] = [];
  outbox: OutboxEntry[] = [];
  loading: Promise<void> | undefined;
  running: Promise<void> | undefined;
  /** Set when storage refused a batch outright; the entity waits for a restart instead of spinning. */
  stalled = false;
  /** Set while its state is purged: no batch, and no second purge, starts meanwhile. */
  purging: Promise<void> | undefined;
  delivering = false;

  constructor(readonly id: EntityId) {
    this.partitionKey = toPartitionKey(id);
    this.schedulerId = schedulerId(id);
  }
}

export class UnknownEntityError extends Error {}

/** What the entity scheduler needs from the orchestrations it serves. */
export interface OrchestrationPeer {
  /** Delivers a call's result to the calling orchestration (idempotent). */
  deliverResponse(response: EntityResponse): Promise<void>;
  /** Whether the sending orchestration may still (re)deliver messages; its dedupe mark is needed until then. */
  mayRedeliver(source: string): boolean;
}

/** An operation sent by an orchestration: a signal, or a call whose result goes back to `caller`. */
export interface OrchestrationMessage {
  kind: 'signal' | 'call';
  name: string;
  input: string | undefined;
  origin: SignalOrigin;
  caller: EntityCaller | undefined;
}

/** Entity senders are scheduler ids (`@name@key`); anything else is an orchestration. */
const isEntitySource = (source: string): boolean => source.startsWith('@');

export interface EntityServiceOptions {
  maxBatchSize: number;
  /** How long stop() waits for running batches to commit before giving up (they re-run after restart). */
  stopGraceMs?: number;
}

function isAtOrBefore(origin: SignalOrigin, mark: { seq: number; index: number } | undefined): boolean {
  if (mark === undefined) return false;
  return origin.seq < mark.seq || (origin.seq === mark.seq && origin.index <= mark.index);
}

export class EntityService {
  private readonly records = new Map<string, EntityRecord>();
  private stopping = false;
  private readonly maxBatchSize: number;
  private readonly stopGraceMs: number;
  private orchestrations: OrchestrationPeer | undefined;

  constructor(
    private readonly store: EntityTableStore,
    private readonly entities: Map<string, EntityFunction>,
    private readonly runner: EntityBatchRunner,
    private readonly logger: Logger,
    private readonly stats: HostStats,
    options: EntityServiceOptions,
  ) {
    this.maxBatchSize = Math.max(1, options.maxBatchSize);
    this.stopGraceMs = options.stopGraceMs ?? 5_000;
  }

  hasEntityFunction(name: string): boolean {
    return this.entities.has(name.toLowerCase());
  }

  /** Connects the orchestration scheduler (call results go to it; it tells which marks to keep). */
  connectOrchestrations(peer: OrchestrationPeer): void {
    this.orchestrations = peer;
  }

  /**
   * Accepts a signal or call from an orchestration, once per origin (re-deliveries after a crash are
   * recognised). The target's name keeps its case, as for signals between entities. Returns false
   * when no entity function of that name exists (the message is dropped, and logged).
   */
  async acceptFromOrchestration(target: EntityId, message: OrchestrationMessage): Promise<boolean> {
    if (!this.hasEntityFunction(target.name)) {
      this.logger.error(`Orchestration ${message.origin.source} sent '${message.name}' to ${target.name}@${target.key}, but no entity function '${target.name}' is registered; it is dropped.`);
      return false;
    }
    await this.accept(target, message);
    return true;
  }

  /** Accepts a client signal; resolves once the operation is durably stored (then answer 202). */
  async signal(name: string, key: string, operationName: string, input: string | undefined): Promise<void> {
    if (!this.hasEntityFunction(name)) throw new UnknownEntityError(`No entity function named '${name}' is registered.`);
    await this.accept(makeEntityId(name, key), { kind: 'signal', name: operationName, input, origin: undefined });
  }

  /** Queues deletion of the entity's state behind its pending operations. */
  async requestDelete(name: string, key: string): Promise<void> {
    if (!this.hasEntityFunction(name)) throw new UnknownEntityError(`No entity function named '${name}' is registered.`);
    await this.accept(makeEntityId(name, key), { kind: 'delete', name: 'delete', input: undefined, origin: undefined });
  }

  /** The last committed state (like the real runtime, not waiting for pending operations). */
  async read(name: string, key: string): Promise<EntityStateValue> {
    this.stats.entityReads++;
    const record = await this.loaded(makeEntityId(name, key));
    const header = record.header;
    return { exists: header?.exists ?? false, stateJson: header?.exists ? header.stateJson : null };
  }

  /** The entity as an instance (what the Functions host reports for `@name@key`); undefined if it has no stored state. */
  async instance(name: string, key: string): Promise<(EntityStateValue & { lastOperationTime: string | undefined }) | undefined> {
    if (!this.hasEntityFunction(name)) return undefined;
    const header = (await this.loaded(makeEntityId(name, key))).header;
    if (header === undefined || !header.present) return undefined;
    return { exists: header.exists, stateJson: header.exists ? header.stateJson : null, lastOperationTime: header.lastOperationTime };
  }

  /**
   * Purges the entity's instance: its stored state goes (after a batch in progress commits), as on the
   * Functions host, where purging `@name@key` works whether or not the entity exists; operations still
   * queued stay and create it anew. False when there was nothing to purge.
   */
  async purge(name: string, key: string): Promise<boolean> {
    if (!this.hasEntityFunction(name)) return false;
    const record = await this.loaded(makeEntityId(name, key));
    // Concurrent purges of one instance take turns: the later one finds nothing left (404), as on the Functions host.
    while (record.running !== undefined || record.purging !== undefined) await (record.running ?? record.purging);
    const header = record.header;
    if (header === undefined || !header.present) return false;
    const deletion = this.store.deleteState(record.partitionKey, header).then(() => {
      record.header = emptyHeader();
    });
    record.purging = deletion.catch(() => undefined);
    try {
      await deletion;
    } finally {
      record.purging = undefined;
      this.wake(record);
    }
    return true;
  }

  async list(options: {
    name: string | undefined;
    top: number;
    continuationToken: string | undefined;
    fetchState: boolean;
    from: string | undefined;
    to: string | undefined;
  }): Promise<{ entities: (ListedEntity & { stateJson: string | null | undefined })[]; continuationToken: string | undefined }> {
    const page = await this.store.listEntities(options);
    if (options.fetchState) {
      for (const entity of page.entities) {
        const cached = this.records.get(schedulerId(entity.id))?.header;
        if (cached !== undefined) entity.stateJson = cached.stateJson;
        else if (entity.stateJson === undefined) entity.stateJson = (await this.read(entity.id.name, entity.id.key)).stateJson;
      }
    }
    return page;
  }

  /** Resumes what a previous run left: pending operations and undelivered outboxes. */
  async recover(): Promise<number> {
    const partitions = await this.store.listPartitionsWithWork();
    const ids = partitions.map(fromPartitionKey).filter((id): id is EntityId => id !== undefined);
    const concurrency = 8;
    for (let i = 0; i < ids.length; i += concurrency) {
      await Promise.all(ids.slice(i, i + concurrency).map((id) => this.loaded(id)));
    }
    return ids.length;
  }

  /** Stops starting batches and deliveries; waits (bounded) for running batches to commit. */
  async stop(): Promise<void> {
    this.stopping = true;
    const running = [...this.records.values()].map((record) => record.running).filter((run): run is Promise<void> => run !== undefined);
    if (running.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(running),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.stopGraceMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Counts for the stats endpoint. */
  describe(): { cachedEntities: number; pendingOperations: number; runningBatches: number } {
    let pendingOperations = 0;
    let runningBatches = 0;
    for (const record of this.records.values()) {
      pendingOperations += record.queue.length;
      if (record.running !== undefined) runningBatches++;
    }
    return { cachedEntities: this.records.size, pendingOperations, runningBatches };
  }

  private record(id: EntityId): EntityRecord {
    const key = schedulerId(id);
    let record = this.records.get(key);
    if (record === undefined) {
      record = new EntityRecord(id);
      this.records.set(key, record);
    }
    return record;
  }

  /** The entity with its partition loaded (once; a failed load is retried by the next caller). */
  private async loaded(id: EntityId): Promise<EntityRecord> {
    const record = this.record(id);
    if (record.header !== undefined) return record;
    record.loading ??= this.load(record).finally(() => {
      record.loading = undefined;
    });
    await record.loading;
    return record;
  }

  private async load(record: EntityRecord): Promise<void> {
    const snapshot = await this.store.loadEntity(record.partitionKey);
    this.stats.entityLoads++;
    record.header = snapshot.header;
    for (const operation of snapshot.pending) record.queue.push({ operation, durable: true });
    record.queue.sort((a, b) => a.operation.seq - b.operation.seq);
    record.outbox = snapshot.outbox;
    const highest = Math.max(
      snapshot.header.lastAppliedSeq,
      ...snapshot.pending.map((operation) => operation.seq),
      ...snapshot.outbox.map((entry) => entry.seq),
    );
    // A partition with no rows at all starts numbering from the clock (microseconds): if the entity
    // existed before and was purged, its signals must still count up past what receivers marked as seen.
    const untouched = !snapshot.header.present && snapshot.pending.length === 0 && snapshot.outbox.length === 0;
    record.nextSeq = untouched ? Math.max(highest + 1, Date.now() * 1000) : highest + 1;
    if (snapshot.pending.length > 0) this.logger.info(`Entity ${record.id.name}@${record.id.key}: resuming ${snapshot.pending.length} pending operation(s).`);
    this.wake(record);
    this.deliver(record);
  }

  private async accept(id: EntityId, operation: Omit<StoredOperation, 'seq' | 'acceptedAt'>): Promise<void> {
    const record = await this.loaded(id);
    if (operation.origin !== undefined && this.alreadyAccepted(record, operation.origin)) return;
    const queued: QueuedOperation = {
      operation: { ...operation, seq: record.nextSeq++, acceptedAt: new Date().toISOString() },
      durable: false,
    };
    record.queue.push(queued);
    try {
      await this.store.insertOperation(record.partitionKey, queued.operation);
    } catch (err) {
      record.queue.splice(record.queue.indexOf(queued), 1);
      // If the insert reached storage after all, do not let the operation resurface after a restart.
      await this.store.deleteOperation(record.partitionKey, queued.operation.seq).catch(() => undefined);
      this.wake(record);
      throw err;
    }
    queued.durable = true;
    this.stats.operationsAccepted++;
    this.wake(record);
  }

  private alreadyAccepted(record: EntityRecord, origin: SignalOrigin): boolean {
    if (isAtOrBefore(origin, record.header?.sources.get(origin.source))) return true;
    return record.queue.some(
      ({ operation }) => operation.origin?.source === origin.source && operation.origin.seq === origin.seq && operation.origin.index === origin.index,
    );
  }

  private wake(record: EntityRecord): void {
    if (record.running !== undefined || record.stalled || record.purging !== undefined || this.stopping || record.header === undefined) return;
    if (!record.queue[0]?.durable) return;
    record.running = this.drain(record).finally(() => {
      record.running = undefined;
      // Operations that became durable while the last commit finished start the next round.
      this.wake(record);
    });
  }

  private nextBatch(record: EntityRecord): StoredOperation[] {
    const batch: StoredOperation[] = [];
    for (const queued of record.queue) {
      if (!queued.durable) break;
      if (queued.operation.kind === 'delete') {
        if (batch.length === 0) batch.push(queued.operation);
        break;
      }
      batch.push(queued.operation);
      if (batch.length >= this.maxBatchSize) break;
    }
    return batch;
  }

  private async drain(record: EntityRecord): Promise<void> {
    while (!this.stopping) {
      const batch = this.nextBatch(record);
      if (batch.length === 0) return;
      try {
        await this.processBatch(record, batch);
      } catch (err) {
        // Only reachable if storage refuses even the fallback commit; the operations stay stored.
        record.stalled = true;
        this.logger.error(`Entity ${record.id.name}@${record.id.key}: stopped processing (${describeError(err)}); its operations run again after a restart.`);
        return;
      }
    }
  }

  private async processBatch(record: EntityRecord, batch: StoredOperation[]): Promise<void> {
    const header = record.header;
    if (header === undefined) throw new Error('entity not loaded');
    const before: EntityStateValue = { exists: header.exists, stateJson: header.stateJson };
    const fn = this.entities.get(record.id.name.toLowerCase());
    let outcome: BatchOutcome;
    const [first] = batch;
    if (first?.kind === 'delete') {
      outcome = { exists: false, stateJson: null, signals: [], results: [], failedOperations: 0 };
    } else if (fn === undefined) {
      this.logger.error(`Entity ${record.id.name}@${record.id.key}: no entity function '${record.id.name}' is registered; dropping ${batch.length} operation(s).`);
      outcome = { ...before, signals: [], results: [], failedOperations: batch.length };
    } else {
      outcome = await this.runner.run(
        fn,
        record.id,
        before,
        batch.map((operation) => ({ seq: operation.seq, name: operation.name, input: operation.input, callRequestId: operation.caller?.requestId })),
      );
    }
    const responses: EntityResponse[] = [];
    batch.forEach((operation, i) => {
      const result = outcome.results[i];
      if (operation.kind === 'call' && operation.caller !== undefined && result !== undefined) {
        responses.push({ ...operation.caller, responseJson: responseMessageJson(result) });
      }
    });
    const commit: BatchCommit = {
      processed: batch,
      exists: outcome.exists,
      stateJson: outcome.stateJson,
      sources: this.marksAfter(header.sources, batch),
      lastOperationTime: new Date().toISOString(),
      signals: outcome.signals,
      responses,
    };
    const { dropped } = await this.commit(record, commit);
    const failed = dropped ? batch.length : outcome.failedOperations;
    this.stats.batches++;
    this.stats.operationsProcessed += batch.length - failed;
    this.stats.operationsFailed += failed;
  }

  /** The senders' marks after a batch: its origins recorded, orchestrations' marks dropped once they cannot re-deliver. */
  private marksAfter(before: SourceMarks, batch: StoredOperation[]): SourceMarks {
    const marks: SourceMarks = new Map(before);
    for (const operation of batch) {
      if (operation.origin !== undefined) marks.set(operation.origin.source, { seq: operation.origin.seq, index: operation.origin.index });
    }
    const peer = this.orchestrations;
    if (peer !== undefined) {
      for (const source of marks.keys()) if (!isEntitySource(source) && !peer.mayRedeliver(source)) marks.delete(source);
    }
    return marks;
  }

  /**
   * Commits a batch, retrying transient storage failures. After a failed request the partition is
   * re-read: if the batch's operation rows are gone, the request did commit (its response was
   * lost). A result that cannot be stored at all (too large for one transaction, or refused) is
   * replaced by a commit that only consumes the operations, keeping the state. Returns whether
   * the batch's effects were dropped that way.
   */
  private async commit(record: EntityRecord, commit: BatchCommit): Promise<{ dropped: boolean }> {
    const label = `${record.id.name}@${record.id.key}`;
    let current = commit;
    let dropped = false;
    for (let attempt = 1; ; attempt++) {
      const header = record.header;
      if (header === undefined) throw new Error('entity not loaded');
      try {
        const result = await this.store.commitBatch(record.partitionKey, record.id, header, current);
        this.applyCommit(record, current, result.header, result.outbox);
        return { dropped };
      } catch (err) {
        const verdict = err instanceof UnpersistableBatchError ? 'not committed' : await this.checkCommitted(record, current);
        if (verdict === 'committed') return { dropped };
        if (verdict === 'not committed' && !isTransientStorageError(err)) {
          if (dropped) throw err; // storage refuses even the bare consumption of the operations
          this.logger.error(`Entity ${label}: the batch result cannot be stored (${describeError(err)}); its ${current.processed.length} operation(s) are dropped and the state is kept.`);
          current = { ...current, exists: header.exists, stateJson: header.stateJson, signals: [], responses: [] };
          dropped = true;
          continue;
        }
        const pause = backoffMs(attempt);
        this.logger.warn(`Entity ${label}: storage failed while committing (${describeError(err)}); retrying in ${pause} ms.`);
        await delay(pause);
      }
    }
  }

  /** Re-reads the partition after a failed commit; adopts it when the batch turns out committed. */
  private async checkCommitted(record: EntityRecord, commit: BatchCommit): Promise<'committed' | 'not committed' | 'unknown'> {
    let snapshot;
    try {
      snapshot = await this.store.loadEntity(record.partitionKey);
    } catch {
      return 'unknown';
    }
    const stillStored = new Set(snapshot.pending.map((operation) => operation.seq));
    if (commit.processed.some((operation) => stillStored.has(operation.seq))) return 'not committed';
    const outbox = snapshot.outbox.find((entry) => !record.outbox.some((known) => known.seq === entry.seq));
    this.applyCommit(record, commit, { ...snapshot.header }, outbox);
    return 'committed';
  }

  private applyCommit(record: EntityRecord, commit: BatchCommit, header: EntityHeader, outbox: OutboxEntry | undefined): void {
    record.header = header;
    const processed = new Set(commit.processed.map((operation) => operation.seq));
    for (let i = record.queue.length - 1; i >= 0; i--) {
      const queued = record.queue[i];
      if (queued !== undefined && processed.has(queued.operation.seq)) record.queue.splice(i, 1);
    }
    if (outbox !== undefined) {
      record.outbox.push(outbox);
      this.deliver(record);
    }
  }

  /** Delivers an entity's outbox entries in order; each signal and result at most once at the receiver. */
  private deliver(record: EntityRecord): void {
    if (record.delivering || record.outbox.length === 0 || this.stopping) return;
    record.delivering = true;
    void (async () => {
      try {
        while (!this.stopping) {
          const entry = record.outbox[0];
          if (entry === undefined) break;
          for (let index = 0; index < entry.signals.length; index++) {
            const signal = entry.signals[index];
            if (signal === undefined) continue;
            if (!this.hasEntityFunction(signal.targetName)) {
              this.logger.error(`Entity ${record.id.name}@${record.id.key} signalled '${signal.targetName}@${signal.targetKey}', but no entity function '${signal.targetName}' is registered; the signal is dropped.`);
              continue;
            }
            const origin: SignalOrigin = { source: record.schedulerId, seq: entry.seq, index };
            const target = `${signal.targetName}@${signal.targetKey}`;
            try {
              await this.retrying(`delivering a signal to ${target}`, () =>
                // The Durable extension reads an entity's signal targets as sent, without lowering the
                // name as its client API does: a signal to 'Counter' reaches another instance than a
                // client's read of 'counter'. Kept so, so an app that relies on it fails here as well.
                this.accept({ name: signal.targetName, key: signal.targetKey }, {
                  kind: 'signal',
                  name: signal.name,
                  input: signal.input === '' ? undefined : signal.input,
                  origin,
                }),
              );
              this.stats.signalsDelivered++;
            } catch (err) {
              if (this.stopping) throw err;
              this.logger.error(`Entity ${record.id.name}@${record.id.key}: the signal '${signal.name}' to ${target} cannot be stored (${describeError(err)}); it is dropped.`);
            }
          }
          for (const response of entry.responses) {
            const peer = this.orchestrations;
            if (peer === undefined) break;
            try {
              await this.retrying(`returning a call's result to orchestration ${response.instanceId}`, () => peer.deliverResponse(response));
            } catch (err) {
              if (this.stopping) throw err;
              this.logger.error(`Entity ${record.id.name}@${record.id.key}: the result for orchestration ${response.instanceId} cannot be stored (${describeError(err)}); it is dropped.`);
            }
          }
          await this.retrying('removing a delivered outbox', () => this.store.deleteOutboxRows(record.partitionKey, entry.rowKeys));
          record.outbox.shift();
        }
      } catch (err) {
        this.logger.warn(`Entity ${record.id.name}@${record.id.key}: signal delivery paused (${describeError(err)}); it resumes after a restart.`);
      } finally {
        record.delivering = false;
      }
    })();
  }

  private retrying(what: string, action: () => Promise<void>): Promise<void> {
    return retryStorage(what, action, { logger: this.logger, stopping: () => this.stopping });
  }
}
