/**
 * The chat store over the durable client: reads and signals of `chat` entities, and reads of their
 * `chatHistoryPage` entities, through the Durable HTTP API. What it reads is validated
 * (chat/schema.ts). A call that fails transiently (a 5xx from that API, e.g. a storage error while a large
 * state's blob is replaced, or a broken connection) is retried with backoff; if it keeps failing the
 * request is answered 503 with Retry-After (ChatStoreUnavailableError), never 500.
 */
import * as df from 'durable-functions';
import type { KeyedChatStore } from '../chat/chatKey';
import { chatIndexEntityId, chatIndexEntries, parseChatIndex } from './chatIndex';
import type { HistoryPage } from '../chat/history';
import { parseChatState, parseHistoryPage } from '../chat/schema';
import type { ChatState } from '../chat/state';
import { ChatStoreUnavailableError } from '../errors';
import { decodeStorable, encodeStorable } from './storableJson';

export type DurableClient = ReturnType<typeof df.getClient>;

export const CHAT_ENTITY_NAME = 'chat';
export const HISTORY_PAGE_ENTITY_NAME = 'chatHistoryPage';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Pause before the first retry; doubles on each further one, with jitter. */
  firstDelayMs: number;
  /** The Retry-After a client gets when every attempt failed. */
  retryAfterSeconds: number;
}

// About 1.5 s of retries: long enough for a blob replace or a storage hiccup, short for a client.
const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 5, firstDelayMs: 100, retryAfterSeconds: 2 };

// Entity names are lower-cased in ids: the Durable extension lowers them for client calls but not in
// signals an entity sends, so a mixed-case name would make an entity's signal and a client's read
// reach different instances.
export function chatEntityId(chatId: string): df.EntityId {
  return new df.EntityId(CHAT_ENTITY_NAME.toLowerCase(), chatId);
}

/** Page keys are `<chatId>~<page>`: chat ids cannot contain `~`, so a key names one page of one chat. */
export function historyPageEntityId(chatId: string, page: number): df.EntityId {
  return new df.EntityId(HISTORY_PAGE_ENTITY_NAME.toLowerCase(), `${chatId}~${page}`);
}

// The durable-functions client reports an unexpected status as a plain Error with this message.
const UNEXPECTED_STATUS = /unexpected status code: (\d{3})/;
// Connection-level failures (axios, under the durable client, keeps Node's error codes).
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ERR_SOCKET_CONNECTION_TIMEOUT']);

/** True for failures worth retrying: a 5xx (or 429) from the Durable HTTP API, or a connection failure. */
export function isTransientDurableFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const status = UNEXPECTED_STATUS.exec(err.message)?.[1];
  if (status !== undefined) return Number(status) >= 500 || Number(status) === 429;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && TRANSIENT_CODES.has(code);
}

export function durableChatStore(client: DurableClient, policy: RetryPolicy = DEFAULT_RETRY_POLICY, sleep = defaultSleep): KeyedChatStore {
  async function withRetries<T>(what: string, call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (!isTransientDurableFailure(err)) throw err;
        if (attempt >= policy.attempts) {
          throw new ChatStoreUnavailableError(`The chat store did not answer (${what}); try again shortly.`, policy.retryAfterSeconds, { cause: err });
        }
        const delay = policy.firstDelayMs * 2 ** (attempt - 1);
        await sleep(delay / 2 + Math.random() * (delay / 2));
      }
    }
  }
  return {
    async read(chatId): Promise<ChatState | undefined> {
      const response = await withRetries(`reading chat '${chatId}'`, () => client.readEntityState<unknown>(chatEntityId(chatId)));
      return response.entityExists ? parseChatState(decodeStorable(response.entityState), chatId) : undefined;
    },
    async readPage(chatId, page): Promise<HistoryPage | undefined> {
      const response = await withRetries(`reading page ${page} of chat '${chatId}'`, () => client.readEntityState<unknown>(historyPageEntityId(chatId, page)));
      return response.entityExists ? parseHistoryPage(decodeStorable(response.entityState), chatId, page) : undefined;
    },
    async signal(chatId, operation) {
      // A retried signal may arrive twice; every chat operation is idempotent (posts by message id).
      const input = encodeStorable('input' in operation ? operation.input : undefined);
      await withRetries(`signalling '${operation.name}' to chat '${chatId}'`, () => client.signalEntity(chatEntityId(chatId), operation.name, input));
    },
    async raiseTurnEvent(instanceId, eventName, data) {
      try {
        await withRetries(`raising '${eventName}' to turn '${instanceId}'`, () => client.raiseEvent(instanceId, eventName, data));
      } catch (err) {
        // No such instance (purged after it finished): the chat shows how the turn ended.
        if (!(err instanceof Error && err.message.startsWith('No instance with ID'))) throw err;
      }
    },
    async purgeDeleted(chatId) {
      // An entity is an instance `@name@key` underneath; deleting its state leaves the instance's rows.
      await client.purgeInstanceHistory(chatEntityId(chatId).toString());
    },
    async listChats(owner) {
      const id = chatIndexEntityId(owner);
      const response = await withRetries(`reading the chat list of '${id.key}'`, () => client.readEntityState<unknown>(id));
      return chatIndexEntries(parseChatIndex(response.entityExists ? response.entityState : undefined, id.key));
    },
  };
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
