/**
 * What the app stored, read behind its back, for the suites and the bench: an entity's state through
 * the runtime's Durable HTTP API (with the master key where keys are enforced), the stream records a
 * chat's turns left in the stream table, and the task hub's rows (both straight from Azurite).
 */
import { TableClient, TableServiceClient } from '@azure/data-tables';
import { TURN_STREAM_TABLE } from '../../src/storage/turnStreamTable';
import type { TestApp } from './app';
import { pollUntil } from './poll';

/** An entity's stored state and its size in bytes (of JSON); undefined when it does not exist. */
export async function readStoredEntity<T>(t: TestApp, name: string, key: string): Promise<{ state: T; bytes: number } | undefined> {
  const response = await fetch(`${t.host.url}/runtime/webhooks/durabletask/entities/${name}/${encodeURIComponent(key)}`, { headers: t.adminHeaders() });
  const text = await response.text();
  if (response.status === 404) return undefined;
  if (response.status !== 200) throw new Error(`${t.runtime.name}: reading entity ${name}/${key} answered ${response.status}: ${text}`);
  return { state: JSON.parse(text) as T, bytes: Buffer.byteLength(text) };
}

/** Stream records left by a chat's turns, or by one of its turns. */
export async function countStreamRecords(t: TestApp, chatId: string, messageId?: string): Promise<number> {
  const client = TableClient.fromConnectionString(t.azurite.connectionString, TURN_STREAM_TABLE, { allowInsecureConnection: true });
  const turn = messageId === undefined ? '' : ` and RowKey gt '${messageId}~' and RowKey lt '${messageId}\x7f'`;
  let count = 0;
  for await (const _row of client.listEntities({ queryOptions: { filter: `PartitionKey eq '${chatId}'${turn}` } })) count++;
  return count;
}

/**
 * Rows in every table of the storage account except the stream table: the task hub as either
 * runtime lays it out (the Functions host's instances, history and partitions; the local host's own).
 */
export async function listTaskHubRows(t: TestApp): Promise<string[]> {
  const service = TableServiceClient.fromConnectionString(t.azurite.connectionString, { allowInsecureConnection: true });
  const rows: string[] = [];
  for await (const table of service.listTables()) {
    if (table.name === undefined || table.name === TURN_STREAM_TABLE) continue;
    const client = TableClient.fromConnectionString(t.azurite.connectionString, table.name, { allowInsecureConnection: true });
    for await (const row of client.listEntities({ queryOptions: { select: ['PartitionKey', 'RowKey'] } })) rows.push(`${table.name} ${row.partitionKey ?? ''} ${row.rowKey ?? ''}`);
  }
  return rows;
}

/**
 * The task hub's rows once their count holds still for `quietMs` (a runtime commits, purges and
 * compacts in the background, so a count taken right after a reply may still change).
 */
export async function settledTaskHubRows(t: TestApp, quietMs = 1_500, timeoutMs = 60_000): Promise<string[]> {
  return pollUntil('the task hub to settle', async () => {
    const first = await listTaskHubRows(t);
    await new Promise((resolve) => setTimeout(resolve, quietMs));
    const second = await listTaskHubRows(t);
    return first.length === second.length ? second : undefined;
  }, timeoutMs, 0);
}
