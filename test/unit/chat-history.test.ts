import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { confirmPage, cutPages, findPagedTurn, readMessages, type HistoryPage, type PagingLimits } from '../../src/chat/history';
import { isCurrentSchema, parseChatState, parseHistoryPage } from '../../src/chat/schema';
import { acceptMessage, buildPrompt, createOrUpdate, type ChatMessage, type ChatState } from '../../src/chat/state';
import { ChatStateInvalidError, ChatStoreUnavailableError } from '../../src/errors';
import type { PromptMessage } from '../../src/model/client';
import { echo, runTurn, type TurnScript } from '../support/turns';

const limits: PagingLimits = { pageBytes: 2_000, historyTokenBudget: 300, maxPagesPerOperation: 8 };
const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

/** A chat run the way the entity runs it: every operation cuts pages, and pages confirm later. */
class PagedChat {
  state: ChatState;
  readonly pages = new Map<number, HistoryPage>();
  /** Every message ever added, in order: what a full read must give back. */
  readonly all: ChatMessage[] = [];
  private pendingConfirmations: number[] = [];
  private ms = Date.parse('2026-01-15T22:00:00.000Z');

  constructor(
    private readonly options: PagingLimits = limits,
    private readonly confirmAfterOperations = 1,
  ) {
    this.state = this.apply(createOrUpdate(undefined, { instructions: 'Be brief.' }, this.now()));
  }

  now = (): Date => new Date((this.ms += 1_000));

  async post(messageId: string, message: string, script: TurnScript = echo): Promise<PromptMessage[] | undefined> {
    const before = this.state.totalMessages;
    const result = runTurn(this.state, { messageId, message }, script, this.now, { historyTokenBudget: this.options.historyTokenBudget });
    this.state = this.apply(result.state, before);
    return result.plan?.prompt;
  }

  private apply(next: ChatState, before = 0): ChatState {
    this.all.push(...next.recent.slice(next.recent.length - (next.totalMessages - before)));
    // Confirmations arrive as later operations.
    let state = next;
    if (this.pendingConfirmations.length >= this.confirmAfterOperations) {
      for (const page of this.pendingConfirmations.splice(0)) state = confirmPage(state, page, this.options.historyTokenBudget);
    }
    const cut = cutPages(state, this.options);
    for (const page of cut.pages) {
      this.pages.set(page.page, parseHistoryPage(JSON.parse(JSON.stringify(page)), 'c', page.page));
      this.pendingConfirmations.push(page.page);
    }
    return cut.state;
  }

  read = async (page: number) => this.pages.get(page);
}

