/**
 * The chat API's rules, over injected ports: what PUT/POST/GET/DELETE do, how long a request waits
 * for the entity, and how a failed turn is answered. No Azure or HTTP imports: the HTTP handlers
 * (functions/chats.ts) parse input and map outcomes, and tests drive this with in-memory ports.
 */
import {
  ApprovalNotFoundError,
  ApprovalSettledError,
  BadRequestError,
  ChatNotFoundError,
  MessageNotAcceptedError,
  ModelFailedError,
  ModelTimeoutError,
  NoRunningTurnError,
  TurnCancelledError,
  TurnFinishedError,
} from '../errors';
import { findPagedTurn, readMessages, type HistoryPage } from './history';
import { CANCEL_EVENT, type ApprovalAnswer } from './turn';
import { tailTurn, type StreamPosition, type TurnEvent, type TurnStreamStore } from './turnStream';
import { hasMessage, replyId, replyTo, type ApprovalDecision, type ChatMessage, type ChatState, type CreateInput, type PostInput } from './state';
import { toChatView, type ChatView } from './view';
import { pageChats, type ChatListEntry, type ChatListPage } from './chatList';

export type ChatOperation = { name: 'create'; input: CreateInput } | { name: 'post'; input: PostInput } | { name: 'delete' };

/** Where chats live: the chat entities and their history pages (their durable client in production). */
export interface ChatStore {
  read(chatId: string): Promise<ChatState | undefined>;
  readPage(chatId: string, page: number): Promise<HistoryPage | undefined>;
  signal(chatId: string, operation: ChatOperation): Promise<void>;
  /** Raises an event to a turn's orchestration; an instance that no longer exists is not an error. */
  raiseTurnEvent(instanceId: string, eventName: string, data: unknown): Promise<void>;
  /** Removes what storage keeps of a deleted chat's entity (its rows in the task hub). */
  purgeDeleted(chatId: string): Promise<void>;
  /** The caller's chats, in no particular order. */
  listChats(): Promise<ChatListEntry[]>;
}

export interface ChatServicePorts {
  store: ChatStore;
  /**
   * Resolves true as soon as the chat may have something new to read (in production: a streamed
   * turn's records were stored in this process), false after `timeoutMs`. A hint only: everything
   * is re-read either way, so a port that always sleeps out the timeout is correct too.
   */
  changed(chatId: string, timeoutMs: number): Promise<boolean>;
  /** Epoch milliseconds. */
  now(): number;
  /** Throws (503) when no model is configured, so a post is refused before it is stored. */
  requireModel(): void;
  newMessageId(): string;
  /** Every tool the app has: a chat may choose among them (by default it has them all). */
  tools: readonly string[];
  /** Where streamed turns are published; without it a streamed post gets its reply when the turn is done. */
  streams?: Pick<TurnStreamStore, 'readAfter'> | undefined;
}

export interface WaitPolicy {
  /**
   * How long a post waits for its message to be stored in the chat (accepted) before answering 503:
   * a 2xx means stored. Client signals can be held up (a crashed instance's queue message stays
   * invisible for a while); the client then retries with the same message id.
   */
  acceptWaitMs: number;
  /** How long a waiting request lets a chat's queue stand still with no turn running before it restarts it. */
  stalledQueueMs: number;
  /** How long PUT waits for a new chat to exist before answering 202 instead of 201. */
  createWaitMs: number;
  /** How long DELETE waits for the chat to be gone before answering 202 instead of 204. */
  deleteWaitMs: number;
  /** Pauses between reads double from the first to the longest, and start again from the first after a hint. */
  firstPauseMs: number;
  longestPauseMs: number;
}

export const DEFAULT_WAIT_POLICY: WaitPolicy = { acceptWaitMs: 20_000, stalledQueueMs: 5_000, createWaitMs: 5_000, deleteWaitMs: 5_000, firstPauseMs: 2, longestPauseMs: 250 };

