/**
 * The chat service (src/chat/service.ts) over in-memory ports, and the durable chat store's retry
 * policy (src/durable/chatEntityStore.ts) over a durable client that fails on demand; the HTTP
 * adapters (functions/chats.ts) over a service whose store is down, or whose signals are held up.
 */
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { ChatService, DEFAULT_WAIT_POLICY, type ChatOperation, type ChatServicePorts, type ChatStore } from '../../src/chat/service';
import { confirmPage, cutPages, type HistoryPage } from '../../src/chat/history';
import { acceptMessage, awaitApprovals, createOrUpdate, finishTurn, hasMessage, settleApproval, startNextTurn, summaryOf, type ChatState, type TurnOutcome, type TurnPlan } from '../../src/chat/state';
import { approvalAnswerSchema, CANCEL_EVENT } from '../../src/chat/turn';
import { durableChatStore, isTransientDurableFailure, type DurableClient } from '../../src/durable/chatEntityStore';
import {
  ApprovalNotFoundError,
  ApprovalSettledError,
  BadRequestError,
  ChatNotFoundError,
  ChatStoreUnavailableError,
  MessageNotAcceptedError,
  ModelFailedError,
  ModelNotConfiguredError,
  ModelTimeoutError,
  NoRunningTurnError,
  TurnCancelledError,
  TurnFinishedError,
} from '../../src/errors';
import { chatHandlers } from '../../src/functions/chats';
import { handleErrors } from '../../src/http/respond';
import { decodeStorable, encodeStorable } from '../../src/durable/storableJson';
import { ALL_TOOLS, echo, failedTurn, outcomeOf, turnOptions, type TurnScript } from '../support/turns';
/**
 * Chats in memory, run as the chat entity runs them: a signal is applied when it is delivered (a post
 * is queued, and started when no turn runs, with the entity's paging: small pages, stored and
 * confirmed at once), and a running turn ends when the test (or the change hint) finishes it with the
 * scripted model. A fake clock: a wait in which nothing happens takes no time.
 */
class MemoryChats {
  readonly chats = new Map<string, ChatState>();
  readonly pages = new Map<string, HistoryPage>();
  /** Every signal sent, in order. */
  readonly signals: ChatOperation['name'][] = [];
  readonly purgedDeleted: string[] = [];
  /** Signals sent but not yet delivered. */
  private undelivered: { chatId: string; operation: ChatOperation }[] = [];
  /** Signals stay undelivered (a crashed instance's queue message is invisible for a while). */
  holdSignals = false;
  /** Running turns end at every change hint; false: only when the test finishes them. */
  finishTurnsOnHint = true;
  /** The service's waits are answered by the test (nextWait/release) instead of at once. */
  manualHints = false;
  clock = Date.parse('2026-01-15T22:00:00.000Z');
  private waiting: { resolve: (hinted: boolean) => void } | undefined;
  private onWait: (() => void) | undefined;
  private readonly limits = { pageBytes: 1_000, historyTokenBudget: 200, maxPagesPerOperation: 8 };

  constructor(private readonly script: TurnScript = echo) {}

  readonly store: ChatStore = {
    read: async (chatId) => this.chats.get(chatId),
    readPage: async (chatId, page) => this.pages.get(`${chatId}~${page}`),
    signal: async (chatId, operation) => {
      this.signals.push(operation.name);
      this.undelivered.push({ chatId, operation: JSON.parse(JSON.stringify(operation)) as ChatOperation });
    },
    raiseTurnEvent: async (instanceId, eventName, data) => void this.turnEvents.push({ instanceId, eventName, data }),
    purgeDeleted: async (chatId) => void this.purgedDeleted.push(chatId),
    listChats: async () => [...this.chats].map(([id, state]) => ({ id, ...summaryOf(state) })),
  };

  /** Events raised to turns' orchestrations and not yet delivered: delivered with the signals. */
  private turnEvents: { instanceId: string; eventName: string; data: unknown }[] = [];

  readonly now = () => this.clock;

