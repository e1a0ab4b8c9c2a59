/**
 * The chat: its state and the transitions of the `chat` entity's operations (create, post).
 * Plain TypeScript — no Azure or HTTP imports, and the model only as a function passed in — so every
 * rule here is unit-tested directly.
 * The state is bounded: it holds the chat's metadata and its newest messages; older messages move to
 * history pages (chat/history.ts). Transitions return a new state; the entity stores it with one setState.
 */
import { AppError } from '../errors';
import type { PromptMessage } from '../model/client';
import { countMessageTokens } from './tokens';
import { selectHistoryWindow } from './window';

export interface ChatMessage {
  id: string;
  /** `system`: instructions a client set (at create, or where they changed); never sent as history. */
  role: 'system' | 'user' | 'assistant';
  content: string;
  /** ISO-8601 UTC with milliseconds; strictly increasing within a chat. */
  createdAt: string;
  /** Assistant messages: the id of the user message they answer. */
  replyTo?: string;
  /** Set on an assistant entry that records a failed turn. */
  status?: 'failed';
  /** What failed, for a failed turn. */
  error?: string;
  /** The stable error code of a failed turn (e.g. model_timeout), so a waiting POST can answer 502/504. */
  errorCode?: string;
  /** Tokens this message costs in a prompt, counted once when stored. */
  tokens: number;
  /** Assistant messages of a streamed turn: the attempt whose text was published (chat/turnStream.ts). */
  streamAttempt?: string;
}

export const CHAT_SCHEMA_VERSION = 2;

/** A history page that has been cut from the chat but is not yet confirmed stored. */
export interface UnconfirmedPage {
  page: number;
  /** Index in the whole history of the page's first message. */
  firstIndex: number;
}

export interface ChatState {
  schemaVersion: typeof CHAT_SCHEMA_VERSION;
  instructions: string;
  createdAt: string;
  lastUpdatedAt: string;
  /** Cumulative model usage (prompt + completion) of every turn. */
  totalTokens: number;
  /** Messages in the whole history; `recent` is its tail. */
  totalMessages: number;
  /** System messages in the whole history (they are numbered s-0001, s-0002, ...). */
  systemMessages: number;
  /**
   * The newest messages, in order: every message not yet in a confirmed page, and the older ones the
   * prompt window still needs.
   */
  recent: ChatMessage[];
  /** Pages cut so far (numbered from 0), and how many messages they hold together. */
  pageCount: number;
  pagedMessages: number;
  /** Pages cut whose storage is not yet confirmed: their messages stay in `recent` until it is. */
  unconfirmedPages: UnconfirmedPage[];
  /** The newest user message ids, oldest first: a post with one of them is a retry. */
  recentMessageIds: string[];
  /** The message whose turn was streamed last: its stream records are removed by the next turn. */
  streamedTurn?: string;
}

/** How many user message ids a chat remembers for recognising retries. */
export const REMEMBERED_MESSAGE_IDS = 100;

/** The turn a model call answers. */
export interface TurnStart {
  messageId: string;
  userCreatedAt: string;
}

export interface TurnReply {
  text: string;
  totalTokens: number;
  /** Set when the reply was streamed (published under this attempt). */
  streamAttempt?: string;
}

/** What a turn needs from a model: the prompt in, the reply text and token usage out. */
export type TurnModel = (prompt: PromptMessage[], turn: TurnStart) => Promise<TurnReply>;

/** A streamed turn that failed after part of its reply was published: the record keeps that part. */
export class StreamedTurnError extends Error {
  constructor(
    override readonly cause: unknown,
    readonly partialText: string,
    readonly streamAttempt: string,
  ) {
    super(cause instanceof Error ? cause.message : 'The model stream failed.', { cause });
  }
}

export const DEFAULT_INSTRUCTIONS = 'You are a helpful assistant.';

export interface CreateInput {
  instructions?: string | undefined;
}

export interface PostInput {
  messageId: string;
  message: string;
}

/** Index in the whole history of `recent[0]`. */
export function recentStart(state: ChatState): number {
  return state.totalMessages - state.recent.length;
}

/**
 * Creates a chat, or updates its instructions keeping its history (re-creating never wipes a chat).
 * Instructions a client gives become a `system` message in the history, as in the Functions OpenAI
 * extension: at the head when given at create, appended where they change. Without instructions the
 * chat uses the default ones and has no system message.
 */
export function createOrUpdate(state: ChatState | undefined, input: CreateInput, now: Date): ChatState {
  const at = now.toISOString();
  if (state === undefined) {
    const recent = input.instructions === undefined ? [] : [systemMessage(1, input.instructions, at)];
    return {
      schemaVersion: CHAT_SCHEMA_VERSION,
      instructions: input.instructions ?? DEFAULT_INSTRUCTIONS,
      createdAt: at,
      lastUpdatedAt: at,
      totalTokens: 0,
      totalMessages: recent.length,
      systemMessages: recent.length,
      recent,
      pageCount: 0,
      pagedMessages: 0,
      unconfirmedPages: [],
      recentMessageIds: [],
    };
  }
  if (input.instructions === undefined || input.instructions === state.instructions) return state;
  const changedAt = latest(state, now);
  const ordinal = state.systemMessages + 1;
  return {
    ...state,
    instructions: input.instructions,
    lastUpdatedAt: changedAt,
    totalMessages: state.totalMessages + 1,
    systemMessages: ordinal,
    recent: [...state.recent, systemMessage(ordinal, input.instructions, changedAt)],
  };
}

