/**
 * The chat entity run through durable-functions' own entity handler, with the batch payload the
 * Durable extension sends and the model reached through OPENAI_BASE_URL (the scripted server).
 */
import { InvocationContext } from '@azure/functions';
import type { EntityContext } from 'durable-functions';
import { Entity } from 'durable-functions/lib/src/entities/Entity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatState } from '../../src/chat/state';
import { readFileSync } from 'node:fs';
import { readMessages, type HistoryPage } from '../../src/chat/history';
import { parseChatState } from '../../src/chat/schema';
import { chatEntity, historyPageEntity } from '../../src/functions/chatEntity';
import { lastUserContent, startModelServer, type ModelServer } from '../support/model-server';

interface BatchResult {
  entityExists: boolean;
  entityState?: string;
  results: { isError: boolean; result?: string }[];
  signals: { target: { name: string; key: string }; name: string; input?: string }[];
}

let model: ModelServer;
beforeAll(async () => {
  model = await startModelServer({ reply: (r) => `re: ${lastUserContent(r)}` });
  process.env.OPENAI_BASE_URL = model.baseURL;
  process.env.MODEL_RETRY_BASE_DELAY_MS = '1';
  process.env.MODEL_MAX_RETRIES = '1';
  process.env.CHAT_HISTORY_PAGE_BYTES = '4096';
  process.env.CHAT_HISTORY_TOKEN_BUDGET = '500';
});
afterAll(() => model.close());

type Handler = (trigger: unknown, context: InvocationContext) => Promise<BatchResult>;
const runChat = new Entity<unknown>((context: EntityContext<unknown>) => chatEntity(context)).listen() as Handler;
const runPage = new Entity<unknown>((context: EntityContext<unknown>) => historyPageEntity(context)).listen() as Handler;

async function runBatch(state: unknown, batch: { name: string; input?: unknown }[], entity: { name: string; key: string; run: Handler } = { name: 'chat', key: 'abc', run: runChat }): Promise<BatchResult> {
  const trigger = {
    self: { name: entity.name, key: entity.key },
    exists: state !== undefined,
    state: state === undefined ? undefined : JSON.stringify(state),
    batch: batch.map((op) => ({ name: op.name, input: op.input === undefined ? undefined : JSON.stringify(op.input), isSignal: true })),
  };
  return entity.run(trigger, new InvocationContext({ functionName: entity.name }));
}
const parse = (result: BatchResult) => JSON.parse(result.entityState ?? 'null') as ChatState;