  /** The change hint: in auto mode, delivers and runs what is due, or else lets the wait's time pass. */
  readonly changed = (_chatId: string, timeoutMs: number): Promise<boolean> => {
    if (this.manualHints) {
      return new Promise<boolean>((resolve) => {
        this.waiting = { resolve };
        this.onWait?.();
      });
    }
    const progressed = this.deliver() + (this.finishTurnsOnHint ? this.finishTurns() : 0) > 0;
    if (!progressed) this.clock += timeoutMs;
    return Promise.resolve(progressed);
  };

  /** Resolves once the service waits for a change hint (manual mode). */
  nextWait(): Promise<void> {
    if (this.waiting !== undefined) return Promise.resolve();
    return new Promise<void>((resolve) => (this.onWait = resolve));
  }

  /** Answers the service's wait: with a hint after delivering the signals, or with none. */
  release(options: { deliver: boolean }): void {
    const waiting = this.waiting;
    if (waiting === undefined) throw new Error('The service is not waiting.');
    this.waiting = undefined;
    this.onWait = undefined;
    if (options.deliver) this.deliver();
    waiting.resolve(options.deliver);
  }

  /** Applies the undelivered signals in order (unless held); returns how many. */
  deliver(): number {
    if (this.holdSignals) return 0;
    const due = this.undelivered.splice(0);
    const events = this.turnEvents.splice(0);
    for (const { chatId, operation } of due) {
      const state = this.chats.get(chatId);
      if (operation.name === 'create') this.save(chatId, createOrUpdate(state, operation.input, new Date(this.clock)));
      else if (operation.name === 'delete') this.chats.delete(chatId);
      else if (state !== undefined) this.save(chatId, this.startIfIdle(chatId, acceptMessage(state, operation.input, new Date(this.clock))));
    }
    for (const event of events) this.deliverTurnEvent(event);
    return due.length + events.length;
  }

  /**
   * What a turn's orchestration does with an event: a cancel ends the turn as cancelled (keeping the
   * text it had), an answer decides its approval; events for turns that ended are dropped.
   */
  private deliverTurnEvent({ instanceId, eventName, data }: { instanceId: string; eventName: string; data: unknown }): void {
    for (const [chatId, state] of this.chats) {
      const turn = state.turn;
      if (turn?.instanceId !== instanceId) continue;
      if (eventName === CANCEL_EVENT) {
        const outcome: TurnOutcome = { messageId: turn.messageId, rounds: [], end: { kind: 'cancelled', partialText: 'Half an ans' }, totalTokens: 0 };
        this.save(chatId, this.startIfIdle(chatId, finishTurn(state, outcome, new Date(this.clock))));
        return;
      }
      const approval = turn.approvals?.find((a) => a.event === eventName);
      const answer = approvalAnswerSchema.parse(data);
      if (approval !== undefined) this.save(chatId, settleApproval(state, turn.messageId, approval.toolCallId, { ...answer, by: 'user' }));
    }
  }

  /** Ends every running turn with the scripted model's answer, and the turns queued behind them; returns how many. */
  finishTurns(): number {
    let finished = 0;
    for (const [chatId, state] of this.chats) {
      let current = state;
      for (let plan = this.plans.get(current.turn?.messageId ?? ''); plan !== undefined; plan = this.plans.get(current.turn?.messageId ?? '')) {
        current = this.startIfIdle(chatId, finishTurn(current, outcomeOf(plan, this.script(plan.prompt, plan)), new Date(this.clock)));
        finished++;
      }
      this.save(chatId, current);
    }
    return finished;
  }

  /** What each turn was started with. */
  private readonly plans = new Map<string, TurnPlan>();

  private startIfIdle(chatId: string, state: ChatState): ChatState {
    const { state: started, plan } = startNextTurn(state, turnOptions({ chatId, historyTokenBudget: this.limits.historyTokenBudget }), new Date(this.clock));
    if (plan !== undefined) this.plans.set(plan.messageId, plan);
    return started;
  }

  private save(chatId: string, next: ChatState): void {
    const cut = cutPages(next, this.limits);
    let state = cut.state;
    for (const page of cut.pages) {
      this.pages.set(`${chatId}~${page.page}`, page);
      state = confirmPage(state, page.page, this.limits.historyTokenBudget);
    }
    this.chats.set(chatId, state);
  }
}

const SHORT_WAITS = { ...DEFAULT_WAIT_POLICY, createWaitMs: 200, deleteWaitMs: 200 };