export type PostOutcome =
  | { status: 'replied'; messageId: string; reply: string }
  /** `acceptedAt`: an ISO time just before the message was accepted, for the client's timestampUTC polling. */
  | { status: 'pending'; messageId: string; acceptedAt: string };

export type ApprovalOutcome = { status: 'recorded'; approved: boolean } | { status: 'pending' };
export type CancelOutcome = { messageId: string; status: 'cancelled' | 'cancelling' };

export class ChatService {
  constructor(
    private readonly ports: ChatServicePorts,
    private readonly policy: WaitPolicy = DEFAULT_WAIT_POLICY,
  ) {}

  /** Creates the chat or updates its instructions; 'created' once the entity shows it, else 'accepted'. */
  async create(chatId: string, input: CreateInput): Promise<'created' | 'accepted'> {
    const unknown = input.tools?.filter((name) => !this.ports.tools.includes(name)) ?? [];
    if (unknown.length > 0) throw new BadRequestError('invalid_field', `Unknown tools: ${unknown.join(', ')}. This app has: ${this.ports.tools.join(', ')}.`);
    await this.ports.store.signal(chatId, { name: 'create', input });
    const applied = (state: ChatState | undefined) =>
      state !== undefined && (input.instructions === undefined || state.instructions === input.instructions) && (input.tools === undefined || JSON.stringify(state.tools) === JSON.stringify(input.tools));
    return applied(await this.waitFor(chatId, applied, this.policy.createWaitMs)) ? 'created' : 'accepted';
  }

  /**
   * Stores a user message (once per message id) and waits up to `waitMs` for its reply. A failed
   * turn is thrown as the model error it recorded (502, or 504 for a timeout).
   */
  async post(chatId: string, message: string, messageId: string | undefined, waitMs: number): Promise<PostOutcome> {
    const acceptedAt = new Date(this.ports.now() - 1).toISOString();
    const { id, state: accepted } = await this.accept(chatId, message, messageId, false);
    if (waitMs <= 0) return { status: 'pending', messageId: id, acceptedAt };

    // Done: the chat is gone, or the turn has ended (its reply is recent, or was paged out during a long wait).
    const done = (s: ChatState | undefined) => s === undefined || replyTo(s, id) !== undefined || (!isWaiting(s, id) && s.turn?.messageId !== id);
    const stalled = this.stallWatch(chatId);
    const state = done(accepted) ? accepted : await this.waitFor(chatId, (s) => (stalled(s), done(s)), waitMs, { readAtOnce: false });
    if (state === undefined) throw new ChatNotFoundError(chatId);
    const reply = (await this.turnOf(chatId, state, id))?.at(-1);
    if (reply === undefined) return { status: 'pending', messageId: id, acceptedAt };
    if (reply.status === 'cancelled') throw new TurnCancelledError(`The turn of message '${id}' was cancelled; its partial text is in the chat's history.`);
    if (reply.status === 'failed') {
      const text = `The reply to message '${id}' failed: ${reply.error ?? 'model error'}`;
      throw reply.errorCode === 'model_timeout' ? new ModelTimeoutError(text) : new ModelFailedError(text);
    }
    return { status: 'replied', messageId: id, reply: reply.content };
  }

  /**
   * Stores a user message (once per message id) and streams its turn: the stored user message, the
   * reply as it is generated, then the stored reply or the failed-turn record. `from` resumes a
   * stream a client lost. Refusals (404, 503) are thrown before anything streams.
   */
  async streamPost(chatId: string, message: string, messageId: string | undefined, from: StreamPosition | undefined): Promise<{ messageId: string; events: AsyncIterable<TurnEvent> }> {
    const { id } = await this.accept(chatId, message, messageId, true);
    return { messageId: id, events: this.followTurn(chatId, id, from) };
  }

