/**
 * Orchestration storage in one Azure Table per task hub (beside the entities' table). Each instance
 * is one partition, keyed by its instance id (escaped like entity keys), so an episode commits in ONE
 * entity-group transaction:
 *
 *   RowKey "instance"            header: name, status, times, execution id, custom status and the
 *                                work it waits for (pending activities, timers, entity calls, retries)
 *   RowKey "input-NNN"           the input (JSON), in chunks
 *   RowKey "output-NNN"          the output (JSON), once finished
 *   RowKey "h-<episode>-<part>"  the history events one episode appended
 *   RowKey "m-<kind>-<id>"       a message not yet given to the orchestrator (start, activity result,
 *                                timer, event, entity result, terminate); keys of results are derived
 *                                from what they answer, so a repeated delivery finds its row taken
 *
 * An episode commit = upsert the header, add its history rows, delete the messages it took (and write
 * the output when it finishes). A crash loses either the whole episode (its messages are still there)
 * or none of it.
 */
import { odata, RestError, type TableClient, type TransactionAction } from '@azure/data-tables';
import { CHUNKS_IN_HEADER_ROW, CHUNKS_PER_ROW, groupChunks, readChunkProperties, splitIntoChunks, writeChunkProperties } from '../chunks';
import { PermanentStorageError } from '../storageRetry';
import type { HistoryEvent, MessageEvent } from './history';
import type { InboxMessage, InstanceHeader, InstanceSnapshot, PendingWork, RuntimeStatus } from './instance';

type Row = Record<string, unknown> & { partitionKey: string; rowKey: string };

const HEADER = 'instance';
const MAX_TRANSACTION_ACTIONS = 100;
const MAX_TRANSACTION_BYTES = 4_000_000;

/** What cannot fit one row or table transaction; retrying will not help. */
export class UnpersistableEpisodeError extends PermanentStorageError {}

const pad = (value: number, width: number): string => String(value).padStart(width, '0');
const historyRowKey = (episode: number, part: number): string => `h-${pad(episode, 8)}-${pad(part, 3)}`;

function numberProperty(row: Record<string, unknown>, name: string): number | undefined {
  const value = row[name];
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  return undefined;
}

function stringProperty(row: Record<string, unknown>, name: string): string | undefined {
  const value = row[name];
  return typeof value === 'string' ? value : undefined;
}

/** Text spread over rows `<prefix>000`, `<prefix>001`, ... (14 chunks each). */
function textRows(partitionKey: string, prefix: string, text: string): Row[] {
  return groupChunks(splitIntoChunks(text), CHUNKS_PER_ROW).map((chunks, index) => {
    const row: Row = { partitionKey, rowKey: `${prefix}${pad(index, 3)}`, chunks: chunks.length };
    writeChunkProperties(row, 'd', chunks);
    return row;
  });
}

function readTextRows(rows: Record<string, unknown>[]): string {
  return rows.map((row) => readChunkProperties(row, 'd', numberProperty(row, 'chunks') ?? 0) ?? '').join('');
}

function headerRow(partitionKey: string, header: InstanceHeader): Row {
  const row: Row = {
    partitionKey,
    rowKey: HEADER,
    instanceId: header.instanceId,
    name: header.name,
    executionId: header.executionId,
    generation: header.generation,
    status: header.status,
    createdTime: header.createdTime,
    lastUpdatedTime: header.lastUpdatedTime,
    episodes: header.episodes,
    // Recovery looks for these: instances that run, or still have messages for entities.
    hasWork: header.status === 'Pending' || header.status === 'Running' || header.pending.outbox.length > 0,
  };
  const pendingChunks = splitIntoChunks(JSON.stringify(header.pending));
  const statusChunks = header.customStatusJson === null ? [] : splitIntoChunks(header.customStatusJson);
  if (pendingChunks.length + statusChunks.length > CHUNKS_IN_HEADER_ROW) {
    throw new UnpersistableEpisodeError('The custom status and outstanding work do not fit the instance row (about 300,000 characters).');
  }
  row['pendingChunks'] = pendingChunks.length;
  writeChunkProperties(row, 'p', pendingChunks);
  row['customStatusChunks'] = header.customStatusJson === null ? -1 : statusChunks.length;
  writeChunkProperties(row, 'c', statusChunks);
  return row;
}

