/**
 * The `chat` durable entity: wires the entity operations to the chat domain. `post` runs the model
 * call inside the operation (the SDK awaits async handlers), so a chat's turns run in entity order.
 */
import * as df from 'durable-functions';
import type { EntityContext } from 'durable-functions';
import { z } from 'zod';
import { createOrUpdate, postMessage, type ChatState } from '../chat/state';
import { getConfig } from '../config';
import { announceChatChange } from '../durable/changeHints';
import { CHAT_ENTITY_NAME } from '../durable/chatEntityStore';
import { decodeStorable, encodeStorable } from '../durable/storableJson';
import { getModelClient } from '../model';

/** Operation inputs, validated again here because they cross a storage boundary. */
const chatOperations = {
  create: z.object({ instructions: z.string().optional() }),
  post: z.object({ messageId: z.string().min(1), message: z.string() }),
};

/** The entity's state as stored: a ChatState, escaped where it holds characters storage cannot carry (durable/storableJson.ts). */
type StoredChat = unknown;

export async function chatEntity(context: EntityContext<StoredChat>): Promise<void> {
  const operation = context.df.operationName;
  const stored = context.df.getState();
  const state = stored === undefined ? undefined : (decodeStorable(stored) as ChatState);
  // One setState per operation, and a hint to any waiter in this process (durable/changeHints.ts).
  const save = (next: ChatState): void => {
    if (next === state) return;
    context.df.setState(encodeStorable(next));
    announceChatChange(context.df.entityKey);
  };
  switch (operation) {
    case 'create': {
      const input = chatOperations.create.parse(decodeStorable(context.df.getInput()));
      save(createOrUpdate(state, input, new Date()));
      return;
    }
    case 'post': {
      // A post can race a delete; a deleted chat stays deleted.
      if (state === undefined) return;
      const input = chatOperations.post.parse(decodeStorable(context.df.getInput()));
      const { historyTokenBudget } = getConfig().chat;
      const result = await postMessage(state, input, (prompt) => getModelClient().complete({ messages: prompt }), {
        historyTokenBudget,
        now: () => new Date(),
      });
      save(result.state);
      return;
    }
    case 'delete':
      context.df.destructOnExit();
      announceChatChange(context.df.entityKey);
      return;
    default:
      context.warn(`chat entity: unknown operation '${operation ?? ''}' ignored`);
  }
}

df.app.entity(CHAT_ENTITY_NAME, chatEntity);