function serviceOver(memory: MemoryChats, options: { modelConfigured?: boolean; ports?: Partial<ChatServicePorts> } = {}) {
  return new ChatService(
    {
      store: memory.store,
      changed: memory.changed,
      now: memory.now,
      requireModel: () => {
        if (options.modelConfigured === false) throw new ModelNotConfiguredError();
      },
      newMessageId: () => 'generated-id',
      tools: ALL_TOOLS,
      ...options.ports,
    },
    SHORT_WAITS,
  );
}

/** Whether a promise has settled, without waiting for it. */
function settledFlag(promise: Promise<unknown>): () => boolean {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  return () => settled;
}

describe('ChatService', () => {
  it('creates a chat (created once the entity shows it) and answers a post with its reply', async () => {
    const memory = new MemoryChats();
    const service = serviceOver(memory);
    expect(await service.create('c', { instructions: 'Be brief.' })).toBe('created');
    expect(await service.post('c', 'hello', 'k1', 5_000)).toEqual({ status: 'replied', messageId: 'k1', reply: 're: hello' });
    // The instructions (a system message), the message and its reply.
    expect((await service.view('c', undefined)).totalMessages).toBe(3);
  });

  it('answers pending with a wait of 0 once the message is stored, with a generated id and a time before the signal', async () => {
    const memory = new MemoryChats();
    memory.finishTurnsOnHint = false;
    const service = serviceOver(memory);
    await service.create('c', {});
    const before = memory.clock;
    const outcome = await service.post('c', 'hello', undefined, 0);
    expect(outcome).toMatchObject({ status: 'pending', messageId: 'generated-id' });
    expect(Date.parse(outcome.status === 'pending' ? outcome.acceptedAt : '')).toBeLessThan(before);
    expect(memory.signals).toEqual(['create', 'post']);
    expect(memory.chats.get('c')?.turn?.messageId).toBe('generated-id');
  });

  it('answers a post only once its message is stored in the chat', async () => {
    const memory = new MemoryChats();
    const service = serviceOver(memory);
    await service.create('c', {});
    memory.manualHints = true;
    const posting = service.post('c', 'hello', 'k', 0);
    const answered = settledFlag(posting);
    // The signal is sent, but not delivered: the post keeps waiting, however often it looks.
    for (let i = 0; i < 3; i++) {
      await memory.nextWait();
      expect(answered()).toBe(false);
      expect(hasMessage(memory.chats.get('c') as ChatState, 'k')).toBe(false);
      memory.release({ deliver: false });
    }
    await memory.nextWait();
    memory.release({ deliver: true });
    expect(await posting).toMatchObject({ status: 'pending', messageId: 'k' });
    expect(memory.chats.get('c')?.turn?.messageId).toBe('k');
  });

  it('answers 503 not_accepted when the message is not stored within acceptWaitMs, and a retry with the same id stores it once', async () => {
    const memory = new MemoryChats();
    const service = serviceOver(memory);
    await service.create('c', {});
    memory.holdSignals = true;
    const started = memory.clock;
    const refused = await service.post('c', 'hello', 'k', 5_000).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(MessageNotAcceptedError);
    expect(refused).toMatchObject({ status: 503, code: 'not_accepted', headers: { 'Retry-After': '1' }, messageId: 'k' });
    expect(memory.clock - started).toBeGreaterThanOrEqual(DEFAULT_WAIT_POLICY.acceptWaitMs);
    expect(memory.clock - started).toBeLessThan(DEFAULT_WAIT_POLICY.acceptWaitMs + DEFAULT_WAIT_POLICY.longestPauseMs);
    // The retry comes before the first signal is delivered: it signals again, and both arrive.
    memory.holdSignals = false;
    expect(await service.post('c', 'hello', 'k', 5_000)).toEqual({ status: 'replied', messageId: 'k', reply: 're: hello' });
    expect(memory.signals).toEqual(['create', 'post', 'post']);
    const chat = memory.chats.get('c') as ChatState;
    expect(chat.recent.map((m) => m.id)).toEqual(['k', 'k.reply']);
    expect(chat.queue).toEqual([]);
    // Once stored, a retry signals nothing.
    expect(await service.post('c', 'hello', 'k', 5_000)).toMatchObject({ status: 'replied' });
    expect(memory.signals).toHaveLength(3);
  });

  it('refuses a streamed post whose message is not stored in time before streaming anything', async () => {
    const memory = new MemoryChats();
    const service = serviceOver(memory);
    await service.create('c', {});
    memory.holdSignals = true;
    await expect(service.streamPost('c', 'hello', 'k', undefined)).rejects.toBeInstanceOf(MessageNotAcceptedError);
  });

  it('shows messages waiting behind a running turn as pending, in order, until their turns end', async () => {
    const memory = new MemoryChats();
    memory.finishTurnsOnHint = false;
    const service = serviceOver(memory);
    await service.create('c', { tools: ['get_current_time'] });
    for (const id of ['a', 'b', 'c']) expect(await service.post('c', `message ${id}`, id, 0)).toMatchObject({ status: 'pending', messageId: id });
    const busy = await service.view('c', undefined);
    expect(busy.runningTurn).toMatchObject({ messageId: 'a' });
    expect(busy.pendingMessages.map((m) => [m.id, m.content])).toEqual([
      ['b', 'message b'],
      ['c', 'message c'],
    ]);
    expect(busy.recentMessages.map((m) => m.id)).toEqual(['a']);
    expect(busy.tools).toEqual(['get_current_time']);
    // A post waiting for the reply to a queued message gets it once the turns before it have ended.
    memory.finishTurnsOnHint = true;
    expect(await service.post('c', 'message c', 'c', 5_000)).toEqual({ status: 'replied', messageId: 'c', reply: 're: message c' });
    const idle = await service.view('c', undefined);
    expect(idle.pendingMessages).toEqual([]);
    expect(idle.runningTurn).toBeUndefined();
    expect(idle.recentMessages.map((m) => m.id)).toEqual(['a', 'a.reply', 'b', 'b.reply', 'c', 'c.reply']);
  });

  it('restarts a chat whose queue stands still with no turn running (its start failed) from a waiting request', async () => {
    const memory = new MemoryChats();
    const service = serviceOver(memory);
    await service.create('c', {});
    // Accepted, but starting its turn failed: the entity kept it queued with no turn running.
    memory.chats.set('c', acceptMessage(memory.chats.get('c') as ChatState, { messageId: 'a', message: 'stuck' }, new Date(memory.clock)));
    expect(await service.post('c', 'stuck', 'a', 30_000)).toEqual({ status: 'replied', messageId: 'a', reply: 're: stuck' });
    // The retry itself signalled nothing (the message was stored); the stalled queue got one post again.
    expect(memory.signals).toEqual(['create', 'post']);
  });

  it('answers pending when the turn has not ended within the wait', async () => {
    const memory = new MemoryChats();
    memory.finishTurnsOnHint = false;
    const service = serviceOver(memory);
    await service.create('c', {});
    expect(await service.post('c', 'hello', 'k', 2_000)).toMatchObject({ status: 'pending', messageId: 'k' });
  });

  it.each([
    ['model_timeout', ModelTimeoutError],
    ['model_failed', ModelFailedError],
    ['tool_round_limit', ModelFailedError],
  ])('throws a failed turn (%s) as the model error it recorded', async (code, errorClass) => {
    const memory = new MemoryChats(() => failedTurn(code, 'It went wrong.'));
    const service = serviceOver(memory);
    await service.create('c', {});
    await expect(service.post('c', 'hello', 'k', 5_000)).rejects.toBeInstanceOf(errorClass);
    // The failed-turn record stays in the chat either way.
    expect(memory.chats.get('c')?.recent.map((m) => m.status)).toEqual([undefined, 'failed']);
  });

  it('answers with the reply of a turn that used tools, not a tool step', async () => {
    const memory = new MemoryChats(() => ({
      rounds: [{ text: 'checking', toolCalls: [{ id: 't1', name: 'get_current_time', arguments: '{}' }], results: [{ toolCallId: 't1', name: 'get_current_time', content: '{"utc":"x"}', failed: false }] }],
      end: { kind: 'replied', text: 'It is x.' },
    }));
    const service = serviceOver(memory);
    await service.create('c', {});
    expect(await service.post('c', 'what time?', 'k', 5_000)).toEqual({ status: 'replied', messageId: 'k', reply: 'It is x.' });
  });

  it('refuses a post to an unknown chat, or without a model, before storing anything', async () => {
    const memory = new MemoryChats();
    await expect(serviceOver(memory).post('nope', 'hi', 'k', 1_000)).rejects.toBeInstanceOf(ChatNotFoundError);
    await serviceOver(memory).create('c', {});
    await expect(serviceOver(memory, { modelConfigured: false }).post('c', 'hi', 'k', 1_000)).rejects.toBeInstanceOf(ModelNotConfiguredError);
    expect(memory.signals).toEqual(['create']);
  });

  it('answers 404 for a post whose chat is deleted before its message is stored', async () => {
    const memory = new MemoryChats();
    const service = serviceOver(memory);
    await service.create('c', {});
    memory.manualHints = true;
    const posting = service.post('c', 'hi', 'k', 5_000);
    await memory.nextWait();
    memory.chats.delete('c');
    memory.release({ deliver: true });
    await expect(posting).rejects.toBeInstanceOf(ChatNotFoundError);
  });

  it('refuses tools the app does not have at create, and keeps the chat’s choice', async () => {
    const memory = new MemoryChats();
    const service = serviceOver(memory);
    await expect(service.create('c', { tools: ['get_current_time', 'launch_rockets'] })).rejects.toMatchObject({ status: 400, code: 'invalid_field', message: expect.stringContaining('launch_rockets') });
    await expect(service.create('c', { tools: ['nope'] })).rejects.toBeInstanceOf(BadRequestError);
    expect(memory.signals).toEqual([]);
    expect(await service.create('c', { tools: ['get_todos'] })).toBe('created');
    expect((await service.view('c', undefined)).tools).toEqual(['get_todos']);
    expect(await service.create('d', {})).toBe('created');
    expect((await service.view('d', undefined)).tools).toEqual([...ALL_TOOLS]);
  });

  it('reads a history that grew over many pages complete and in order, and since a timestamp from the pages it needs', async () => {
    const memory = new MemoryChats();
    const service = serviceOver(memory);
    await service.create('c', { instructions: 'Be brief.' });
    for (let i = 0; i < 40; i++) expect(await service.post('c', `message ${i} ${'words and more words '.repeat(5)}`, `m${i}`, 5_000)).toMatchObject({ status: 'replied' });
    const chat = memory.chats.get('c') as ChatState;
    expect(chat.pageCount).toBeGreaterThan(5);
    const view = await service.view('c', undefined);
    expect(view.totalMessages).toBe(81);
    expect(view.recentMessages.map((m) => m.id)).toEqual(['s-0001', ...Array.from({ length: 40 }, (_, i) => [`m${i}`, `m${i}.reply`]).flat()]);
    const since = view.recentMessages[10]?.createdAt as string;
    expect((await service.view('c', Date.parse(since))).recentMessages).toEqual(view.recentMessages.slice(11));
    // A retried post of a message whose reply is paged out answers with that reply.
    expect(chat.recent.some((m) => m.id === 'm0.reply')).toBe(false);
    expect(await service.post('c', 'ignored', 'm0', 5_000)).toEqual({ status: 'replied', messageId: 'm0', reply: view.recentMessages[2]?.content });
  });

  it('answers a retry of a stored message from its first read, without signalling again', async () => {
    const memory = new MemoryChats();
    const service = serviceOver(memory);
    await service.create('c', {});
    expect(await service.post('c', 'hello', 'k', 5_000)).toMatchObject({ status: 'replied', reply: 're: hello' });
    const signals = memory.signals.length;
    expect(await service.post('c', 'hello', 'k', 5_000)).toEqual({ status: 'replied', messageId: 'k', reply: 're: hello' });
    expect(memory.signals).toHaveLength(signals);
  });

  it('reads the chat twice for a post whose entity hints its change: the existence check and the reply', async () => {
    const memory = new MemoryChats();
    let reads = 0;
    const read = memory.store.read;
    memory.store.read = (chatId: string) => (reads++, read(chatId));
    const service = serviceOver(memory);
    await service.create('c', {});
    reads = 0;
    await service.post('c', 'hello', 'k2', 5_000);
    expect(reads).toBe(2);
  });

  it('deletes a chat, purges what storage keeps of it, and then it is not found', async () => {
    const memory = new MemoryChats();
    const service = serviceOver(memory);
    await service.create('c', {});
    expect(await service.delete('c')).toBe('deleted');
    expect(memory.purgedDeleted).toEqual(['c']);
    await expect(service.view('c', undefined)).rejects.toBeInstanceOf(ChatNotFoundError);
    // A purge that fails does not undo a delete.
    await service.create('d', {});
    memory.store.purgeDeleted = async () => {
      throw new Error('storage hiccup');
    };
    expect(await service.delete('d')).toBe('deleted');
  });

  it('answers deleting, without purging, when the delete has not happened within its wait', async () => {
    const memory = new MemoryChats();
    const service = serviceOver(memory);
    await service.create('c', {});
    memory.holdSignals = true;
    expect(await service.delete('c')).toBe('deleting');
    expect(memory.purgedDeleted).toEqual([]);
  });
});