function parseHeader(row: Record<string, unknown>, inputJson: string, outputJson: string | null): InstanceHeader {
  const statusChunks = numberProperty(row, 'customStatusChunks') ?? -1;
  return {
    instanceId: stringProperty(row, 'instanceId') ?? '',
    name: stringProperty(row, 'name') ?? '',
    executionId: stringProperty(row, 'executionId') ?? '',
    generation: numberProperty(row, 'generation') ?? 0,
    status: (stringProperty(row, 'status') ?? 'Pending') as RuntimeStatus,
    createdTime: stringProperty(row, 'createdTime') ?? '',
    lastUpdatedTime: stringProperty(row, 'lastUpdatedTime') ?? '',
    inputJson,
    outputJson,
    customStatusJson: statusChunks < 0 ? null : (readChunkProperties(row, 'c', statusChunks) ?? null),
    pending: JSON.parse(readChunkProperties(row, 'p', numberProperty(row, 'pendingChunks') ?? 0) ?? '{}') as PendingWork,
    episodes: numberProperty(row, 'episodes') ?? 0,
  };
}

function messageRow(partitionKey: string, message: InboxMessage): Row {
  const row: Row = { partitionKey, rowKey: message.key, order: message.order };
  const chunks = splitIntoChunks(JSON.stringify(message.event));
  if (chunks.length > CHUNKS_PER_ROW) throw new UnpersistableEpisodeError(`The message is larger than the local host stores in one row (${CHUNKS_PER_ROW * 32_000} characters).`);
  row['chunks'] = chunks.length;
  writeChunkProperties(row, 'e', chunks);
  return row;
}

function checkTransaction(actions: TransactionAction[]): void {
  if (actions.length > MAX_TRANSACTION_ACTIONS) throw new UnpersistableEpisodeError(`The episode needs ${actions.length} table operations; one transaction allows ${MAX_TRANSACTION_ACTIONS}.`);
  let bytes = 0;
  for (const [, entity] of actions) bytes += Buffer.byteLength(JSON.stringify(entity)) + 400;
  if (bytes > MAX_TRANSACTION_BYTES) throw new UnpersistableEpisodeError(`The episode's data is about ${bytes} bytes; one table transaction allows 4 MiB.`);
}

const isConflict = (err: unknown): boolean => err instanceof RestError && (err.statusCode === 409 || err.code === 'EntityAlreadyExists');
const isNotFound = (err: unknown): boolean => err instanceof RestError && err.statusCode === 404;

export interface EpisodeCommit {
  /** Numbers its history rows. */
  episode: number;
  header: InstanceHeader;
  /** Every event this episode appended (OrchestratorStarted .. OrchestratorCompleted). */
  events: HistoryEvent[];
  takenKeys: string[];
  /** Written when the instance finishes. */
  outputJson: string | null | undefined;
}

export class InstanceStore {
  constructor(private readonly client: TableClient) {}

  get tableName(): string {
    return this.client.tableName;
  }

  async ensureTable(): Promise<void> {
    await this.client.createTable();
  }

  /** The whole partition, or undefined when the instance does not exist. */
  async load(partitionKey: string): Promise<InstanceSnapshot | undefined> {
    let header: Record<string, unknown> | undefined;
    const input: Record<string, unknown>[] = [];
    const output: Record<string, unknown>[] = [];
    const history: Record<string, unknown>[] = [];
    const inbox: InboxMessage[] = [];
    for await (const row of this.client.listEntities<Record<string, unknown>>({ queryOptions: { filter: odata`PartitionKey eq ${partitionKey}` } })) {
      const key = row.rowKey ?? '';
      if (key === HEADER) header = row;
      else if (key.startsWith('input-')) input.push(row);
      else if (key.startsWith('output-')) output.push(row);
      else if (key.startsWith('h-')) history.push(row);
      else if (key.startsWith('m-')) {
        const event = JSON.parse(readChunkProperties(row, 'e', numberProperty(row, 'chunks') ?? 0) ?? 'null') as MessageEvent;
        inbox.push({ key, order: numberProperty(row, 'order') ?? 0, event });
      }
    }
    if (header === undefined) return undefined;
    // Rows come sorted by RowKey: chunks in order, episodes in order.
    const episodes = new Map<string, Record<string, unknown>[]>();
    for (const row of history) {
      const episode = String(row['rowKey']).slice(0, 'h-00000000'.length);
      episodes.set(episode, [...(episodes.get(episode) ?? []), row]);
    }
    const parsedHistory = [...episodes.values()].flatMap((rows) => JSON.parse(readTextRows(rows)) as HistoryEvent[]);
    inbox.sort((a, b) => a.order - b.order);
    return { header: parseHeader(header, readTextRows(input), output.length > 0 ? readTextRows(output) : null), history: parsedHistory, inbox };
  }

