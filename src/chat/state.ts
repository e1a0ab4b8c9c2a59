/**
 * The chat: its state and the transitions of the `chat` entity's operations. A post is accepted into
 * the chat's queue; the oldest queued message starts a turn (an orchestration, chat/turn.ts) when
 * none runs; the turn's outcome is recorded and the next one starts. Plain TypeScript — no Azure or
 * HTTP imports — so every rule here is unit-tested directly.
 * The state is bounded: it holds the chat's metadata and its newest messages; older messages move to
 * history pages (chat/history.ts). Transitions return a new state; the entity stores it with one setState.
 */
import type { PromptMessage } from '../model/client';
import { countMessageTokens } from './tokens';
import { selectHistoryWindow } from './window';

/** A call the model asked for, as stored: `arguments` is the model's JSON text, as it sent it. */
export interface ToolCallRecord {
  id: string;
  name: string;
  arguments: string;
}

export interface ChatMessage {
  id: string;
  /**
   * `system`: instructions a client set (at create, or where they changed); never sent as history.
   * `tool`: the result of one tool call of a turn.
   */
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  /** ISO-8601 UTC with milliseconds; strictly increasing within a chat. */
  createdAt: string;
  /** Assistant and tool entries: the id of the user message whose turn they belong to. */
  replyTo?: string;
  /**
   * `failed`: an assistant entry that records a failed turn, or a tool entry whose call failed (its
   * content says why). `cancelled`: the assistant entry of a cancelled turn (its content is the text
   * the model had produced). `denied`: a tool entry whose call was not approved (denied, or no answer in time).
   */
  status?: 'failed' | 'cancelled' | 'denied';
  /** What failed, for a failed or cancelled turn. */
  error?: string;
  /** The stable error code of a failed turn (e.g. model_timeout), so a waiting POST can answer 502/504. */
  errorCode?: string;
  /** Tokens this message costs in a prompt, counted once when stored. */
  tokens: number;
  /** Assistant messages of a streamed turn: the attempt whose text was published (chat/turnStream.ts). */
  streamAttempt?: string;
  /** An assistant entry of a tool round: the calls the model asked for. */
  toolCalls?: ToolCallRecord[];
  /** A tool entry: the call it answers, and the tool's name. */
  toolCallId?: string;
  name?: string;
  /** A tool entry of a call that needed approval: how it was decided. */
  approval?: ApprovalDecision;
}

/** A tool call that waits for a person's approval before it runs (its tool has `needsApproval`). */
export interface ApprovalRequest {
  toolCallId: string;
  name: string;
  arguments: string;
  round: number;
  /** The external event of the turn's orchestration that answers it. */
  event: string;
  requestedAt: string;
  /** When it counts as denied if no answer came. */
  expiresAt: string;
}

/**
 * How an approval was decided: by a person's answer (`user`), by its expiry (`timeout`), or by the
 * turn's cancellation (`cancel`). `answerId` names the answer that won, so its request can tell.
 */
export interface ApprovalDecision {
  approved: boolean;
  by: 'user' | 'timeout' | 'cancel';
  reason?: string;
  answerId?: string;
}

export interface Approval extends ApprovalRequest {
  decision?: ApprovalDecision;
}

export const CHAT_SCHEMA_VERSION = 3;

/** A history page that has been cut from the chat but is not yet confirmed stored. */
export interface UnconfirmedPage {
  page: number;
  /** Index in the whole history of the page's first message. */
  firstIndex: number;
}

/** A message accepted but not yet answered: it waits for the turns before it. */
export interface QueuedMessage {
  id: string;
  content: string;
  /** When it was accepted (ISO-8601 UTC). */
  acceptedAt: string;
  /** The client streams this turn: its reply is published as it is generated. */
  stream?: boolean;
}