describe('history pages', () => {
  it('keep the chat state bounded while a full read gives back every message in order', async () => {
    const chat = new PagedChat();
    let largest = 0;
    for (let i = 0; i < 300; i++) {
      await chat.post(`m${i}`, `message ${i} `.padEnd(200, 'x'));
      largest = Math.max(largest, bytes(chat.state));
    }
    expect(chat.state.totalMessages).toBe(601);
    expect(chat.state.pageCount).toBeGreaterThan(50);
    // The window (300 tokens), up to two pages of unpaged or unconfirmed messages, the remembered ids.
    expect(largest).toBeLessThan(2 * limits.pageBytes + 300 * 4 + 100 * 8);
    expect(bytes(chat.state)).toBeLessThan(bytes(chat.all) / 20);
    for (const page of chat.pages.values()) expect(bytes(page.messages)).toBeLessThanOrEqual(limits.pageBytes);
    expect(await readMessages(chat.state, chat.read)).toEqual(chat.all);
  });

  it('give the same prompts as an unpaged chat', async () => {
    const paged = new PagedChat();
    let unpaged = createOrUpdate(undefined, { instructions: 'Be brief.' }, new Date('2026-01-15T22:00:01.000Z'));
    for (let i = 0; i < 120; i++) {
      const prompt = await paged.post(`m${i}`, `turn ${i} `.repeat(i % 7 + 1));
      const result = runTurn(unpaged, { messageId: `m${i}`, message: `turn ${i} `.repeat(i % 7 + 1) }, echo, paged.now, { historyTokenBudget: limits.historyTokenBudget });
      unpaged = result.state;
      expect(prompt).toEqual(result.plan?.prompt);
    }
    expect(buildPrompt(paged.state, limits.historyTokenBudget)).toEqual(buildPrompt(unpaged, limits.historyTokenBudget));
  });

  it('answer timestampUTC reads from the recent messages or the pages, newest first, with nothing missed', async () => {
    const chat = new PagedChat();
    for (let i = 0; i < 80; i++) await chat.post(`m${i}`, `message ${i} `.padEnd(300, 'y'));
    const reads: number[] = [];
    const counting = async (page: number) => (reads.push(page), chat.read(page));
    for (const index of [0, 1, 17, 80, 120, chat.all.length - 3, chat.all.length - 1]) {
      const after = Date.parse((chat.all[index] as ChatMessage).createdAt);
      reads.length = 0;
      expect(await readMessages(chat.state, counting, after)).toEqual(chat.all.slice(index + 1));
      if (index >= chat.all.length - chat.state.recent.length) expect(reads).toEqual([]);
    }
    expect(await readMessages(chat.state, chat.read, Date.parse('2020-01-01T00:00:00Z'))).toEqual(chat.all);
  });

  it('keep the messages of a page in the chat until the page confirms it is stored', async () => {
    const chat = new PagedChat(limits, 1_000);
    for (let i = 0; i < 40; i++) await chat.post(`m${i}`, 'z'.repeat(150));
    expect(chat.state.unconfirmedPages.length).toBe(chat.state.pageCount);
    expect(chat.state.recent).toHaveLength(chat.state.totalMessages);
    // Pages not written yet are read from the chat's own messages.
    chat.pages.clear();
    expect(await readMessages(chat.state, chat.read)).toEqual(chat.all);
  });

  it('report a missing confirmed page as a store failure (503), not a short history', async () => {
    const chat = new PagedChat();
    for (let i = 0; i < 40; i++) await chat.post(`m${i}`, 'z'.repeat(150));
    chat.pages.delete(0);
    await expect(readMessages(chat.state, chat.read)).rejects.toBeInstanceOf(ChatStoreUnavailableError);
  });

  it('put a message larger than a page on a page of its own', async () => {
    const chat = new PagedChat();
    await chat.post('big', 'B'.repeat(10_000));
    await chat.post('small', 'hi');
    const sizes = [...chat.pages.values()].map((p) => p.messages.length);
    expect(sizes).toContain(1);
    expect(await readMessages(chat.state, chat.read)).toEqual(chat.all);
  });

  it('find a turn whose reply has left the recent messages, its tool steps and reply in order', async () => {
    const chat = new PagedChat();
    const withTools: TurnScript = () => ({
      rounds: [{ text: 'checking', toolCalls: [{ id: 't1', name: 'get_current_time', arguments: '{}' }], results: [{ toolCallId: 't1', name: 'get_current_time', content: '{"utc":"x"}', failed: false }] }],
      end: { kind: 'replied', text: 'It is x.' },
    });
    await chat.post('m0', 'what time?', withTools);
    for (let i = 1; i < 60; i++) await chat.post(`m${i}`, 'w'.repeat(200));
    expect(chat.state.recent.some((m) => m.replyTo === 'm0')).toBe(false);
    const turn = await findPagedTurn(chat.state, chat.read, 'm0');
    expect(turn?.map((m) => [m.id, m.role, m.content])).toEqual([
      ['m0.reply.1', 'assistant', 'checking'],
      ['m0.reply.1.1', 'tool', '{"utc":"x"}'],
      ['m0.reply', 'assistant', 'It is x.'],
    ]);
    expect(await findPagedTurn(chat.state, chat.read, 'm30')).toEqual([expect.objectContaining({ id: 'm30.reply', content: `re: ${'w'.repeat(200)}` })]);
    expect(await findPagedTurn(chat.state, chat.read, 'never-posted')).toBeUndefined();
  });
});