describe('chat entity through the SDK handler', () => {
  it('creates, posts twice in order, and carries history into the prompt', async () => {
    const result = await runBatch(undefined, [
      { name: 'create', input: { instructions: 'Be brief.' } },
      { name: 'post', input: { messageId: 'a', message: 'one' } },
      { name: 'post', input: { messageId: 'b', message: 'two' } },
    ]);
    expect(result.results.map((r) => r.isError)).toEqual([false, false, false]);
    const state = parse(result);
    expect(state.recent.map((m) => m.content)).toEqual(['Be brief.', 'one', 're: one', 'two', 're: two']);
    expect(model.requests.at(-1)?.body.messages.map((m) => m.content)).toEqual(['Be brief.', 'one', 're: one', 'two']);
  });

  it('stores a repeated message id once within and across batches', async () => {
    const first = parse(await runBatch(undefined, [{ name: 'create', input: {} }, { name: 'post', input: { messageId: 'x', message: 'hi' } }, { name: 'post', input: { messageId: 'x', message: 'hi' } }]));
    expect(first.recent).toHaveLength(2);
    const second = parse(await runBatch(first, [{ name: 'post', input: { messageId: 'x', message: 'hi' } }]));
    expect(second.recent).toHaveLength(2);
  });

  it('turns a model failure into a failed-turn record, not a thrown operation', async () => {
    model.enqueue({ status: 500 }, { status: 500 });
    const result = await runBatch(undefined, [{ name: 'create', input: {} }, { name: 'post', input: { messageId: 'f', message: 'hello?' } }]);
    expect(result.results.every((r) => !r.isError)).toBe(true);
    expect(parse(result).recent[1]).toMatchObject({ status: 'failed', errorCode: 'model_failed', replyTo: 'f' });
  });

  it('ignores a post to a chat that does not exist, and deletes', async () => {
    const ignored = await runBatch(undefined, [{ name: 'post', input: { messageId: 'a', message: 'hi' } }]);
    expect(ignored.entityExists).toBe(false);
    const created = parse(await runBatch(undefined, [{ name: 'create', input: {} }]));
    const deleted = await runBatch(created, [{ name: 'delete' }]);
    expect(deleted.entityExists).toBe(false);
    expect(deleted.entityState).toBeUndefined();
  });

  it('rejects a malformed operation input without changing the state', async () => {
    const created = parse(await runBatch(undefined, [{ name: 'create', input: {} }]));
    const result = await runBatch(created, [{ name: 'post', input: { message: 42 } }]);
    expect(result.results[0]?.isError).toBe(true);
    expect(parse(result)).toEqual(created);
  });

  it('cuts full pages, sends each to its page entity, which stores it and confirms back; delete removes every page', async () => {
    let state: unknown = JSON.parse((await runBatch(undefined, [{ name: 'create', input: {} }])).entityState ?? 'null');
    const pages = new Map<number, HistoryPage>();
    for (let i = 0; i < 30; i++) {
      const result = await runBatch(state, [{ name: 'post', input: { messageId: `m${i}`, message: `${i} ${'lorem ipsum dolor sit amet '.repeat(18)}` } }]);
      state = JSON.parse(result.entityState ?? 'null');
      for (const signal of result.signals) {
        expect(signal).toMatchObject({ target: { name: 'chathistorypage' }, name: 'write' });
        const written = await runBatch(undefined, [{ name: 'write', input: JSON.parse(signal.input ?? 'null') }], { name: 'chatHistoryPage', key: signal.target.key, run: runPage });
        const page = JSON.parse(written.entityState ?? 'null') as HistoryPage;
        expect(signal.target.key).toBe(`abc~${page.page}`);
        pages.set(page.page, page);
        expect(written.signals).toEqual([expect.objectContaining({ target: { name: 'chat', key: 'abc' }, name: 'pageStored', input: JSON.stringify({ page: page.page }) })]);
        state = JSON.parse((await runBatch(state, [{ name: 'pageStored', input: { page: page.page } }])).entityState ?? 'null');
      }
    }
    const chat = parseChatState(state, 'abc');
    expect(chat.pageCount).toBeGreaterThan(3);
    expect(chat.unconfirmedPages).toEqual([]);
    expect(JSON.stringify(state).length).toBeLessThan(3 * 4096);
    const all = await readMessages(chat, async (n) => pages.get(n));
    expect(all.map((m) => m.id)).toEqual(Array.from({ length: 30 }, (_, i) => [`m${i}`, `m${i}.reply`]).flat());

    const deleted = await runBatch(state, [{ name: 'delete' }]);
    expect(deleted.entityExists).toBe(false);
    expect(deleted.signals.map((s) => [s.target.key, s.name])).toEqual([...pages.keys()].map((n) => [`abc~${n}`, 'delete']));
  });

  it('migrates a state saved by the layout before pages on its first operation, continuing with further operations until paged out', async () => {
    const v1: unknown = JSON.parse(readFileSync(new URL('../fixtures/chat-state-v1.json', import.meta.url), 'utf8'));
    const first = await runBatch(v1, [{ name: 'post', input: { messageId: 'after-migration', message: 'still here?' } }]);
    expect(first.results[0]?.isError).toBe(false);
    let state: unknown = JSON.parse(first.entityState ?? 'null');
    expect(state).toMatchObject({ schemaVersion: 2, totalMessages: 124 });
    const writes = first.signals.filter((s) => s.name === 'write');
    expect(writes.length).toBe(8);
    expect(first.signals.at(-1)).toMatchObject({ target: { name: 'chat', key: 'abc' }, name: 'continuePaging' });
    let pagesCut = writes.length;
    for (let more = true; more; ) {
      const next = await runBatch(state, [{ name: 'continuePaging' }]);
      state = JSON.parse(next.entityState ?? 'null');
      pagesCut += next.signals.filter((s) => s.name === 'write').length;
      more = next.signals.some((s) => s.name === 'continuePaging');
    }
    expect(parseChatState(state, 'abc').pageCount).toBe(pagesCut);
    // The prompt of the turn after migration carried the old history's newest messages.
    expect(model.requests.at(-1)?.body.messages.at(-2)?.content).toBe('Reply to: Message 60: ' + 'x'.repeat(200) + ' ✓');
  });
});
