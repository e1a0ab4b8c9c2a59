/**
 * The chat's durable entities: `chat` (its state and the order of its turns), `chatHistoryPage`
 * (write-once pages of older history) and `todoList` (the todo tools' list). The chat accepts posts
 * into its queue and starts the turn orchestration of the oldest one when no turn runs; the turn's
 * outcome comes back as `finishTurn`, which records it, starts the next turn and purges finished
 * ones. After every operation the chat cuts full history pages and signals each to its own page
 * entity, which stores it once and confirms back (chat/history.ts).
 */
import type { EntityContext } from 'durable-functions';
import { z } from 'zod';
import { confirmPage, cutPages, type PagingLimits } from '../chat/history';
import { isCurrentSchema, parseChatState, parseHistoryPage } from '../chat/schema';
import { acceptMessage, awaitApprovals, createOrUpdate, expiryDue, finishTurn, settleApproval, startNextTurn, summaryOf, type ChatState, type TurnOutcome } from '../chat/state';
import { parseChatKey } from '../chat/chatKey';
import { approvalDecisionSchema, approvalRequestSchema, turnOutcomeSchema } from '../chat/turn';
import type { TurnStreamStore } from '../chat/turnStream';
import { addTodo, removeTodo } from '../tools/todoList';
import { chatEntityId, historyPageEntityId } from './chatEntityStore';
import { decodeStorable, encodeStorable } from './storableJson';
import { parseTodoList, todoListEntityId } from './todoEntityStore';
import type { ChatInstances } from './chatInstances';
import { chatIndexEntityId } from './chatIndex';
import { chatExpiryInstanceId } from './chatExpiry';
import { turnInstanceId } from './turnOrchestration';

/** Operation inputs, validated again here because they cross a storage boundary. */
const chatOperations = {
  create: z.object({ instructions: z.string().optional(), tools: z.array(z.string()).optional() }),
  post: z.object({ messageId: z.string().min(1), message: z.string(), stream: z.boolean().optional() }),
  finishTurn: turnOutcomeSchema,
  awaitApprovals: z.object({ messageId: z.string().min(1), approvals: z.array(approvalRequestSchema) }),
  settleApproval: z.object({ messageId: z.string().min(1), toolCallId: z.string(), decision: approvalDecisionSchema }),
  pageStored: z.object({ page: z.number().int().nonnegative() }),
};
const pageOperations = {
  write: z.object({ chatId: z.string().min(1), page: z.unknown() }),
};
const todoOperations = {
  add: z.object({ toolCallId: z.string().min(1), task: z.string() }),
  remove: z.object({ toolCallId: z.string().min(1), id: z.number().int() }),
};

// A migrated long chat pages out this many pages per operation, so no batch writes unboundedly.
const MAX_PAGES_PER_OPERATION = 8;
// How long a deleted chat's last operations wait for a turn's instance to finish before purging it.
const PURGE_WAIT_MS = 2_000;

export interface ChatEntitySettings {
  historyTokenBudget: number;
  historyPageBytes: number;
  maxToolRounds: number;
  /** Every tool the app has: a chat's tools when it did not choose. */
  allTools: readonly string[];
  /** The tools whose calls wait for approval, and for how long. */
  approvalTools: readonly string[];
  approvalTimeoutMs: number;
  /** How long the chat may stay idle before it is deleted; 0: never. */
  chatTtlMs: number;
}

export interface ChatEntityPorts {
  /** The chat's instances in the task hub, through this invocation's durable client. */
  instances(context: EntityContext<unknown>): ChatInstances;
  streams(): TurnStreamStore | undefined;
  settings(): ChatEntitySettings;
  now(): Date;
}

/** Entity states as stored: escaped where they hold characters storage cannot carry (durable/storableJson.ts). */
type Stored = unknown;

