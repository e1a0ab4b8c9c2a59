/**
 * The chat: its state and the transitions of the `chat` entity's operations (create, post).
 * Plain TypeScript — no Azure or HTTP imports, and the model only as a function passed in — so every
 * rule here is unit-tested directly.
 * Transitions return a new state; the entity stores it with one setState.
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
}

export interface ChatState {
  instructions: string;
  createdAt: string;
  lastUpdatedAt: string;
  /** Cumulative model usage (prompt + completion) of every turn. */
  totalTokens: number;
  messages: ChatMessage[];
}

/** What a turn needs from a model: the prompt in, the reply text and token usage out. */
export type TurnModel = (prompt: PromptMessage[]) => Promise<{ text: string; totalTokens: number }>;

export const DEFAULT_INSTRUCTIONS = 'You are a helpful assistant.';

export interface CreateInput {
  instructions?: string | undefined;
}

export interface PostInput {
  messageId: string;
  message: string;
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
    const messages = input.instructions === undefined ? [] : [systemMessage(1, input.instructions, at)];
    return { instructions: input.instructions ?? DEFAULT_INSTRUCTIONS, createdAt: at, lastUpdatedAt: at, totalTokens: 0, messages };
  }
  if (input.instructions === undefined || input.instructions === state.instructions) return state;
  const changedAt = latest(state, now);
  const count = state.messages.filter((m) => m.role === 'system').length;
  return { ...state, instructions: input.instructions, lastUpdatedAt: changedAt, messages: [...state.messages, systemMessage(count + 1, input.instructions, changedAt)] };
}

/** System message ids are `s-0001`, `s-0002`, ... (client-chosen message ids may not take that form). */
function systemMessage(ordinal: number, instructions: string, createdAt: string): ChatMessage {
  return { id: `s-${String(ordinal).padStart(4, '0')}`, role: 'system', content: instructions, createdAt, tokens: countMessageTokens(instructions) };
}

function hasMessage(state: ChatState, messageId: string): boolean {
  return state.messages.some((m) => m.role === 'user' && m.id === messageId);
}

/** The assistant entry that answers `messageId`, if the turn is done. */
export function replyTo(state: ChatState, messageId: string): ChatMessage | undefined {
  return state.messages.find((m) => m.role === 'assistant' && m.replyTo === messageId);
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
  const withUser: ChatState = { ...state, messages: [...state.messages, userMessage], lastUpdatedAt: userMessage.createdAt };
  const prompt = buildPrompt(withUser, options.historyTokenBudget);

  let reply: Omit<ChatMessage, 'createdAt'>;
  let usage = 0;
  try {
    const completion = await model(prompt);
    usage = completion.totalTokens;
    reply = { id: replyId(input.messageId), role: 'assistant', content: completion.text, replyTo: input.messageId, tokens: countMessageTokens(completion.text) };
  } catch (err) {
    // The SDK keeps no record of a thrown operation, so a failure becomes data the client can see.
    const message = err instanceof Error ? err.message : 'The model call failed.';
    const code = err instanceof AppError ? err.code : 'model_failed';
    reply = { id: replyId(input.messageId), role: 'assistant', content: '', replyTo: input.messageId, status: 'failed', error: message, errorCode: code, tokens: 0 };
  }
  const replyAt = latest(withUser, options.now());
  return {
    state: { ...withUser, messages: [...withUser.messages, { ...reply, createdAt: replyAt }], lastUpdatedAt: replyAt, totalTokens: state.totalTokens + usage },
    prompt,
  };
}

/**
 * The prompt of a turn: the current instructions, then the newest messages within the budget —
 * failed turns and earlier instructions (system messages) left out.
 */
export function buildPrompt(state: ChatState, historyTokenBudget: number): PromptMessage[] {
  const usable = state.messages.filter((m) => m.status !== 'failed' && m.role !== 'system');
  const window = selectHistoryWindow(usable, countMessageTokens(state.instructions), historyTokenBudget);
  return [{ role: 'system', content: state.instructions }, ...window.map((m) => ({ role: m.role, content: m.content }))];
}

function replyId(messageId: string): string {
  return `${messageId}.reply`;
}

/** Now, or 1 ms after the newest timestamp in the chat, so `timestampUTC` polling never misses a message. */
function latest(state: ChatState, now: Date): string {
  const newest = Date.parse(state.lastUpdatedAt);
  return new Date(Math.max(now.getTime(), newest + 1)).toISOString();
}
