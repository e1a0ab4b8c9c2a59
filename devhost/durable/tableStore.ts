/**
 * Entity storage in one Azure Table (per task hub). Each entity is one partition, keyed by its
 * encoded scheduler id, so everything a batch changes commits in ONE entity-group transaction:
 *
 *   RowKey "state"              header: exists, lastAppliedSeq, lastOperationTime, sources map,
 *                               entity name/key, and the first 10 state chunks (d000..d009)
 *   RowKey "state-001".."-NNN"  further state chunks, 14 per row (large states)
 *   RowKey "sources-001".."-NNN" the sources map when it outgrows one header property (an entity
 *                               that thousands of entities signal, such as a user's chat index)
 *   RowKey "op-<seq:16>"        one accepted, not yet processed operation (name, input chunks,
 *                               origin when it came from another entity); seq = arrival order
 *   RowKey "out-<seq:16>-<part>" signals a processed batch emitted and replies to orchestrations'
 *                               calls, delivered after the commit
 *
 * A batch commit = upsert the header/state rows (only if state or metadata changed), delete the
 * processed "op-" rows and create the batch's "out-" rows, atomically. So a crash either loses
 * the whole batch (its ops are still there and run again) or none of it.
 */
import { odata, RestError, type TableClient, type TransactionAction } from '@azure/data-tables';
import {
  CHUNK_CHARS,
  CHUNKS_IN_HEADER_ROW,
  CHUNKS_PER_ROW,
  groupChunks,
  readChunkProperties,
  splitIntoChunks,
  writeChunkProperties,
} from './chunks';
import { partitionRangeForName, type EntityId } from './entityId';
import { PermanentStorageError } from './storageRetry';

export interface SignalOrigin {
  /** Scheduler id of the entity whose batch emitted the signal. */
  source: string;
  /** Outbox sequence (the last op seq of that batch) and index within it. */
  seq: number;
  index: number;
}

/** The orchestration waiting for a call's result. */
export interface EntityCaller {
  instanceId: string;
  /** The call's request id: the orchestration receives the result as an event of that name. */
  requestId: string;
}

export interface StoredOperation {
  seq: number;
  /**
   * "signal" and "call" run the entity's operation (a call's result goes back to its caller);
   * "delete" is the HTTP API's DELETE, applied by the host.
   */
  kind: 'signal' | 'call' | 'delete';
  name: string;
  /** JSON text, or undefined when the signal had no input. */
  input: string | undefined;
  origin: SignalOrigin | undefined;
  caller?: EntityCaller | undefined;
  acceptedAt: string;
}

export interface OutgoingSignal {
  targetName: string;
  targetKey: string;
  name: string;
  input: string;
}

/** The result of a call, for the calling orchestration (the extension's ResponseMessage as JSON). */
export interface EntityResponse {
  instanceId: string;
  requestId: string;
  responseJson: string;
}

export interface OutboxEntry {
  seq: number;
  rowKeys: string[];
  signals: OutgoingSignal[];
  responses: EntityResponse[];
}

/** Per source entity: the newest signal from it already processed here (exactly-once delivery). */
export type SourceMarks = Map<string, { seq: number; index: number }>;

export interface EntityHeader {
  /** Whether the "state" row exists in storage. */
  present: boolean;
  exists: boolean;
  stateJson: string | null;
  extraStateRows: number;
  lastAppliedSeq: number;
  lastOperationTime: string | undefined;
  sources: SourceMarks;
  /** Rows "sources-NNN" holding the sources map; 0 while it fits the header's `sources` property. */
  sourceRows: number;
}

export interface EntitySnapshot {
  header: EntityHeader;
  pending: StoredOperation[];
  outbox: OutboxEntry[];
}

export interface BatchCommit {
  processed: StoredOperation[];
  exists: boolean;
  stateJson: string | null;
  sources: SourceMarks;
  lastOperationTime: string;
  signals: OutgoingSignal[];
  responses: EntityResponse[];
}