/** A durable client whose reads and signals fail with the given errors first, then succeed. */
function flakyClient(failures: unknown[]) {
  const calls = { read: 0, signal: 0 };
  const next = () => {
    const failure = failures.shift();
    if (failure !== undefined) throw failure;
  };
  const client = {
    readEntityState: async () => {
      calls.read++;
      next();
      return { entityExists: true, entityState: createOrUpdate(undefined, {}, new Date()) };
    },
    signalEntity: async () => {
      calls.signal++;
      next();
    },
  } as unknown as DurableClient;
  return { client, calls };
}

const status = (code: number) => new Error(`The operation failed with an unexpected status code: ${code}. Details: "DurableTaskStorageException"`);
const connection = (code: string) => Object.assign(new Error(`connect ${code}`), { code });
const noPause = async () => {};

describe('ChatService approvals and cancel', () => {
  const removeCall = { id: 't1', name: 'remove_todo', arguments: '{"id":1}' };

  /** A chat whose turn of message 'k' waits for the approval of `removeCall`. */
  async function waitingForApproval() {
    const memory = new MemoryChats();
    memory.finishTurnsOnHint = false;
    let answerIds = 0;
    const service = serviceOver(memory, { ports: { newMessageId: () => `answer-${++answerIds}` } });
    await service.create('c', {});
    await service.post('c', 'remove the first todo', 'k', 0);
    const state = memory.chats.get('c') as ChatState;
    const request = { toolCallId: removeCall.id, name: removeCall.name, arguments: removeCall.arguments, round: 1, event: 'approval-1', requestedAt: '2026-01-15T22:00:00.000Z', expiresAt: '2026-01-16T22:00:00.000Z' };
    memory.chats.set('c', awaitApprovals(state, 'k', [request]));
    return { memory, service };
  }

  it('records an answer once the chat shows that it decided the call, and shows the turn waiting until then', async () => {
    const { memory, service } = await waitingForApproval();
    expect((await service.view('c', undefined)).runningTurn).toMatchObject({ messageId: 'k', status: 'waiting_for_approval', pendingApprovals: [{ toolCallId: 't1', name: 'remove_todo', arguments: '{"id":1}' }] });
    expect(await service.answerApproval('c', 't1', { approved: false, reason: 'keep it' })).toEqual({ status: 'recorded', approved: false });
    expect(memory.chats.get('c')?.turn?.approvals?.[0]?.decision).toEqual({ approved: false, by: 'user', reason: 'keep it', answerId: 'answer-1' });
    expect((await service.view('c', undefined)).runningTurn).toMatchObject({ status: 'running' });
  });

  it('refuses a second answer 409 with the decision, whichever way it goes, and changes nothing', async () => {
    const { memory, service } = await waitingForApproval();
    await service.answerApproval('c', 't1', { approved: true });
    const before = JSON.stringify(memory.chats.get('c'));
    const second = await service.answerApproval('c', 't1', { approved: false }).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(ApprovalSettledError);
    expect((second as ApprovalSettledError).body).toEqual({ decision: { approved: true, by: 'user' } });
    expect(JSON.stringify(memory.chats.get('c'))).toBe(before);
  });

  it('refuses an answer that lost the race to another 409, though the chat shows a decision', async () => {
    const { memory, service } = await waitingForApproval();
    memory.chats.set('c', settleApproval(memory.chats.get('c') as ChatState, 'k', 't1', { approved: false, by: 'timeout' }));
    await expect(service.answerApproval('c', 't1', { approved: true })).rejects.toThrow(/expired/);
  });

  it('answers 404 for an unknown call, another chat’s call, or an unknown chat, and raises nothing', async () => {
    const { memory, service } = await waitingForApproval();
    await service.create('other', {});
    await expect(service.answerApproval('c', 'nope', { approved: true })).rejects.toBeInstanceOf(ApprovalNotFoundError);
    await expect(service.answerApproval('other', 't1', { approved: true })).rejects.toBeInstanceOf(ApprovalNotFoundError);
    await expect(service.answerApproval('gone', 't1', { approved: true })).rejects.toBeInstanceOf(ChatNotFoundError);
    expect(memory.chats.get('c')?.turn?.approvals?.[0]?.decision).toBeUndefined();
  });

  it('answers pending when the turn has not decided within the wait', async () => {
    const { memory, service } = await waitingForApproval();
    memory.holdSignals = true;
    expect(await service.answerApproval('c', 't1', { approved: true })).toEqual({ status: 'pending' });
  });

  it('cancels the running turn: the chat records it, a post of its message says so, and the queued message runs next', async () => {
    const { memory, service } = await waitingForApproval();
    await service.post('c', 'next', 'k2', 0);
    expect(await service.cancel('c', undefined)).toEqual({ messageId: 'k', status: 'cancelled' });
    const state = memory.chats.get('c') as ChatState;
    expect(state.recent.find((m) => m.id === 'k.reply')).toMatchObject({ status: 'cancelled', content: 'Half an ans' });
    expect(state.turn?.messageId).toBe('k2');
    await expect(service.post('c', 'remove the first todo', 'k', 5_000)).rejects.toBeInstanceOf(TurnCancelledError);
    // Cancelling it again is what it was; a finished turn or nothing running is 409.
    expect(await service.cancel('c', 'k')).toEqual({ messageId: 'k', status: 'cancelled' });
    memory.finishTurns();
    await expect(service.cancel('c', 'k2')).rejects.toBeInstanceOf(TurnFinishedError);
    await expect(service.cancel('c', undefined)).rejects.toBeInstanceOf(NoRunningTurnError);
  });

  it('refuses to cancel a queued message’s turn before it starts, and leaves the queue as it is', async () => {
    const { memory, service } = await waitingForApproval();
    await service.post('c', 'next', 'k2', 0);
    await expect(service.cancel('c', 'k2')).rejects.toThrow(/queued/);
    expect(memory.chats.get('c')?.queue.map((m) => m.id)).toEqual(['k2']);
  });

  it('answers cancelling when the turn has not stopped within the wait', async () => {
    const { memory, service } = await waitingForApproval();
    memory.holdSignals = true;
    expect(await service.cancel('c', undefined)).toEqual({ messageId: 'k', status: 'cancelling' });
  });
});