export function chatEntity(ports: ChatEntityPorts) {
  return async function chat(context: EntityContext<Stored>): Promise<void> {
    // The chat's key: `<owner>:<chatId>`, or the chat id in the shared namespace (chat/chatKey.ts).
    const chatId = context.df.entityKey;
    const { owner, chatId: publicId } = parseChatKey(chatId);
    const operation = context.df.operationName;
    const stored = context.df.getState();
    const decoded = stored === undefined ? undefined : decodeStorable(stored);
    const state = decoded === undefined ? undefined : parseChatState(decoded, chatId);
    const settings = ports.settings();
    const limits: PagingLimits = { pageBytes: settings.historyPageBytes, historyTokenBudget: settings.historyTokenBudget, maxPagesPerOperation: MAX_PAGES_PER_OPERATION };
    const now = ports.now();

    // One setState per operation, after the pages due are cut.
    const save = (next: ChatState): void => {
      const paged = cutPages(next, limits);
      for (const page of paged.pages) context.df.signalEntity(historyPageEntityId(chatId, page.page), 'write', encodeStorable({ chatId, page }));
      if (paged.morePages) context.df.signalEntity(chatEntityId(chatId), 'continuePaging');
      if (paged.state === state && isCurrentSchema(decoded)) return;
      context.df.setState(encodeStorable(paged.state));
      // The owner's chat list shows the chat's title, times and size.
      const summary = summaryOf(paged.state);
      if (state === undefined || JSON.stringify(summary) !== JSON.stringify(summaryOf(state))) context.df.signalEntity(chatIndexEntityId(owner), 'upsert', { chatId: publicId, summary });
    };

    // Starts the orchestration that deletes the chat once idle too long (once per chat).
    const armExpiry = async (current: ChatState): Promise<ChatState> => {
      if (settings.chatTtlMs <= 0 || current.expiryArmed === true) return current;
      await ports.instances(context).startExpiry(chatExpiryInstanceId(chatId), chatId);
      return { ...current, expiryArmed: true };
    };

    const turnOptions = {
      chatId,
      historyTokenBudget: settings.historyTokenBudget,
      maxToolRounds: settings.maxToolRounds,
      allTools: settings.allTools,
      approvalTools: settings.approvalTools,
      approvalTimeoutMs: settings.approvalTimeoutMs,
      instanceIdOf: (id: string) => turnInstanceId(chatId, id),
    };

    // Starts the oldest queued message's turn when none runs. The orchestration is started before
    // the turn is saved: if the start fails, the message stays queued and the chat's next operation
    // starts it. A turn started by an operation that then ran again (a crash before its commit) is
    // not started twice; its outcome is recorded for the queue's head (finishTurn below).
    const startIfIdle = async (current: ChatState): Promise<ChatState> => {
      const { state: started, plan } = startNextTurn(current, turnOptions, now);
      if (plan === undefined || started.turn === undefined) return current;
      // The previous streamed turn's records are no longer needed by anyone: its reply is stored.
      if (current.streamedTurn !== undefined) await ports.streams()?.deleteTurn(chatId, current.streamedTurn).catch(() => undefined);
      await ports.instances(context).start(started.turn.instanceId, plan);
      const { streamedTurn: _previous, ...rest } = started;
      return plan.stream ? { ...rest, streamedTurn: plan.messageId } : rest;
    };

    switch (operation) {
      case 'create': {
        const input = chatOperations.create.parse(decodeStorable(context.df.getInput()));
        const created = createOrUpdate(state, input, now);
        save(await armExpiry(created).catch(() => created)); // a failed start is tried again at the next post
        return;
      }
      case 'post': {
        // A post can race a delete; a deleted chat stays deleted.
        if (state === undefined) return;
        const input = chatOperations.post.parse(decodeStorable(context.df.getInput()));
        const accepted = await armExpiry(acceptMessage(state, input, now)).catch(() => acceptMessage(state, input, now));
        try {
          save(await startIfIdle(accepted));
        } catch (err) {
          save(accepted); // accepted stays accepted
          throw err;
        }
        return;
      }
      case 'finishTurn': {
        if (state === undefined) {
          // The chat was deleted while the turn ran: nothing records it, but it must not stay in the hub.
          const { messageId } = chatOperations.finishTurn.parse(decodeStorable(context.df.getInput()));
          await ports.instances(context).purgeWhenFinished(turnInstanceId(chatId, messageId), PURGE_WAIT_MS);
          return;
        }
        const outcome = chatOperations.finishTurn.parse(decodeStorable(context.df.getInput())) as TurnOutcome;
        // The outcome of the queue's head whose start was not saved (see startIfIdle): it is that turn's.
        const current = state.turn === undefined && state.queue[0]?.id === outcome.messageId ? startNextTurn(state, turnOptions, now).state : state;
        const finished = finishTurn(current, outcome, now);
        if (finished === state) return;
        // A cancelled turn that did not stream leaves only its stop request among the stream records.
        if (outcome.end.kind === 'cancelled' && current.turn?.stream !== true) await ports.streams()?.deleteTurn(chatId, outcome.messageId).catch(() => undefined);
        // The turns that finished before this one have surely completed: purged now, beside the next
        // start. This one completes in the commit that sent its outcome, and is purged next time.
        const earlier = finished.unpurgedTurns.slice(0, -1);
        const [next, failed] = await Promise.all([startIfIdle(finished).catch((err: unknown) => ({ err })), ports.instances(context).purge(earlier)]);
        const purged = { unpurgedTurns: [...failed, ...finished.unpurgedTurns.slice(-1)] };
        if ('err' in next) {
          save({ ...finished, ...purged });
          throw next.err;
        }
        save({ ...next, ...purged });
        return;
      }
      case 'awaitApprovals': {
        if (state === undefined) return;
        const input = chatOperations.awaitApprovals.parse(decodeStorable(context.df.getInput()));
        save(awaitApprovals(state, input.messageId, input.approvals));
        return;
      }
      case 'settleApproval': {
        if (state === undefined) return;
        const input = chatOperations.settleApproval.parse(decodeStorable(context.df.getInput()));
        save(settleApproval(state, input.messageId, input.toolCallId, input.decision));
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
      // For the expiry orchestration (durable/chatExpiry.ts). The SDK's `return` marks the entity as
      // existing, so a chat that is gone answers nothing (the caller gets null) rather than `return`.
      case 'expiryDue': {
        // When the chat is due; nothing if it is gone or never expires.
        if (state !== undefined && settings.chatTtlMs > 0) context.df.return(expiryDue(state, settings.chatTtlMs, now).toISOString());
        return;
      }
      case 'expire': {
        if (state === undefined) return;
        if (settings.chatTtlMs <= 0 || expiryDue(state, settings.chatTtlMs, now) > now) {
          context.df.return(false); // used since the orchestration looked
          return;
        }
        context.df.return(true); // before deleting: deleting after it keeps the entity deleted
        await deleteChat(state, false);
        return;
      }
      case 'delete': {
        if (state === undefined) return;
        await deleteChat(state, true);
        return;
      }
      default:
        context.warn(`chat entity: unknown operation '${operation ?? ''}' ignored`);
    }

    /** Deletes the chat and everything it owns; `byRequest`: a DELETE, not its expiry orchestration (which ends by itself). */
    async function deleteChat(state: ChatState, byRequest: boolean): Promise<void> {
      const turns = ports.instances(context);
      const running = state.turn?.instanceId;
      if (running !== undefined) await turns.terminate(running);
      await Promise.all([turns.purge(state.unpurgedTurns.slice(0, -1)), ...[...state.unpurgedTurns.slice(-1), ...(running === undefined ? [] : [running])].map((id) => turns.purgeWhenFinished(id, PURGE_WAIT_MS))]);
      if (state.streamedTurn !== undefined) await ports.streams()?.deleteTurn(chatId, state.streamedTurn).catch(() => undefined);
      // Pages and the todo list are purged outright (a deleted entity would keep its rows); a page
      // whose purge fails is deleted by a signal instead. The chat's own rows go with the request
      // that deleted it (chat/service.ts) or by its expiry orchestration, as no entity can purge itself.
      const owned = [todoListEntityId(chatId), ...Array.from({ length: state.pageCount }, (_, page) => historyPageEntityId(chatId, page))];
      const failed = new Set(await turns.purge(owned.map((id) => id.toString())));
      for (const id of owned) if (failed.has(id.toString())) context.df.signalEntity(id, 'delete');
      if (byRequest && state.expiryArmed === true) {
        const expiry = chatExpiryInstanceId(chatId);
        await turns.terminate(expiry);
        await turns.purgeWhenFinished(expiry, PURGE_WAIT_MS);
      }
      context.df.signalEntity(chatIndexEntityId(owner), 'remove', { chatId: publicId });
      context.df.destructOnExit();
    }
  };
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

/** A chat's todo list: changed once per tool call id, deleted with its chat. */
export function todoListEntity(ports: { now(): Date }) {
  return function todoList(context: EntityContext<Stored>): void {
    const operation = context.df.operationName;
    const stored = context.df.getState();
    const state = parseTodoList(stored === undefined ? undefined : decodeStorable(stored));
    switch (operation) {
      case 'add': {
        const input = todoOperations.add.parse(decodeStorable(context.df.getInput()));
        context.df.setState(encodeStorable(addTodo(state, input.toolCallId, input.task, ports.now())));
        return;
      }
      case 'remove': {
        const input = todoOperations.remove.parse(decodeStorable(context.df.getInput()));
        context.df.setState(encodeStorable(removeTodo(state, input.toolCallId, input.id)));
        return;
      }
      case 'delete':
        context.df.destructOnExit();
        return;
      default:
        context.warn(`todo list entity: unknown operation '${operation ?? ''}' ignored`);
    }
  };
}