/** The turn that runs now: an orchestration with a deterministic instance id. */
export interface RunningTurn {
  messageId: string;
  instanceId: string;
  startedAt: string;
  stream?: boolean;
  /** The turn's calls that needed approval, in the order they were asked for; undecided ones pause it. */
  approvals?: Approval[];
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
  /** Accepted messages waiting for their turn, in acceptance order (the order they are answered in). */
  queue: QueuedMessage[];
  /** The turn running now, if any; its user message is already in the history. */
  turn?: RunningTurn;
  /** Tools the model may call in this chat; absent: every tool the app has. */
  tools?: string[];
  /** Finished turns' orchestration instances not yet purged from the task hub. */
  unpurgedTurns: string[];
  /** The chat's first user message, shortened: its title in chat lists. */
  title?: string;
  /** Whether the orchestration that deletes the chat once idle for CHAT_TTL_DAYS was started. */
  expiryArmed?: boolean;
}

/** The longest title a chat list shows: the first user message, cut at a word where it can be. */
export const TITLE_CHARS = 80;

export function titleOf(message: string): string {
  const flat = message.replace(/\s+/g, ' ').trim();
  if (flat.length <= TITLE_CHARS) return flat;
  const cut = flat.slice(0, TITLE_CHARS - 1);
  const space = cut.lastIndexOf(' ');
  return `${space > TITLE_CHARS / 2 ? cut.slice(0, space) : cut}…`;
}

/** A chat as a list shows it. */
export interface ChatSummary {
  title: string;
  createdAt: string;
  lastUpdatedAt: string;
  messageCount: number;
}

export function summaryOf(state: ChatState): ChatSummary {
  return { title: state.title ?? '', createdAt: state.createdAt, lastUpdatedAt: state.lastUpdatedAt, messageCount: state.totalMessages };
}

/** When an idle chat is due to be deleted: `ttlMs` after its last change; a chat with work in hand is not idle. */
export function expiryDue(state: ChatState, ttlMs: number, now: Date): Date {
  const busy = state.turn !== undefined || state.queue.length > 0;
  return new Date((busy ? now.getTime() : Date.parse(state.lastUpdatedAt)) + ttlMs);
}

/** How many user message ids a chat remembers for recognising retries. */
export const REMEMBERED_MESSAGE_IDS = 100;

export const DEFAULT_INSTRUCTIONS = 'You are a helpful assistant.';

export interface CreateInput {
  instructions?: string | undefined;
  /** Tool names the model may call; undefined keeps the chat's choice (at create: every tool). */
  tools?: string[] | undefined;
}

export interface PostInput {
  messageId: string;
  message: string;
  stream?: boolean;
}

/** Index in the whole history of `recent[0]`. */
export function recentStart(state: ChatState): number {
  return state.totalMessages - state.recent.length;
}

/**
 * Creates a chat, or updates its instructions and tools keeping its history (re-creating never wipes a
 * chat). Instructions a client gives become a `system` message in the history, as in the Functions
 * OpenAI extension: at the head when given at create, appended where they change. Without
 * instructions the chat uses the default ones and has no system message.
 */
export function createOrUpdate(state: ChatState | undefined, input: CreateInput, now: Date): ChatState {
  const at = now.toISOString();
  if (state === undefined) {
    const recent = input.instructions === undefined ? [] : [systemMessage(1, input.instructions, at)];
    const created: ChatState = {
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
      queue: [],
      unpurgedTurns: [],
    };
    if (input.tools !== undefined) created.tools = [...input.tools];
    return created;
  }
  const withTools = input.tools === undefined || sameList(input.tools, state.tools) ? state : { ...state, tools: [...input.tools] };
  if (input.instructions === undefined || input.instructions === state.instructions) return withTools;
  const changedAt = latest(state, now);
  const ordinal = state.systemMessages + 1;
  return {
    ...withTools,
    instructions: input.instructions,
    lastUpdatedAt: changedAt,
    totalMessages: state.totalMessages + 1,
    systemMessages: ordinal,
    recent: [...state.recent, systemMessage(ordinal, input.instructions, changedAt)],
  };
}