export interface CommitResult {
  header: EntityHeader;
  outbox: OutboxEntry | undefined;
}

export interface ListedEntity {
  id: EntityId;
  lastOperationTime: string | undefined;
  /** The state when it fits the header row; undefined when it spans more rows (read it separately). */
  stateJson: string | null | undefined;
}

/** The batch's result cannot be stored (too large for one transaction); retrying will not help. */
export class UnpersistableBatchError extends PermanentStorageError {}
/** An operation input too large for one row. */
export class OperationTooLargeError extends Error {}

export const HEADER_ROW_KEY = 'state';
const MAX_TRANSACTION_ACTIONS = 100;
/** The service limit is 4 MiB per transaction; leave room for the multipart envelope. */
const MAX_TRANSACTION_BYTES = 4_000_000;
const MAX_OPERATION_INPUT_CHUNKS = CHUNKS_PER_ROW;

const pad = (value: number, width: number): string => String(value).padStart(width, '0');
export const stateRowKey = (index: number): string => `state-${pad(index, 3)}`;
export const sourcesRowKey = (index: number): string => `sources-${pad(index, 3)}`;
export const operationRowKey = (seq: number): string => `op-${pad(seq, 16)}`;
export const outboxRowKey = (seq: number, part: number): string => `out-${pad(seq, 16)}-${pad(part, 3)}`;

type Row = Record<string, unknown>;

function numberProperty(row: Row, name: string): number | undefined {
  const value = row[name];
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  return undefined;
}

function stringProperty(row: Row, name: string): string | undefined {
  const value = row[name];
  return typeof value === 'string' ? value : undefined;
}

