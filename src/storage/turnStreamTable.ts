/**
 * Streamed turns in an Azure Table of the AzureWebJobsStorage account (Azurite locally; in Azure
 * through the app's managed identity, which has Storage Table Data Contributor for the task hub).
 * One partition per chat; a row per record, keyed `<messageId>~<attempt>~<seq>`, so a turn's records
 * are one key range and a chat's are one partition to delete. A cancelled turn's stop request is a
 * row `<messageId>~~stop` in the same range.
 */
import { TableClient, TableTransaction, type TableEntity } from '@azure/data-tables';
import { DefaultAzureCredential } from '@azure/identity';
import { z } from 'zod';
import { toolCallSchema, toolResultSchema } from '../chat/turn';
import type { TurnStreamRecord, TurnStreamStore } from '../chat/turnStream';
import { getConfig, type StreamStorage } from '../config';

export const TURN_STREAM_TABLE = 'ChatTurnStreams';

const rowSchema = z.object({
  rowKey: z.string(),
  attempt: z.string(),
  kind: z.enum(['start', 'text', 'end']),
  text: z.string().optional(),
  userMessageId: z.string().optional(),
  userCreatedAt: z.string().optional(),
  round: z.number().int().positive().optional(),
  /** A start record's tool results or an end record's tool calls, as JSON. */
  tools: z.string().optional(),
});

const toolCallsJson = z.array(toolCallSchema);
const toolResultsJson = z.array(toolResultSchema);

/** Reads a record's tool column; a column that does not parse counts as none (the chat keeps the full record). */
function toolsColumn<T>(schema: z.ZodType<T>, json: string | undefined): T | undefined {
  if (json === undefined) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

// A table property holds at most 32K characters: long tool results are cut for the stream (the chat keeps them whole).
const MAX_STREAMED_RESULT_CHARS = 4_000;

function tableClient(storage: NonNullable<StreamStorage>): TableClient {
  const options = { retryOptions: { maxRetries: 3, retryDelayInMs: 100, maxRetryDelayInMs: 1_000 } };
  if (storage.kind === 'connectionString') {
    // Azurite speaks plain http; a real account's connection string uses https anyway.
    return TableClient.fromConnectionString(storage.connectionString, TURN_STREAM_TABLE, { ...options, allowInsecureConnection: true });
  }
  const credential = new DefaultAzureCredential(storage.managedIdentityClientId === undefined ? {} : { managedIdentityClientId: storage.managedIdentityClientId });
  return new TableClient(storage.tableServiceUri, TURN_STREAM_TABLE, credential, options);
}

const turnPrefix = (messageId: string) => `${messageId}~`;
// Among the turn's rows (so removed with them), after every record: attempt ids never start with '~'.
const stopKey = (messageId: string) => `${messageId}~~stop`;
// '~' + 1 = '\x7f': the first key after every key of the turn.
const turnEnd = (messageId: string) => `${messageId}\x7f`;

export function tableTurnStreamStore(storage: NonNullable<StreamStorage>): TurnStreamStore {
  const client = tableClient(storage);
  let created: Promise<void> | undefined;
  const ready = () =>
    (created ??= client.createTable().catch((err: unknown) => {
      created = undefined;
      throw err;
    }));
  const rows = (chatId: string, from: string, to: string) =>
    client.listEntities<TableEntity<Record<string, unknown>>>({
      queryOptions: { filter: `PartitionKey eq '${chatId}' and RowKey gt '${from}' and RowKey lt '${to}'` },
    });

  return {
    async append(chatId, messageId, records) {
      await ready();
      const transaction = new TableTransaction();
      for (const record of records) {
        const { key, ...fields } = record;
        const row: Record<string, unknown> = { partitionKey: chatId, rowKey: `${turnPrefix(messageId)}${key}`, ...fields };
        if (record.kind === 'start' && record.toolResults !== undefined) {
          delete row.toolResults;
          row.tools = JSON.stringify(record.toolResults.map((r) => ({ ...r, content: r.content.slice(0, MAX_STREAMED_RESULT_CHARS) })));
        }
        if (record.kind === 'end' && record.toolCalls !== undefined) {
          delete row.toolCalls;
          row.tools = JSON.stringify(record.toolCalls);
        }
        transaction.createEntity(row as TableEntity);
      }
      await client.submitTransaction(transaction.actions);
    },
    async readAfter(chatId, messageId, afterKey) {
      await ready();
      const records: TurnStreamRecord[] = [];
      const prefix = turnPrefix(messageId);
      for await (const entity of rows(chatId, afterKey === undefined ? prefix : `${prefix}${afterKey}`, turnEnd(messageId))) {
        const row = rowSchema.safeParse(entity);
        if (!row.success) continue; // not a record: the turn's stop request, or a row this version cannot read
        const { rowKey, attempt, kind } = row.data;
        const key = rowKey.slice(prefix.length);
        if (kind === 'start') {
          const start: TurnStreamRecord = { key, attempt, kind, round: row.data.round ?? 1, userMessageId: row.data.userMessageId ?? messageId, userCreatedAt: row.data.userCreatedAt ?? '' };
          const toolResults = toolsColumn(toolResultsJson, row.data.tools);
          if (toolResults !== undefined) start.toolResults = toolResults;
          records.push(start);
        } else if (kind === 'text') records.push({ key, attempt, kind, text: row.data.text ?? '' });
        else {
          const end: TurnStreamRecord = { key, attempt, kind };
          const toolCalls = toolsColumn(toolCallsJson, row.data.tools);
          if (toolCalls !== undefined) end.toolCalls = toolCalls;
          records.push(end);
        }
      }
      return records;
    },
    async requestStop(chatId, messageId) {
      await ready();
      await client.upsertEntity({ partitionKey: chatId, rowKey: stopKey(messageId) }, 'Replace');
    },
    async stopRequested(chatId, messageId) {
      await ready();
      try {
        await client.getEntity(chatId, stopKey(messageId));
        return true;
      } catch (err) {
        if ((err as { statusCode?: unknown }).statusCode === 404) return false;
        throw err;
      }
    },
    async deleteTurn(chatId, messageId) {
      await ready();
      const keys: string[] = [];
      for await (const entity of rows(chatId, turnPrefix(messageId), turnEnd(messageId))) keys.push(entity.rowKey);
      // A transaction holds at most 100 operations.
      for (let at = 0; at < keys.length; at += 100) {
        const transaction = new TableTransaction();
        for (const rowKey of keys.slice(at, at + 100)) transaction.deleteEntity(chatId, rowKey);
        await client.submitTransaction(transaction.actions);
      }
    },
  };
}

let shared: { store: TurnStreamStore | undefined } | undefined;

/** The process-wide stream store over AzureWebJobsStorage; undefined when no storage is configured. */
export function getTurnStreamStore(): TurnStreamStore | undefined {
  if (shared === undefined) {
    const storage = getConfig().streamStorage;
    shared = { store: storage === undefined ? undefined : tableTurnStreamStore(storage) };
  }
  return shared.store;
}