function sameList(a: readonly string[], b: readonly string[] | undefined): boolean {
  return b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** System message ids are `s-0001`, `s-0002`, ... (client-chosen message ids may not take that form). */
function systemMessage(ordinal: number, instructions: string, createdAt: string): ChatMessage {
  return { id: `s-${String(ordinal).padStart(4, '0')}`, role: 'system', content: instructions, createdAt, tokens: countMessageTokens(instructions) };
}

/** True when the chat has accepted the user message `messageId` (queued, answering, or answered). */
export function hasMessage(state: ChatState, messageId: string): boolean {
  return (
    state.queue.some((m) => m.id === messageId) ||
    state.recentMessageIds.includes(messageId) ||
    state.recent.some((m) => m.role === 'user' && m.id === messageId)
  );
}

/** The id of the assistant entry that ends the turn of `messageId` (its reply, or its failed-turn record). */
export function replyId(messageId: string): string {
  return `${messageId}.reply`;
}

/** The entry ids of a turn's tool steps: round `r`'s assistant entry, and the result of its `k`-th call. */
function stepId(messageId: string, round: number, call?: number): string {
  return call === undefined ? `${replyId(messageId)}.${round}` : `${replyId(messageId)}.${round}.${call}`;
}

/** The assistant entry that ends the turn of `messageId`, if the turn is done and the entry is still recent. */
export function replyTo(state: ChatState, messageId: string): ChatMessage | undefined {
  const id = replyId(messageId);
  for (let i = state.recent.length - 1; i >= 0; i--) {
    const m = state.recent[i] as ChatMessage;
    if (m.id === id) return m;
  }
  return undefined;
}

/** Appends a message to the queue, once per message id (a message already accepted is a retry). */
export function acceptMessage(state: ChatState, input: PostInput, now: Date): ChatState {
  if (hasMessage(state, input.messageId)) return state;
  const queued: QueuedMessage = { id: input.messageId, content: input.message, acceptedAt: latestQueued(state, now) };
  if (input.stream === true) queued.stream = true;
  return { ...state, queue: [...state.queue, queued], ...(state.title === undefined ? { title: titleOf(input.message) } : {}) };
}

/** What a turn's orchestration is started with: everything it needs, so it reads nothing else. */
export interface TurnPlan {
  chatId: string;
  messageId: string;
  /** The instructions, the history window and the user message. */
  prompt: PromptMessage[];
  /** Tool names the model may call (empty: none). */
  tools: string[];
  /** Those of `tools` whose calls wait for approval. */
  approvalTools: string[];
  /** How long a call waits for its approval before it counts as denied. */
  approvalTimeoutMs: number;
  stream: boolean;
  userCreatedAt: string;
  maxToolRounds: number;
}

export interface TurnOptions {
  chatId: string;
  historyTokenBudget: number;
  maxToolRounds: number;
  /** Every tool the app has, in order: the tools of a chat that did not choose. */
  allTools: readonly string[];
  /** The tools whose calls wait for approval. */
  approvalTools: readonly string[];
  approvalTimeoutMs: number;
  /** The deterministic orchestration instance id of a turn. */
  instanceIdOf: (messageId: string) => string;
}

/**
 * Starts the turn of the oldest queued message when no turn runs: the message enters the history
 * and the chat records the running turn. `plan` is undefined when nothing is to start.
 */
export function startNextTurn(state: ChatState, options: TurnOptions, now: Date): { state: ChatState; plan: TurnPlan | undefined } {
  const head = state.queue[0];
  if (state.turn !== undefined || head === undefined) return { state, plan: undefined };
  const createdAt = latest(state, now);
  const user: ChatMessage = { id: head.id, role: 'user', content: head.content, createdAt, tokens: countMessageTokens(head.content) };
  const turn: RunningTurn = { messageId: head.id, instanceId: options.instanceIdOf(head.id), startedAt: createdAt };
  if (head.stream === true) turn.stream = true;
  const next: ChatState = {
    ...state,
    queue: state.queue.slice(1),
    turn,
    recent: [...state.recent, user],
    totalMessages: state.totalMessages + 1,
    lastUpdatedAt: createdAt,
    recentMessageIds: [...state.recentMessageIds, head.id].slice(-REMEMBERED_MESSAGE_IDS),
  };
  const tools = state.tools ?? [...options.allTools];
  return {
    state: next,
    plan: {
      chatId: options.chatId,
      messageId: head.id,
      prompt: buildPrompt(next, options.historyTokenBudget),
      tools,
      approvalTools: tools.filter((name) => options.approvalTools.includes(name)),
      approvalTimeoutMs: options.approvalTimeoutMs,
      stream: head.stream === true,
      userCreatedAt: createdAt,
      maxToolRounds: options.maxToolRounds,
    },
  };
}

/** One tool round of a turn: what the model said and asked for, and what each call returned. */
export interface ToolRound {
  text: string;
  toolCalls: ToolCallRecord[];
  results: ToolResult[];
  streamAttempt?: string;
}

export interface ToolResult {
  toolCallId: string;
  name: string;
  content: string;
  failed: boolean;
  /** A call that needed approval: how it was decided (not approved: it did not run, and `failed` is true). */
  approval?: ApprovalDecision;
}

/**
 * How a turn ended: a reply, a failure the client can see, or a cancellation; the last two with any
 * text the model had produced.
 */
export type TurnEnd = { kind: 'replied'; text: string } | { kind: 'failed'; code: string; message: string; partialText: string } | { kind: 'cancelled'; partialText: string };

export const CANCELLED_TURN_MESSAGE = 'The turn was cancelled.';

export interface TurnOutcome {
  messageId: string;
  rounds: ToolRound[];
  end: TurnEnd;
  totalTokens: number;
  /** The attempt whose text of the last model call was published, for a streamed turn. */
  streamAttempt?: string;
}

/**
 * Records a finished turn: its tool rounds, then its reply or failed-turn record, and frees the chat
 * for the next turn. An outcome for a turn that is not the running one (a repeat) changes nothing.
 */
export function finishTurn(state: ChatState, outcome: TurnOutcome, now: Date): ChatState {
  if (state.turn?.messageId !== outcome.messageId) return state;
  const messageId = outcome.messageId;
  let at = state.lastUpdatedAt;
  const stamp = (): string => (at = latest({ lastUpdatedAt: at }, now));
  const entries: ChatMessage[] = [];
  outcome.rounds.forEach((round, r) => {
    const call: ChatMessage = { id: stepId(messageId, r + 1), role: 'assistant', content: round.text, createdAt: stamp(), replyTo: messageId, toolCalls: round.toolCalls, tokens: toolCallTokens(round.text, round.toolCalls) };
    if (round.streamAttempt !== undefined) call.streamAttempt = round.streamAttempt;
    entries.push(call);
    round.results.forEach((result, k) => {
      const entry: ChatMessage = { id: stepId(messageId, r + 1, k + 1), role: 'tool', content: result.content, createdAt: stamp(), replyTo: messageId, toolCallId: result.toolCallId, name: result.name, tokens: countMessageTokens(result.content) };
      if (result.approval !== undefined) entry.approval = result.approval;
      if (result.approval?.approved === false && result.approval.by !== 'cancel') entry.status = 'denied';
      else if (result.failed) entry.status = 'failed';
      entries.push(entry);
    });
  });
  const end = outcome.end;
  const reply: ChatMessage =
    end.kind === 'replied'
      ? { id: replyId(messageId), role: 'assistant', content: end.text, createdAt: stamp(), replyTo: messageId, tokens: countMessageTokens(end.text) }
      : end.kind === 'failed'
        ? { id: replyId(messageId), role: 'assistant', content: end.partialText, createdAt: stamp(), replyTo: messageId, status: 'failed', error: end.message, errorCode: end.code, tokens: 0 }
        : { id: replyId(messageId), role: 'assistant', content: end.partialText, createdAt: stamp(), replyTo: messageId, status: 'cancelled', error: CANCELLED_TURN_MESSAGE, errorCode: 'cancelled', tokens: 0 };
  if (outcome.streamAttempt !== undefined) reply.streamAttempt = outcome.streamAttempt;
  entries.push(reply);
  const { turn, ...rest } = state;
  return {
    ...rest,
    recent: [...state.recent, ...entries],
    totalMessages: state.totalMessages + entries.length,
    lastUpdatedAt: at,
    totalTokens: state.totalTokens + outcome.totalTokens,
    unpurgedTurns: [...state.unpurgedTurns, turn.instanceId],
  };
}

function toolCallTokens(text: string, calls: readonly ToolCallRecord[]): number {
  return countMessageTokens(text + calls.map((c) => `${c.name}${c.arguments}`).join(''));
}

/**
 * The messages of `recent` a prompt may carry: failed and cancelled turns' replies and earlier
 * instructions left out (a failed or denied tool call stays: the model saw its result).
 */
function promptable(messages: readonly ChatMessage[]): ChatMessage[] {
  return messages.filter((m) => m.role !== 'system' && !(m.role === 'assistant' && (m.status === 'failed' || m.status === 'cancelled')));
}

/**
 * The window of promptable messages within the budget. A window never starts with tool results:
 * the model must see the call a result answers, so results cut from their call are left out too.
 */
function promptWindow(state: ChatState, historyTokenBudget: number): ChatMessage[] {
  const window = selectHistoryWindow(promptable(state.recent), countMessageTokens(state.instructions), historyTokenBudget);
  const firstNonTool = window.findIndex((m) => m.role !== 'tool');
  return firstNonTool <= 0 ? window : window.slice(firstNonTool);
}

/** The prompt of a turn: the current instructions, then the newest recent messages within the budget. */
export function buildPrompt(state: ChatState, historyTokenBudget: number): PromptMessage[] {
  return [{ role: 'system', content: state.instructions }, ...promptWindow(state, historyTokenBudget).map(toPromptMessage)];
}

export function toPromptMessage(m: ChatMessage): PromptMessage {
  if (m.role === 'tool') return { role: 'tool', toolCallId: m.toolCallId ?? '', content: m.content };
  if (m.role === 'assistant' && m.toolCalls !== undefined) return { role: 'assistant', content: m.content, toolCalls: m.toolCalls };
  return { role: m.role, content: m.content };
}

/** Index in the whole history of the oldest message the next prompt may need. */
export function promptWindowStart(state: ChatState, historyTokenBudget: number): number {
  const first = promptWindow(state, historyTokenBudget)[0];
  return first === undefined ? state.totalMessages : recentStart(state) + state.recent.indexOf(first);
}

/** Records the approvals a running turn waits for (a repeat of one already recorded changes nothing). */
export function awaitApprovals(state: ChatState, messageId: string, requests: readonly ApprovalRequest[]): ChatState {
  const turn = state.turn;
  if (turn?.messageId !== messageId) return state;
  const known = new Set((turn.approvals ?? []).map((a) => a.toolCallId));
  const added = requests.filter((r) => !known.has(r.toolCallId));
  if (added.length === 0) return state;
  return { ...state, turn: { ...turn, approvals: [...(turn.approvals ?? []), ...added] } };
}

/** Records how the running turn decided an approval (the first decision stands). */
export function settleApproval(state: ChatState, messageId: string, toolCallId: string, decision: ApprovalDecision): ChatState {
  const turn = state.turn;
  const approvals = turn?.messageId === messageId ? turn.approvals : undefined;
  if (turn === undefined || approvals === undefined || !approvals.some((a) => a.toolCallId === toolCallId && a.decision === undefined)) return state;
  return { ...state, turn: { ...turn, approvals: approvals.map((a) => (a.toolCallId === toolCallId && a.decision === undefined ? { ...a, decision } : a)) } };
}

/** Now, or 1 ms after the newest timestamp in the chat, so `timestampUTC` polling never misses a message. */
function latest(state: Pick<ChatState, 'lastUpdatedAt'>, now: Date): string {
  const newest = Date.parse(state.lastUpdatedAt);
  return new Date(Math.max(now.getTime(), newest + 1)).toISOString();
}

/** Acceptance times increase along the queue, so a queue is in acceptance order by time too. */
function latestQueued(state: ChatState, now: Date): string {
  const last = state.queue.at(-1);
  return last === undefined ? now.toISOString() : latest({ lastUpdatedAt: last.acceptedAt }, now);
}