function serializeSources(sources: SourceMarks): string {
  return JSON.stringify([...sources.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function parseSources(text: string | undefined): SourceMarks {
  const marks: SourceMarks = new Map();
  if (text === undefined || text === '') return marks;
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) return marks;
  for (const item of parsed) {
    if (!Array.isArray(item)) continue;
    const [source, mark] = item as unknown[];
    if (typeof source !== 'string' || typeof mark !== 'object' || mark === null) continue;
    const seq = 'seq' in mark && typeof mark.seq === 'number' ? mark.seq : undefined;
    const index = 'index' in mark && typeof mark.index === 'number' ? mark.index : undefined;
    if (seq !== undefined && index !== undefined) marks.set(source, { seq, index });
  }
  return marks;
}

function isResponse(item: unknown): item is EntityResponse {
  return (
    typeof item === 'object' &&
    item !== null &&
    typeof (item as Row)['instanceId'] === 'string' &&
    typeof (item as Row)['requestId'] === 'string' &&
    typeof (item as Row)['responseJson'] === 'string'
  );
}

/** An outbox is `{ signals, responses }` (a bare array of signals before orchestrations were supported). */
function parseOutbox(text: string): { signals: OutgoingSignal[]; responses: EntityResponse[] } {
  const parsed: unknown = JSON.parse(text);
  if (Array.isArray(parsed)) return { signals: parseSignals(parsed), responses: [] };
  if (typeof parsed !== 'object' || parsed === null) return { signals: [], responses: [] };
  const { signals, responses } = parsed as Row;
  return { signals: Array.isArray(signals) ? parseSignals(signals) : [], responses: Array.isArray(responses) ? responses.filter(isResponse) : [] };
}

function parseSignals(parsed: unknown[]): OutgoingSignal[] {
  return parsed.filter(
    (item): item is OutgoingSignal =>
      typeof item === 'object' &&
      item !== null &&
      typeof (item as Row)['targetName'] === 'string' &&
      typeof (item as Row)['targetKey'] === 'string' &&
      typeof (item as Row)['name'] === 'string' &&
      typeof (item as Row)['input'] === 'string',
  );
}

export function emptyHeader(): EntityHeader {
  return { present: false, exists: false, stateJson: null, extraStateRows: 0, lastAppliedSeq: 0, lastOperationTime: undefined, sources: new Map(), sourceRows: 0 };
}

function isNotFound(err: unknown): boolean {
  return err instanceof RestError && err.statusCode === 404;
}

function estimateBytes(actions: TransactionAction[]): number {
  let total = 0;
  for (const [, entity] of actions) total += Buffer.byteLength(JSON.stringify(entity)) + 400;
  return total;
}

export class EntityTableStore {
  constructor(private readonly client: TableClient) {}

  get tableName(): string {
    return this.client.tableName;
  }

  async ensureTable(): Promise<void> {
    await this.client.createTable();
  }

  /** Partitions holding unprocessed operations or undelivered outboxes (what recovery must resume). */
  async listPartitionsWithWork(): Promise<string[]> {
    const partitions = new Set<string>();
    const rows = this.client.listEntities<Row>({ queryOptions: { filter: odata`RowKey ge ${'o'} and RowKey lt ${'p'}` } });
    for await (const row of rows) {
      if (typeof row.partitionKey === 'string') partitions.add(row.partitionKey);
    }
    return [...partitions];
  }

  async loadEntity(partitionKey: string): Promise<EntitySnapshot> {
    const header = emptyHeader();
    let headerRow: Row | undefined;
    const stateRows = new Map<number, Row>();
    const sourceRows = new Map<number, Row>();
    const pending: StoredOperation[] = [];
    const outboxParts = new Map<number, Map<number, Row>>();
    const rows = this.client.listEntities<Row>({ queryOptions: { filter: odata`PartitionKey eq ${partitionKey}` } });
    for await (const row of rows) {
      const rowKey = row.rowKey ?? '';
      if (rowKey === HEADER_ROW_KEY) headerRow = row;
      else if (rowKey.startsWith('state-')) stateRows.set(Number(rowKey.slice(6)), row);
      else if (rowKey.startsWith('sources-')) sourceRows.set(Number(rowKey.slice(8)), row);
      else if (rowKey.startsWith('op-')) pending.push(this.parseOperation(row, Number(rowKey.slice(3))));
      else if (rowKey.startsWith('out-')) {
        const seq = Number(rowKey.slice(4, 20));
        const part = Number(rowKey.slice(21));
        const parts = outboxParts.get(seq) ?? new Map<number, Row>();
        parts.set(part, row);
        outboxParts.set(seq, parts);
      }
    }
    if (headerRow !== undefined) {
      header.present = true;
      header.exists = headerRow['exists'] === true;
      header.lastAppliedSeq = numberProperty(headerRow, 'lastAppliedSeq') ?? 0;
      header.lastOperationTime = stringProperty(headerRow, 'lastOperationTime');
      header.sourceRows = numberProperty(headerRow, 'sourceRows') ?? 0;
      let sourcesJson = stringProperty(headerRow, 'sources');
      if (header.sourceRows > 0) {
        sourcesJson = '';
        for (let i = 1; i <= header.sourceRows; i++) {
          const row = sourceRows.get(i);
          const text = row === undefined ? undefined : readChunkProperties(row, 'c', numberProperty(row, 'chunks') ?? 0);
          if (text === undefined) throw new Error(`Entity partition ${partitionKey}: sources row ${sourcesRowKey(i)} is missing or incomplete.`);
          sourcesJson += text;
        }
      }
      header.sources = parseSources(sourcesJson);
      header.extraStateRows = numberProperty(headerRow, 'stateRows') ?? 0;
      const chunkCount = numberProperty(headerRow, 'stateChunks') ?? 0;
      if (header.exists && chunkCount > 0) {
        const groups = groupChunks(new Array<string>(chunkCount).fill(''), CHUNKS_IN_HEADER_ROW);
        let state = readChunkProperties(headerRow, 'd', groups[0]?.length ?? 0) ?? '';
        for (let i = 1; i < groups.length; i++) {
          const row = stateRows.get(i);
          const text = row === undefined ? undefined : readChunkProperties(row, 'd', groups[i]?.length ?? 0);
          if (text === undefined) throw new Error(`Entity partition ${partitionKey}: state row ${stateRowKey(i)} is missing or incomplete.`);
          state += text;
        }
        header.stateJson = state;
      }
    }
    pending.sort((a, b) => a.seq - b.seq);
    const outbox: OutboxEntry[] = [];
    for (const [seq, parts] of [...outboxParts.entries()].sort(([a], [b]) => a - b)) {
      const ordered = [...parts.entries()].sort(([a], [b]) => a - b);
      let json = '';
      for (const [, row] of ordered) json += readChunkProperties(row, 'c', numberProperty(row, 'chunks') ?? 0) ?? '';
      outbox.push({ seq, rowKeys: ordered.map(([part]) => outboxRowKey(seq, part)), ...parseOutbox(json) });
    }
    return { header, pending, outbox };
  }

  private parseOperation(row: Row, seq: number): StoredOperation {
    const inputChunks = numberProperty(row, 'inputChunks') ?? -1;
    const originSource = stringProperty(row, 'originSource');
    const originSeq = numberProperty(row, 'originSeq');
    const originIndex = numberProperty(row, 'originIndex');
    const callerInstance = stringProperty(row, 'callerInstance');
    const callerRequest = stringProperty(row, 'callerRequest');
    return {
      seq,
      kind: row['kind'] === 'delete' ? 'delete' : row['kind'] === 'call' ? 'call' : 'signal',
      name: stringProperty(row, 'name') ?? '',
      input: inputChunks < 0 ? undefined : (readChunkProperties(row, 'i', inputChunks) ?? ''),
      origin:
        originSource !== undefined && originSeq !== undefined && originIndex !== undefined
          ? { source: originSource, seq: originSeq, index: originIndex }
          : undefined,
      caller: callerInstance !== undefined && callerRequest !== undefined ? { instanceId: callerInstance, requestId: callerRequest } : undefined,
      acceptedAt: stringProperty(row, 'acceptedAt') ?? '',
    };
  }

  /** The single storage request behind an accepted signal. */
  async insertOperation(partitionKey: string, operation: StoredOperation): Promise<void> {
    const chunks = operation.input === undefined ? undefined : splitIntoChunks(operation.input);
    if (chunks !== undefined && chunks.length > MAX_OPERATION_INPUT_CHUNKS) {
      throw new OperationTooLargeError(
        `The operation input has ${operation.input?.length} characters; the local host stores at most ${MAX_OPERATION_INPUT_CHUNKS * 32_000}.`,
      );
    }
    const row: Row = {
      partitionKey,
      rowKey: operationRowKey(operation.seq),
      kind: operation.kind,
      name: operation.name,
      inputChunks: chunks === undefined ? -1 : chunks.length,
      acceptedAt: operation.acceptedAt,
    };
    if (chunks !== undefined) writeChunkProperties(row, 'i', chunks);
    if (operation.origin !== undefined) {
      row['originSource'] = operation.origin.source;
      row['originSeq'] = operation.origin.seq;
      row['originIndex'] = operation.origin.index;
    }
    if (operation.caller !== undefined) {
      row['callerInstance'] = operation.caller.instanceId;
      row['callerRequest'] = operation.caller.requestId;
    }
    await this.client.createEntity(row as Row & { partitionKey: string; rowKey: string });
  }

  /** Deletes the state rows (header, chunks and sources); pending operations and outboxes stay. */
  async deleteState(partitionKey: string, header: Pick<EntityHeader, 'extraStateRows' | 'sourceRows'>): Promise<void> {
    const actions: TransactionAction[] = [['delete', { partitionKey, rowKey: HEADER_ROW_KEY }]];
    for (let i = 1; i <= header.extraStateRows; i++) actions.push(['delete', { partitionKey, rowKey: stateRowKey(i) }]);
    for (let i = 1; i <= header.sourceRows; i++) actions.push(['delete', { partitionKey, rowKey: sourcesRowKey(i) }]);
    await this.client.submitTransaction(actions);
  }

  /** Best-effort removal of an operation whose insert failed (so it cannot resurface after a restart). */
  async deleteOperation(partitionKey: string, seq: number): Promise<void> {
    try {
      await this.client.deleteEntity(partitionKey, operationRowKey(seq));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async deleteOutboxRows(partitionKey: string, rowKeys: string[]): Promise<void> {
    for (const rowKey of rowKeys) {
      try {
        await this.client.deleteEntity(partitionKey, rowKey);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  /** Commits one processed batch atomically (see the file comment); one storage request. */
  async commitBatch(partitionKey: string, id: EntityId, before: EntityHeader, commit: BatchCommit): Promise<CommitResult> {
    const actions: TransactionAction[] = [];
    const lastAppliedSeq = Math.max(before.lastAppliedSeq, ...commit.processed.map((op) => op.seq));
    const sourcesJson = serializeSources(commit.sources);
    const sourcesChanged = sourcesJson !== serializeSources(before.sources);
    const stateChanged = commit.exists !== before.exists || commit.stateJson !== before.stateJson;
    const after: EntityHeader = {
      present: before.present,
      exists: commit.exists,
      stateJson: commit.exists ? commit.stateJson : null,
      extraStateRows: before.extraStateRows,
      lastAppliedSeq,
      lastOperationTime: commit.lastOperationTime,
      sources: commit.sources,
      sourceRows: before.sourceRows,
    };
    // The sources map stays in the header while it fits one property, else it moves to rows of its own.
    const sourceGroups = sourcesJson.length <= CHUNK_CHARS ? [] : groupChunks(splitIntoChunks(sourcesJson), CHUNKS_PER_ROW);
    const meta = {
      entityName: id.name,
      entityKey: id.key,
      lastAppliedSeq,
      lastOperationTime: commit.lastOperationTime,
      sources: sourceGroups.length === 0 ? sourcesJson : '',
      sourceRows: sourceGroups.length,
    };
    if (sourcesChanged) {
      sourceGroups.forEach((group, i) => {
        const row: Row = { partitionKey, rowKey: sourcesRowKey(i + 1), chunks: group.length };
        writeChunkProperties(row, 'c', group);
        actions.push(['upsert', row as Row & { partitionKey: string; rowKey: string }, 'Replace']);
      });
      for (let i = sourceGroups.length + 1; i <= before.sourceRows; i++) actions.push(['delete', { partitionKey, rowKey: sourcesRowKey(i) }]);
      after.sourceRows = sourceGroups.length;
    }
    if (stateChanged) {
      const chunks = after.exists && after.stateJson !== null ? splitIntoChunks(after.stateJson) : [];
      const groups = groupChunks(chunks, CHUNKS_IN_HEADER_ROW);
      const header: Row = { partitionKey, rowKey: HEADER_ROW_KEY, ...meta, exists: after.exists, stateChunks: chunks.length, stateRows: groups.length - 1 };
      writeChunkProperties(header, 'd', groups[0] ?? []);
      actions.push(['upsert', header as Row & { partitionKey: string; rowKey: string }, 'Replace']);
      for (let i = 1; i < groups.length; i++) {
        const row: Row = { partitionKey, rowKey: stateRowKey(i) };
        writeChunkProperties(row, 'd', groups[i] ?? []);
        actions.push(['upsert', row as Row & { partitionKey: string; rowKey: string }, 'Replace']);
      }
      for (let i = groups.length; i <= before.extraStateRows; i++) actions.push(['delete', { partitionKey, rowKey: stateRowKey(i) }]);
      after.present = true;
      after.extraStateRows = groups.length - 1;
    } else if (before.present || sourcesChanged || commit.signals.length > 0 || commit.responses.length > 0) {
      // Metadata only: Merge leaves the state chunks untouched (no re-serialising unchanged state).
      // Written when signals go out even for a stateless entity: lastAppliedSeq must survive a
      // restart, or its next outbox could reuse a sequence its receivers already marked as seen.
      const header: Row = { partitionKey, rowKey: HEADER_ROW_KEY, ...meta };
      if (!before.present) Object.assign(header, { exists: false, stateChunks: 0, stateRows: 0 });
      actions.push(['upsert', header as Row & { partitionKey: string; rowKey: string }, 'Merge']);
      after.present = true;
    }
    for (const op of commit.processed) actions.push(['delete', { partitionKey, rowKey: operationRowKey(op.seq) }]);
    let outbox: OutboxEntry | undefined;
    if (commit.signals.length > 0 || commit.responses.length > 0) {
      const groups = groupChunks(splitIntoChunks(JSON.stringify({ signals: commit.signals, responses: commit.responses })), CHUNKS_PER_ROW);
      const rowKeys: string[] = [];
      groups.forEach((group, part) => {
        const row: Row = { partitionKey, rowKey: outboxRowKey(lastAppliedSeq, part), part, parts: groups.length, chunks: group.length };
        writeChunkProperties(row, 'c', group);
        rowKeys.push(outboxRowKey(lastAppliedSeq, part));
        actions.push(['create', row as Row & { partitionKey: string; rowKey: string }]);
      });
      outbox = { seq: lastAppliedSeq, rowKeys, signals: commit.signals, responses: commit.responses };
    }
    if (actions.length > MAX_TRANSACTION_ACTIONS) {
      throw new UnpersistableBatchError(`The batch needs ${actions.length} table operations; one transaction allows ${MAX_TRANSACTION_ACTIONS}.`);
    }
    const bytes = estimateBytes(actions);
    if (bytes > MAX_TRANSACTION_BYTES) {
      throw new UnpersistableBatchError(`The batch result is about ${bytes} bytes; one table transaction allows 4 MiB.`);
    }
    if (actions.length > 0) await this.client.submitTransaction(actions);
    return { header: after, outbox };
  }

  /** One page of existing entities (header rows), optionally of one entity name. */
  async listEntities(options: {
    name: string | undefined;
    top: number;
    continuationToken: string | undefined;
    from: string | undefined;
    to: string | undefined;
  }): Promise<{ entities: ListedEntity[]; continuationToken: string | undefined }> {
    let filter = odata`RowKey eq ${HEADER_ROW_KEY} and exists eq ${true}`;
    if (options.name !== undefined) {
      const range = partitionRangeForName(options.name);
      filter += ` and ${odata`PartitionKey ge ${range.from} and PartitionKey lt ${range.to}`}`;
    }
    if (options.from !== undefined) filter += ` and ${odata`lastOperationTime ge ${options.from}`}`;
    if (options.to !== undefined) filter += ` and ${odata`lastOperationTime le ${options.to}`}`;
    const pages = this.client
      .listEntities<Row>({ queryOptions: { filter } })
      .byPage({ maxPageSize: options.top, ...(options.continuationToken === undefined ? {} : { continuationToken: options.continuationToken }) });
    const page = (await pages.next()).value as (Row[] & { continuationToken?: string }) | undefined;
    const entities: ListedEntity[] = [];
    for (const row of page ?? []) {
      const name = stringProperty(row, 'entityName');
      const key = stringProperty(row, 'entityKey');
      if (name === undefined || key === undefined) continue;
      const chunkCount = numberProperty(row, 'stateChunks') ?? 0;
      const fitsHeader = chunkCount <= CHUNKS_IN_HEADER_ROW;
      entities.push({
        id: { name, key },
        lastOperationTime: stringProperty(row, 'lastOperationTime'),
        stateJson: !fitsHeader ? undefined : chunkCount === 0 ? null : (readChunkProperties(row, 'd', chunkCount) ?? null),
      });
    }
    return { entities, continuationToken: page?.continuationToken };
  }
}