  /** The events of the turn of a stored message, from its start (or after `from`) to its end. */
  followTurn(chatId: string, messageId: string, from?: StreamPosition): AsyncIterable<TurnEvent> {
    const { store, streams, changed, now } = this.ports;
    const stalled = this.stallWatch(chatId);
    return tailTurn(
      {
        readRecords: async (afterKey) => (streams === undefined ? [] : streams.readAfter(chatId, messageId, afterKey)),
        readChat: async () => {
          const state = await store.read(chatId);
          stalled(state);
          return state;
        },
        findTurn: (state) => this.turnOf(chatId, state, messageId),
        changed: (timeoutMs) => changed(chatId, timeoutMs),
        now,
      },
      messageId,
      from,
    );
  }

  /** The message whose turn runs now, if any. */
  async runningTurn(chatId: string): Promise<string | undefined> {
    const state = await this.ports.store.read(chatId);
    if (state === undefined) throw new ChatNotFoundError(chatId);
    return state.turn?.messageId;
  }

  /** Whether the turn of `messageId` waits now for an answer to a call of `round`. */
  async waitsForAnswer(chatId: string, messageId: string, round: number): Promise<boolean> {
    const turn = (await this.ports.store.read(chatId))?.turn;
    return turn?.messageId === messageId && (turn.approvals ?? []).some((a) => a.round === round && a.decision === undefined);
  }

  /** Creates the chat with the default instructions unless it exists (a client that names its chats). */
  async ensureExists(chatId: string): Promise<void> {
    if ((await this.ports.store.read(chatId)) === undefined) await this.create(chatId, {});
  }

  /**
   * What both kinds of post do first: refuse (no model, 503; unknown chat, 404) before anything is
   * stored, then store the message unless it is already stored (a retry), and wait until the chat
   * shows it: a post is answered 2xx only once its message is stored, in acceptance order.
   */
  private async accept(chatId: string, message: string, messageId: string | undefined, stream: boolean): Promise<{ id: string; state: ChatState }> {
    this.ports.requireModel();
    // Checked before signalling: a 404 must mean the message was not stored (the entity would store it
    // if a pending create ran first).
    const before = await this.ports.store.read(chatId);
    if (before === undefined) throw new ChatNotFoundError(chatId);
    const id = messageId ?? this.ports.newMessageId();
    if (hasMessage(before, id)) return { id, state: before };
    await this.ports.store.signal(chatId, { name: 'post', input: stream ? { messageId: id, message, stream: true } : { messageId: id, message } });
    const state = await this.waitFor(chatId, (s) => s === undefined || hasMessage(s, id), this.policy.acceptWaitMs, { readAtOnce: false });
    if (state === undefined) throw new ChatNotFoundError(chatId);
    if (!hasMessage(state, id)) throw new MessageNotAcceptedError(id);
    return { id, state };
  }

  /**
   * Watches the reads of a waiting request for a chat whose queue does not move: messages queued and
   * no turn running, for longer than a start takes. That happens only when starting a turn failed
   * (the entity keeps the message queued); the request then posts the queue's head again, which
   * stores nothing new and makes the chat start its turn.
   */
  private stallWatch(chatId: string): (state: ChatState | undefined) => void {
    let since: number | undefined;
    return (state) => {
      const head = state?.turn === undefined ? state?.queue[0] : undefined;
      if (head === undefined) {
        since = undefined;
        return;
      }
      const now = this.ports.now();
      since ??= now;
      if (now - since < this.policy.stalledQueueMs) return;
      since = now;
      const input: PostInput = head.stream === true ? { messageId: head.id, message: head.content, stream: true } : { messageId: head.id, message: head.content };
      void this.ports.store.signal(chatId, { name: 'post', input }).catch(() => undefined);
    };
  }