describe('durableChatStore', () => {
  it('retries 5xx answers and broken connections, then returns the result', async () => {
    const { client, calls } = flakyClient([status(500), connection('ECONNRESET'), status(503)]);
    const store = durableChatStore(client, { attempts: 5, firstDelayMs: 1, retryAfterSeconds: 2 }, noPause);
    expect(await store.read('c')).toBeDefined();
    expect(calls.read).toBe(4);
  });

  it('gives up after the attempts with a 503 that says when to retry and keeps the cause', async () => {
    const last = status(500);
    const { client, calls } = flakyClient([status(500), status(500), last]);
    const store = durableChatStore(client, { attempts: 3, firstDelayMs: 1, retryAfterSeconds: 2 }, noPause);
    const failure = await store.signal('c', { name: 'delete' }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ChatStoreUnavailableError);
    expect(failure).toMatchObject({ status: 503, code: 'store_unavailable', headers: { 'Retry-After': '2' }, cause: last });
    expect(calls.signal).toBe(3);
  });

  it('does not retry what is not transient (a 4xx is a bug, not weather)', async () => {
    const { client, calls } = flakyClient([status(400)]);
    await expect(durableChatStore(client, undefined, noPause).read('c')).rejects.toThrow(/400/);
    expect(calls.read).toBe(1);
    expect([status(429), status(502), connection('ECONNREFUSED')].map(isTransientDurableFailure)).toEqual([true, true, true]);
    expect([status(404), new TypeError('x'), 'text'].map(isTransientDurableFailure)).toEqual([false, false, false]);
  });
});