/** System message ids are `s-0001`, `s-0002`, ... (client-chosen message ids may not take that form). */
function systemMessage(ordinal: number, instructions: string, createdAt: string): ChatMessage {
  return { id: `s-${String(ordinal).padStart(4, '0')}`, role: 'system', content: instructions, createdAt, tokens: countMessageTokens(instructions) };
}

/** True when the chat has stored the user message `messageId` (its turn is then done as well). */
export function hasMessage(state: ChatState, messageId: string): boolean {
  return state.recentMessageIds.includes(messageId) || state.recent.some((m) => m.role === 'user' && m.id === messageId);
}

/** The assistant entry that answers `messageId`, if the turn is done and the entry is still recent. */
export function replyTo(state: ChatState, messageId: string): ChatMessage | undefined {
  for (let i = state.recent.length - 1; i >= 0; i--) {
    const m = state.recent[i] as ChatMessage;
    if (m.role === 'assistant' && m.replyTo === messageId) return m;
  }
  return undefined;
}

/**
 * One turn: append the user message, prompt the model with the instructions and the newest history
 * that fits `historyTokenBudget`, append its reply — or, when the model finally fails, a failed-turn
 * record. A message id already stored is a retry and changes nothing.
 */
export async function postMessage(
  state: ChatState,
  input: PostInput,
  model: TurnModel,
  options: { historyTokenBudget: number; now: () => Date },
): Promise<{ state: ChatState; prompt: PromptMessage[] | undefined }> {
  if (hasMessage(state, input.messageId)) return { state, prompt: undefined };

  const userMessage: ChatMessage = {
    id: input.messageId,
    role: 'user',
    content: input.message,
    createdAt: latest(state, options.now()),
    tokens: countMessageTokens(input.message),
  };
  const withUser: ChatState = { ...state, recent: [...state.recent, userMessage], totalMessages: state.totalMessages + 1, lastUpdatedAt: userMessage.createdAt };
  const prompt = buildPrompt(withUser, options.historyTokenBudget);

  let reply: Omit<ChatMessage, 'createdAt'>;
  let usage = 0;
  try {
    const completion = await model(prompt, { messageId: input.messageId, userCreatedAt: userMessage.createdAt });
    usage = completion.totalTokens;
    reply = { id: replyId(input.messageId), role: 'assistant', content: completion.text, replyTo: input.messageId, tokens: countMessageTokens(completion.text) };
    if (completion.streamAttempt !== undefined) reply.streamAttempt = completion.streamAttempt;
  } catch (thrown) {
    // The SDK keeps no record of a thrown operation, so a failure becomes data the client can see.
    const streamed = thrown instanceof StreamedTurnError ? thrown : undefined;
    const err = streamed?.cause ?? thrown;
    const message = err instanceof Error ? err.message : 'The model call failed.';
    const code = err instanceof AppError ? err.code : 'model_failed';
    reply = { id: replyId(input.messageId), role: 'assistant', content: streamed?.partialText ?? '', replyTo: input.messageId, status: 'failed', error: message, errorCode: code, tokens: 0 };
    if (streamed !== undefined) reply.streamAttempt = streamed.streamAttempt;
  }
  const replyAt = latest(withUser, options.now());
  return {
    state: {
      ...withUser,
      recent: [...withUser.recent, { ...reply, createdAt: replyAt }],
      totalMessages: withUser.totalMessages + 1,
      lastUpdatedAt: replyAt,
      totalTokens: state.totalTokens + usage,
      recentMessageIds: [...state.recentMessageIds, input.messageId].slice(-REMEMBERED_MESSAGE_IDS),
    },
    prompt,
  };
}

/** The messages of `recent` a prompt may carry: failed turns and earlier instructions left out. */
function promptable(messages: readonly ChatMessage[]): ChatMessage[] {
  return messages.filter((m) => m.status !== 'failed' && m.role !== 'system');
}

/** The prompt of a turn: the current instructions, then the newest recent messages within the budget. */
export function buildPrompt(state: ChatState, historyTokenBudget: number): PromptMessage[] {
  const window = selectHistoryWindow(promptable(state.recent), countMessageTokens(state.instructions), historyTokenBudget);
  return [{ role: 'system', content: state.instructions }, ...window.map((m) => ({ role: m.role, content: m.content }))];
}

/** Index in the whole history of the oldest message the next prompt may need. */
export function promptWindowStart(state: ChatState, historyTokenBudget: number): number {
  const window = selectHistoryWindow(promptable(state.recent), countMessageTokens(state.instructions), historyTokenBudget);
  const first = window[0];
  return first === undefined ? state.totalMessages : recentStart(state) + state.recent.indexOf(first);
}

function replyId(messageId: string): string {
  return `${messageId}.reply`;
}

/** Now, or 1 ms after the newest timestamp in the chat, so `timestampUTC` polling never misses a message. */
function latest(state: ChatState, now: Date): string {
  const newest = Date.parse(state.lastUpdatedAt);
  return new Date(Math.max(now.getTime(), newest + 1)).toISOString();
}