  /**
   * Answers a tool call that waits for approval: the answer goes to the turn's orchestration, which
   * decides (the first answer, or the expiry, wins) and tells the chat. 'recorded' once the chat shows
   * this answer decided it; a call decided otherwise, finished, or unknown is refused (409, 404).
   */
  async answerApproval(chatId: string, toolCallId: string, answer: Omit<ApprovalAnswer, 'answerId'>): Promise<ApprovalOutcome> {
    const state = await this.ports.store.read(chatId);
    if (state === undefined) throw new ChatNotFoundError(chatId);
    const turn = state.turn;
    const approval = turn?.approvals?.find((a) => a.toolCallId === toolCallId);
    if (turn === undefined || approval === undefined) {
      const decided = findDecision(state, toolCallId);
      if (decided !== undefined) throw settledError(toolCallId, decided);
      if (state.recent.some((m) => m.toolCallId === toolCallId)) throw new ApprovalSettledError(`Tool call '${toolCallId}' did not need approval and has finished.`);
      throw new ApprovalNotFoundError(chatId, toolCallId);
    }
    if (approval.decision !== undefined) throw settledError(toolCallId, approval.decision);
    const answerId = this.ports.newMessageId();
    await this.ports.store.raiseTurnEvent(turn.instanceId, approval.event, { ...answer, answerId });
    const after = await this.waitFor(chatId, (s) => s === undefined || findDecision(s, toolCallId) !== undefined || s.turn?.messageId !== turn.messageId, this.policy.acceptWaitMs, { readAtOnce: false });
    if (after === undefined) throw new ChatNotFoundError(chatId);
    const decision = findDecision(after, toolCallId);
    if (decision === undefined) {
      if (after.turn?.messageId === turn.messageId) return { status: 'pending' };
      throw new ApprovalSettledError(`The turn of tool call '${toolCallId}' ended before the answer reached it.`);
    }
    if (decision.answerId !== answerId) throw settledError(toolCallId, decision);
    return { status: 'recorded', approved: decision.approved };
  }

  /**
   * Cancels the running turn (or, given `messageId`, that message's turn if it runs): it stops at its
   * next step, keeping any partial text. 'cancelled' once the chat shows it; a turn that ended
   * otherwise first, or none running, is refused (409). Cancelling a cancelled turn again is 'cancelled'.
   */
  async cancel(chatId: string, messageId: string | undefined): Promise<CancelOutcome> {
    const state = await this.ports.store.read(chatId);
    if (state === undefined) throw new ChatNotFoundError(chatId);
    const turn = state.turn;
    if (turn === undefined || (messageId !== undefined && turn.messageId !== messageId)) {
      if (messageId === undefined) throw new NoRunningTurnError(`No turn of chat '${chatId}' is running.`);
      const reply = replyTo(state, messageId);
      if (reply?.status === 'cancelled') return { messageId, status: 'cancelled' };
      if (reply !== undefined) throw new TurnFinishedError(`The turn of message '${messageId}' has ended.`);
      throw new NoRunningTurnError(isWaiting(state, messageId) ? `Message '${messageId}' is queued; its turn has not started.` : `No turn of message '${messageId}' is running in chat '${chatId}'.`);
    }
    await this.ports.store.raiseTurnEvent(turn.instanceId, CANCEL_EVENT, {});
    const after = await this.waitFor(chatId, (s) => s === undefined || s.turn?.messageId !== turn.messageId, this.policy.acceptWaitMs, { readAtOnce: false });
    if (after === undefined) throw new ChatNotFoundError(chatId);
    if (after.turn?.messageId === turn.messageId) return { messageId: turn.messageId, status: 'cancelling' };
    const reply = (await this.turnOf(chatId, after, turn.messageId))?.at(-1);
    if (reply !== undefined && reply.status !== 'cancelled') throw new TurnFinishedError(`The turn of message '${turn.messageId}' ended before the cancel reached it.`);
    return { messageId: turn.messageId, status: 'cancelled' };
  }

  /** The caller's chats, newest activity first, a page at a time. */
  async list(limit: number, continuationToken: string | undefined): Promise<ChatListPage> {
    return pageChats(await this.ports.store.listChats(), limit, continuationToken);
  }

  async view(chatId: string, newerThanMs: number | undefined): Promise<ChatView> {
    const state = await this.ports.store.read(chatId);
    if (state === undefined) throw new ChatNotFoundError(chatId);
    return toChatView(chatId, state, await readMessages(state, (n) => this.ports.store.readPage(chatId, n), newerThanMs), this.ports.tools);
  }