describe('stored state', () => {
  const v1 = JSON.parse(readFileSync(new URL('../fixtures/chat-state-v1.json', import.meta.url), 'utf8')) as { messages: ChatMessage[]; instructions: string };

  it('migrates a chat saved by the layout before pages (one entity, every message) and pages it out over several operations', async () => {
    expect(isCurrentSchema(v1)).toBe(false);
    let state = parseChatState(v1, 'legacy');
    expect(state).toMatchObject({ schemaVersion: 3, totalMessages: 122, systemMessages: 2, instructions: 'Answer in French.', pageCount: 0, queue: [], unpurgedTurns: [] });
    expect(state.turn).toBeUndefined();
    expect(state.recent).toEqual(v1.messages);
    const pages = new Map<number, HistoryPage>();
    let operations = 0;
    for (let more = true; more; operations++) {
      const cut = cutPages(state, { ...limits, maxPagesPerOperation: 3 });
      for (const page of cut.pages) pages.set(page.page, page);
      state = cut.state;
      more = cut.morePages;
    }
    expect(operations).toBeGreaterThan(2);
    for (const page of state.unconfirmedPages.map((p) => p.page)) state = confirmPage(state, page, limits.historyTokenBudget);
    expect(isCurrentSchema(state)).toBe(true);
    expect(bytes(state)).toBeLessThan(bytes(v1) / 4);
    expect(await readMessages(parseChatState(JSON.parse(JSON.stringify(state)), 'legacy'), async (n) => pages.get(n))).toEqual(v1.messages);
    // Retries of its newest messages are still recognised, and a change of instructions numbers on.
    expect(acceptMessage(state, { messageId: 'legacy-060', message: 'again' }, new Date())).toBe(state);
    expect(createOrUpdate(state, { instructions: 'Answer in German.' }, new Date()).recent.at(-1)?.id).toBe('s-0003');
  });

  it('migrates a schema 2 chat (turns ran inside the entity) to an idle chat with an empty queue, keeping everything else', () => {
    const v2 = {
      schemaVersion: 2,
      instructions: 'Be brief.',
      createdAt: '2026-01-15T22:00:00.000Z',
      lastUpdatedAt: '2026-01-15T22:00:02.000Z',
      totalTokens: 12,
      totalMessages: 5,
      systemMessages: 1,
      recent: [
        { id: 'a', role: 'user', content: 'hi', createdAt: '2026-01-15T22:00:01.000Z', tokens: 5 },
        { id: 'a.reply', role: 'assistant', content: 'hello', replyTo: 'a', createdAt: '2026-01-15T22:00:02.000Z', tokens: 5, streamAttempt: 'a1' },
      ],
      pageCount: 1,
      pagedMessages: 3,
      unconfirmedPages: [],
      recentMessageIds: ['x', 'a'],
      streamedTurn: 'a',
    };
    expect(isCurrentSchema(v2)).toBe(false);
    const migrated = parseChatState(JSON.parse(JSON.stringify(v2)), 'two');
    expect(migrated).toEqual({ ...v2, schemaVersion: 3, queue: [], unpurgedTurns: [] });
    expect(isCurrentSchema(migrated)).toBe(true);
    // A retry of a message it answered is still recognised.
    expect(acceptMessage(migrated, { messageId: 'a', message: 'hi' }, new Date())).toBe(migrated);
  });

  it('reads back a current state as stored: queue, running turn, tools and unpurged turns', () => {
    const state: ChatState = {
      ...createOrUpdate(undefined, { tools: ['get_current_time'] }, new Date('2026-01-15T22:00:00.000Z')),
      queue: [{ id: 'q', content: 'later', acceptedAt: '2026-01-15T22:00:03.000Z', stream: true }],
      turn: { messageId: 'r', instanceId: 'turn~c~r', startedAt: '2026-01-15T22:00:02.000Z' },
      unpurgedTurns: ['turn~c~p'],
    };
    expect(parseChatState(JSON.parse(JSON.stringify(state)), 'c')).toEqual(state);
  });

  it('refuses a state or page that does not have the stored shape, naming what is wrong', () => {
    const current = createOrUpdate(undefined, {}, new Date());
    expect(() => parseChatState({ ...current, totalMessages: -1 }, 'x')).toThrow(ChatStateInvalidError);
    expect(() => parseChatState({ ...current, schemaVersion: 4 }, 'x')).toThrow(ChatStateInvalidError);
    const { queue: _queue, ...withoutQueue } = current;
    expect(() => parseChatState(withoutQueue, 'x')).toThrow(ChatStateInvalidError);
    expect(() => parseChatState({ ...current, turn: { messageId: 'a' } }, 'x')).toThrow(ChatStateInvalidError);
    expect(() => parseChatState({ ...current, schemaVersion: 2, recent: [{ id: 'a' }] }, 'x')).toThrow(ChatStateInvalidError);
    expect(() => parseChatState({ ...v1, messages: [{ id: 'a' }] }, 'x')).toThrow(ChatStateInvalidError);
    expect(() => parseChatState('text', 'x')).toThrow(ChatStateInvalidError);
    expect(() => parseHistoryPage({ schemaVersion: 1, page: 2, firstIndex: 0, messages: v1.messages.slice(0, 2) }, 'x', 3)).toThrow(ChatStateInvalidError);
    expect(() => parseHistoryPage({ schemaVersion: 1, page: 3, firstIndex: 0, messages: [] }, 'x', 3)).toThrow(ChatStateInvalidError);
  });
});
