/**
 * The todo store over the durable client: a `todolist` entity per chat. A change is signalled and then
 * awaited in the entity's state (client signals carry no reply); the entity applies it once per tool
 * call id, so a retried signal or a re-run tool call changes the list once.
 */
import * as df from 'durable-functions';
import { z } from 'zod';
import { appliedChange, EMPTY_TODO_LIST, type TodoChange, type TodoListState, type TodoStore } from '../tools/todoList';
import { ChatStoreUnavailableError } from '../errors';
import type { DurableClient } from './chatEntityStore';

export const TODO_LIST_ENTITY_NAME = 'todoList';

// Lower-cased for the same reason as the chat's ids (durable/chatEntityStore.ts).
export function todoListEntityId(chatId: string): df.EntityId {
  return new df.EntityId(TODO_LIST_ENTITY_NAME.toLowerCase(), chatId);
}

const item = z.object({ id: z.number().int(), task: z.string(), createdAt: z.string() });
const change = z.union([
  z.object({ kind: z.literal('added'), item }),
  z.object({ kind: z.literal('removed'), item }),
  z.object({ kind: z.literal('not_found'), id: z.number().int() }),
]);
export const todoListSchema = z.object({
  items: z.array(item),
  nextId: z.number().int().positive(),
  applied: z.array(z.object({ toolCallId: z.string(), change })),
});

/** A stored todo list, validated; a list that does not parse is a storage fault, not an empty list. */
export function parseTodoList(stored: unknown): TodoListState {
  if (stored === undefined || stored === null) return EMPTY_TODO_LIST;
  const parsed = todoListSchema.safeParse(stored);
  if (!parsed.success) throw new ChatStoreUnavailableError('The todo list could not be read.', 1, { cause: parsed.error });
  return parsed.data;
}

export interface TodoWaitPolicy {
  timeoutMs: number;
  firstPauseMs: number;
  longestPauseMs: number;
}

const DEFAULT_POLICY: TodoWaitPolicy = { timeoutMs: 30_000, firstPauseMs: 10, longestPauseMs: 250 };

export function durableTodoStore(client: DurableClient, policy: TodoWaitPolicy = DEFAULT_POLICY): TodoStore {
  const read = async (chatId: string): Promise<TodoListState> => {
    const response = await client.readEntityState<unknown>(todoListEntityId(chatId));
    return response.entityExists ? parseTodoList(response.entityState) : EMPTY_TODO_LIST;
  };
  const apply = async (chatId: string, toolCallId: string, operation: string, input: unknown): Promise<TodoChange> => {
    const done = appliedChange(await read(chatId), toolCallId);
    if (done !== undefined) return done;
    await client.signalEntity(todoListEntityId(chatId), operation, input);
    const deadline = Date.now() + policy.timeoutMs;
    for (let pause = policy.firstPauseMs; Date.now() < deadline; pause = Math.min(pause * 2, policy.longestPauseMs)) {
      await new Promise((resolve) => setTimeout(resolve, pause));
      const applied = appliedChange(await read(chatId), toolCallId);
      if (applied !== undefined) return applied;
    }
    throw new ChatStoreUnavailableError('The todo list did not answer in time.', 1);
  };
  return {
    add: (chatId, toolCallId, task) => apply(chatId, toolCallId, 'add', { toolCallId, task }),
    remove: (chatId, toolCallId, id) => apply(chatId, toolCallId, 'remove', { toolCallId, id }),
    list: async (chatId) => (await read(chatId)).items,
  };
}