  /** 'deleted' once the entity is gone, else 'deleting'. */
  async delete(chatId: string): Promise<'deleted' | 'deleting'> {
    if ((await this.ports.store.read(chatId)) === undefined) throw new ChatNotFoundError(chatId);
    await this.ports.store.signal(chatId, { name: 'delete' });
    if ((await this.waitFor(chatId, (s) => s === undefined, this.policy.deleteWaitMs)) !== undefined) return 'deleting';
    // Best effort: a chat deleted but not purged is gone all the same, only its rows stay.
    await this.ports.store.purgeDeleted(chatId).catch(() => undefined);
    return 'deleted';
  }

  /**
   * The entries of the turn of `messageId` if it is done, its reply last: stored together, so in
   * `recent` unless a long wait let them be paged out.
   */
  private async turnOf(chatId: string, state: ChatState, messageId: string): Promise<ChatMessage[] | undefined> {
    if (replyTo(state, messageId) !== undefined) return turnEntries(state.recent, messageId);
    if (!hasMessage(state, messageId) || isWaiting(state, messageId) || state.turn?.messageId === messageId) return undefined;
    return findPagedTurn(state, (n) => this.ports.store.readPage(chatId, n), messageId);
  }

  /**
   * Re-reads the chat (one bounded read: the chat entity, never its pages) until `done` holds or
   * `timeoutMs` passes; returns the last state read. Between reads it waits for a change hint or a
   * pause that doubles up to the longest. A hint comes before the new state is committed, so the
   * pauses then start again from the shortest.
   */
  private async waitFor(
    chatId: string,
    done: (state: ChatState | undefined) => boolean,
    timeoutMs: number,
    options: { readAtOnce: boolean } = { readAtOnce: true },
  ): Promise<ChatState | undefined> {
    const { ports, policy } = this;
    const deadline = ports.now() + timeoutMs;
    let pauseMs = policy.firstPauseMs;
    const pause = async (): Promise<void> => {
      const hinted = await ports.changed(chatId, Math.max(0, Math.min(pauseMs, deadline - ports.now())));
      pauseMs = hinted ? policy.firstPauseMs : Math.min(pauseMs * 2, policy.longestPauseMs);
    };
    // An operation just signalled cannot have run yet: the first read waits for a hint or a pause.
    if (!options.readAtOnce) await pause();
    for (;;) {
      const state = await ports.store.read(chatId);
      if (done(state) || deadline - ports.now() <= 0) return state;
      await pause();
    }
  }
}

/** How the approval of `toolCallId` was decided: in the running turn, or in a recent tool entry. */
function findDecision(state: ChatState, toolCallId: string): ApprovalDecision | undefined {
  const running = state.turn?.approvals?.find((a) => a.toolCallId === toolCallId)?.decision;
  if (running !== undefined) return running;
  for (let i = state.recent.length - 1; i >= 0; i--) {
    const m = state.recent[i] as ChatMessage;
    if (m.role === 'tool' && m.toolCallId === toolCallId) return m.approval;
  }
  return undefined;
}

function settledError(toolCallId: string, decision: ApprovalDecision): ApprovalSettledError {
  const how =
    decision.by === 'user' ? `was already ${decision.approved ? 'approved' : 'denied'}` : decision.by === 'timeout' ? 'expired: no answer came in time' : 'was not run: its turn was cancelled';
  return new ApprovalSettledError(`Tool call '${toolCallId}' ${how}.`, decision);
}

/** True while the message waits in the chat's queue. */
function isWaiting(state: ChatState, messageId: string): boolean {
  return state.queue.some((m) => m.id === messageId);
}

/** A turn's tool steps and reply among `messages` (they are stored together, the reply last). */
export function turnEntries(messages: readonly ChatMessage[], messageId: string): ChatMessage[] | undefined {
  const entries = messages.filter((m) => (m.role === 'assistant' || m.role === 'tool') && m.replyTo === messageId);
  return entries.at(-1)?.id === replyId(messageId) ? entries : undefined;
}
