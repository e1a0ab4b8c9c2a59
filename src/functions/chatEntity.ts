/**
 * The `chat` durable entity and its `chatHistoryPage` entities: wires the entity operations to the
 * chat domain. `post` runs the model call inside the operation (the SDK awaits async handlers), so a
 * chat's turns run in entity order. After every operation the chat cuts full history pages and
 * signals each to its own page entity, which stores it once and confirms back (chat/history.ts).
 */
import * as df from 'durable-functions';
import type { EntityContext } from 'durable-functions';
import { z } from 'zod';
import { confirmPage, cutPages, type PagingLimits } from '../chat/history';
import { isCurrentSchema, parseChatState, parseHistoryPage } from '../chat/schema';
import { createOrUpdate, hasMessage, postMessage, type ChatState, type TurnModel } from '../chat/state';
import { newAttemptId, streamingTurnModel, TurnStreamPublisher } from '../chat/turnStream';
import { getConfig } from '../config';
import { CHAT_ENTITY_NAME, chatEntityId, HISTORY_PAGE_ENTITY_NAME, historyPageEntityId } from '../durable/chatEntityStore';
import { decodeStorable, encodeStorable } from '../durable/storableJson';
import { getModelClient } from '../model';
import { announceTurnRecords } from '../storage/streamHints';
import { getTurnStreamStore } from '../storage/turnStreamTable';

/** Operation inputs, validated again here because they cross a storage boundary. */
const chatOperations = {
  create: z.object({ instructions: z.string().optional() }),
  post: z.object({ messageId: z.string().min(1), message: z.string(), stream: z.boolean().optional() }),
  pageStored: z.object({ page: z.number().int().nonnegative() }),
};
const pageOperations = {
  write: z.object({ chatId: z.string().min(1), page: z.unknown() }),
};

// A migrated long chat pages out this many pages per operation, so no batch writes unboundedly.
const MAX_PAGES_PER_OPERATION = 8;

function pagingLimits(): PagingLimits {
  const { historyTokenBudget, historyPageBytes } = getConfig().chat;
  return { pageBytes: historyPageBytes, historyTokenBudget, maxPagesPerOperation: MAX_PAGES_PER_OPERATION };
}

/** Entity states as stored: escaped where they hold characters storage cannot carry (durable/storableJson.ts). */
type Stored = unknown;

/** The model a turn calls: a streamed post publishes its reply as it is generated (chat/turnStream.ts), a plain one does not. */
function turnModel(chatId: string, stream: boolean): TurnModel {
  const streams = getTurnStreamStore();
  if (!stream || streams === undefined) return (prompt) => getModelClient().complete({ messages: prompt });
  return streamingTurnModel(
    (prompt) => getModelClient().stream({ messages: prompt }),
    (turn) => new TurnStreamPublisher(streams, chatId, turn.messageId, newAttemptId(Date.now()), () => announceTurnRecords(chatId)),
  );
}

export async function chatEntity(context: EntityContext<Stored>): Promise<void> {
  const chatId = context.df.entityKey;
  const operation = context.df.operationName;
  const stored = context.df.getState();
  const decoded = stored === undefined ? undefined : decodeStorable(stored);
  const state = decoded === undefined ? undefined : parseChatState(decoded, chatId);
  const limits = pagingLimits();

  // One setState per operation, after the pages due are cut.
  const save = (next: ChatState): void => {
    const paged = cutPages(next, limits);
    for (const page of paged.pages) context.df.signalEntity(historyPageEntityId(chatId, page.page), 'write', encodeStorable({ chatId, page }));
    if (paged.morePages) context.df.signalEntity(chatEntityId(chatId), 'continuePaging');
    if (paged.state === state && isCurrentSchema(decoded)) return;
    context.df.setState(encodeStorable(paged.state));
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
      if (hasMessage(state, input.messageId)) return;
      // The previous streamed turn's records are no longer needed by anyone: its reply is stored.
      const cleanup = state.streamedTurn === undefined ? undefined : getTurnStreamStore()?.deleteTurn(chatId, state.streamedTurn).catch(() => undefined);
      const result = await postMessage(state, input, turnModel(chatId, input.stream === true), { historyTokenBudget: limits.historyTokenBudget, now: () => new Date() });
      await cleanup;
      const { streamedTurn: _previous, ...next } = result.state;
      save(input.stream === true ? { ...next, streamedTurn: input.messageId } : next);
      return;
    }
    case 'pageStored': {
      if (state === undefined) return;
      const { page } = chatOperations.pageStored.parse(context.df.getInput());
      save(confirmPage(state, page, limits.historyTokenBudget));
      return;
    }
    case 'continuePaging':
      if (state !== undefined) save(state);
      return;
    case 'delete':
      if (state?.streamedTurn !== undefined) await getTurnStreamStore()?.deleteTurn(chatId, state.streamedTurn).catch(() => undefined);
      for (let page = 0; page < (state?.pageCount ?? 0); page++) context.df.signalEntity(historyPageEntityId(chatId, page), 'delete');
      context.df.destructOnExit();
      return;
    default:
      context.warn(`chat entity: unknown operation '${operation ?? ''}' ignored`);
  }
}

/** A page of a chat's history: written once, confirmed to its chat, deleted with it. */
export function historyPageEntity(context: EntityContext<Stored>): void {
  const operation = context.df.operationName;
  switch (operation) {
    case 'write': {
      const input = pageOperations.write.parse(decodeStorable(context.df.getInput()));
      const page = parseHistoryPage(input.page, input.chatId, Number(context.df.entityKey.slice(context.df.entityKey.lastIndexOf('~') + 1)));
      context.df.setState(encodeStorable(page));
      context.df.signalEntity(chatEntityId(input.chatId), 'pageStored', { page: page.page });
      return;
    }
    case 'delete':
      context.df.destructOnExit();
      return;
    default:
      context.warn(`chat history page entity: unknown operation '${operation ?? ''}' ignored`);
  }
}

df.app.entity(CHAT_ENTITY_NAME, chatEntity);
df.app.entity(HISTORY_PAGE_ENTITY_NAME, historyPageEntity);
