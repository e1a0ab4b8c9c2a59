/**
 * Reading and signalling `chat` entities through the durable client, and waiting for a chat to
 * reach a condition (its reply, its creation, its deletion).
 */
import * as df from 'durable-functions';
import { EventEmitter } from 'node:events';
import type { ChatState } from '../chat/state';

export type DurableClient = ReturnType<typeof df.getClient>;

export const CHAT_ENTITY_NAME = 'chat';

export function chatEntityId(chatId: string): df.EntityId {
  return new df.EntityId(CHAT_ENTITY_NAME, chatId);
}

export async function readChat(client: DurableClient, chatId: string): Promise<ChatState | undefined> {
  const response = await client.readEntityState<ChatState>(chatEntityId(chatId));
  return response.entityExists ? response.entityState : undefined;
}

/**
 * A process-local hint that a chat entity has just computed a new state. The entity often runs in
 * the same process as the HTTP handler waiting on it; the hint lets the waiter re-read at once
 * instead of sleeping out its backoff. Only a hint: the state is committed after the operation
 * returns, and other instances never see it, so waiters still poll and read committed state.
 */
const chatUpdates = new EventEmitter().setMaxListeners(0);

export function announceChatUpdate(chatId: string): void {
  chatUpdates.emit(chatId);
}

/** Resolves true on the next update hint for the chat, false after `timeoutMs`. */
function nextChatUpdate(chatId: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const onUpdate = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      chatUpdates.off(chatId, onUpdate);
      resolve(false);
    }, timeoutMs);
    chatUpdates.once(chatId, onUpdate);
  });
}

const MAX_POLL_PAUSE_MS = 250;
/** Reads 1 ms apart after a hint: a batch commit takes a few ms, and reads are cheap in-process. */
const QUICK_READS_AFTER_HINT = 20;

/**
 * Re-reads the chat until `done` holds or the deadline passes. Between reads it waits for an update
 * hint or a backoff pause (doubling to 250 ms); after a hint it re-reads every millisecond for a
 * while, because the new state becomes readable only once the entity's batch commits.
 */
export async function waitForChat(
  client: DurableClient,
  chatId: string,
  done: (state: ChatState | undefined) => boolean,
  timeoutMs: number,
): Promise<ChatState | undefined> {
  const deadline = Date.now() + timeoutMs;
  let pauseMs = 2;
  let quickReadsLeft = 0;
  for (;;) {
    const state = await readChat(client, chatId);
    const remaining = deadline - Date.now();
    if (done(state) || remaining <= 0) return state;
    if (quickReadsLeft > 0) {
      quickReadsLeft--;
      await new Promise((resolve) => setTimeout(resolve, 1));
      continue;
    }
    if (await nextChatUpdate(chatId, Math.min(pauseMs, remaining))) {
      quickReadsLeft = QUICK_READS_AFTER_HINT;
      pauseMs = 2;
    } else {
      pauseMs = Math.min(pauseMs * 2, MAX_POLL_PAUSE_MS);
    }
  }
}