  /** Creates the instance with its start message (one transaction); false if the instance exists. */
  async create(partitionKey: string, header: InstanceHeader, start: InboxMessage): Promise<boolean> {
    const actions: TransactionAction[] = [
      ['create', headerRow(partitionKey, header)],
      ...textRows(partitionKey, 'input-', header.inputJson).map((row): TransactionAction => ['upsert', row, 'Replace']),
      ['upsert', messageRow(partitionKey, start), 'Replace'],
    ];
    checkTransaction(actions);
    try {
      await this.client.submitTransaction(actions);
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** Stores a message; false if one with its key is already there (a repeated delivery). */
  async insertMessage(partitionKey: string, message: InboxMessage): Promise<boolean> {
    try {
      await this.client.createEntity(messageRow(partitionKey, message));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  async commitEpisode(partitionKey: string, commit: EpisodeCommit): Promise<void> {
    const historyChunks = commit.events.length === 0 ? [] : groupChunks(splitIntoChunks(JSON.stringify(commit.events)), CHUNKS_PER_ROW);
    const historyRows = historyChunks.map((chunks, part) => {
      const row: Row = { partitionKey, rowKey: historyRowKey(commit.episode, part), chunks: chunks.length };
      writeChunkProperties(row, 'd', chunks);
      return row;
    });
    const actions: TransactionAction[] = [
      ['upsert', headerRow(partitionKey, commit.header), 'Replace'],
      ...historyRows.map((row): TransactionAction => ['create', row]),
      ...commit.takenKeys.map((rowKey): TransactionAction => ['delete', { partitionKey, rowKey }]),
    ];
    if (commit.outputJson !== undefined && commit.outputJson !== null) {
      actions.push(...textRows(partitionKey, 'output-', commit.outputJson).map((row): TransactionAction => ['upsert', row, 'Replace']));
    }
    checkTransaction(actions);
    await this.client.submitTransaction(actions);
  }

  async saveHeader(partitionKey: string, header: InstanceHeader): Promise<void> {
    await this.client.upsertEntity(headerRow(partitionKey, header), 'Replace');
  }

  /** Deletes every row of the instance; returns how many there were. */
  async purge(partitionKey: string): Promise<number> {
    const keys: string[] = [];
    for await (const row of this.client.listEntities({ queryOptions: { filter: odata`PartitionKey eq ${partitionKey}`, select: ['RowKey'] } })) keys.push(row.rowKey ?? '');
    for (let i = 0; i < keys.length; i += MAX_TRANSACTION_ACTIONS) {
      const actions = keys.slice(i, i + MAX_TRANSACTION_ACTIONS).map((rowKey): TransactionAction => ['delete', { partitionKey, rowKey }]);
      try {
        await this.client.submitTransaction(actions);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        for (const [, entity] of actions) await this.client.deleteEntity(partitionKey, entity.rowKey).catch((inner: unknown) => (isNotFound(inner) ? undefined : Promise.reject(inner)));
      }
    }
    return keys.length;
  }

  /** Partitions of instances that run or still have entity messages to deliver (what recovery resumes). */
  async listWithWork(): Promise<string[]> {
    const partitions: string[] = [];
    for await (const row of this.client.listEntities({ queryOptions: { filter: odata`RowKey eq ${HEADER} and hasWork eq ${true}`, select: ['PartitionKey'] } })) {
      partitions.push(row.partitionKey ?? '');
    }
    return partitions;
  }
}