describe('chat handlers', () => {
  it('answer 503 with Retry-After and the error JSON when the chat store keeps failing, on every route', async () => {
    const unavailable = async (): Promise<never> => {
      throw new ChatStoreUnavailableError('The chat store did not answer.', 2);
    };
    const down: ChatStore = { read: unavailable, readPage: unavailable, signal: unavailable, raiseTurnEvent: unavailable, purgeDeleted: unavailable, listChats: unavailable };
    const service = () => new ChatService({ store: down, changed: async () => false, now: Date.now, requireModel: () => {}, newMessageId: () => 'id', tools: ALL_TOOLS });
    const handlers = chatHandlers(service);
    const url = 'http://localhost:7071/api/chats/c';
    const requests: [keyof typeof handlers, string, string | undefined][] = [
      ['create', 'PUT', '{}'],
      ['post', 'POST', '{"message":"hi"}'],
      ['get', 'GET', undefined],
      ['delete', 'DELETE', undefined],
      ['answerApproval', 'POST', '{"approved":true}'],
      ['cancel', 'POST', undefined],
    ];
    for (const [name, method, body] of requests) {
      const request = new HttpRequest({ url, method, params: { chatId: 'c', toolCallId: 't1' }, body: body === undefined ? undefined : { string: body } });
      const response = (await handleErrors(handlers[name])(request, new InvocationContext())) as HttpResponseInit;
      expect({ name, status: response.status, headers: response.headers, body: response.jsonBody }).toMatchObject({
        name,
        status: 503,
        headers: { 'Retry-After': '2' },
        body: { error: { code: 'store_unavailable' } },
      });
    }
  });

  it('answer a post whose message was not stored in time 503 not_accepted, and its retry 200 once stored', async () => {
    const memory = new MemoryChats();
    await serviceOver(memory).create('c', {});
    memory.holdSignals = true;
    const handlers = chatHandlers(() => serviceOver(memory));
    const request = () => new HttpRequest({ url: 'http://localhost:7071/api/chats/c?wait=5', method: 'POST', params: { chatId: 'c' }, headers: { 'idempotency-key': 'k-1' }, body: { string: '{"message":"hi"}' } });
    const refused = (await handleErrors(handlers.post)(request(), new InvocationContext())) as HttpResponseInit;
    expect({ status: refused.status, headers: refused.headers, body: refused.jsonBody }).toMatchObject({ status: 503, headers: { 'Retry-After': '1' }, body: { error: { code: 'not_accepted' } } });
    memory.holdSignals = false;
    const retried = (await handleErrors(handlers.post)(request(), new InvocationContext())) as HttpResponseInit;
    expect({ status: retried.status, body: retried.body, headers: retried.headers }).toMatchObject({ status: 200, body: 're: hi', headers: { 'X-Message-Id': 'k-1' } });
    expect(memory.chats.get('c')?.recent.map((m) => m.id)).toEqual(['k-1', 'k-1.reply']);
  });
});

describe('values crossing the durable storage', () => {
  it('carry U+FFFE/U+FFFF (which queue messages cannot) and lone surrogates (which UTF-8 cannot) escaped, restored exactly', () => {
    for (const message of ['a\uffffb\ufffec', 'lone \ud800 high', 'lone low \udfff', 'both \uffff \udc00', 'literal \\ud800 and \\uffff text']) {
      const input = { messageId: 'm', message };
      const travelled = JSON.stringify(encodeStorable(input));
      // What the other side parses out of it holds no U+FFFE/U+FFFF and no lone surrogate.
      const strings = Object.values(JSON.parse(travelled) as Record<string, unknown>).filter((v): v is string => typeof v === 'string');
      for (const text of strings) expect(text).not.toMatch(/[\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
      expect(decodeStorable(JSON.parse(travelled))).toEqual(input);
    }
  });

  it('leave every other value as it is', () => {
    const plain = { messageId: 'm', message: 'hello \u0000 💬 \u202e' };
    expect(encodeStorable(plain)).toBe(plain);
    expect(decodeStorable(plain)).toBe(plain);
    expect(encodeStorable(undefined)).toBeUndefined();
  });
});
