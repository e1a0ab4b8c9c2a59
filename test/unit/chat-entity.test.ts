/**
 * The chat entity run through durable-functions' own entity handler, with the batch payload the
 * Durable extension sends and the model reached through OPENAI_BASE_URL (the scripted server).
 */
import { InvocationContext } from '@azure/functions';
import type { EntityContext } from 'durable-functions';
import { Entity } from 'durable-functions/lib/src/entities/Entity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatState } from '../../src/chat/state';
import { chatEntity } from '../../src/functions/chatEntity';
import { lastUserContent, startModelServer, type ModelServer } from '../support/model-server';

interface BatchResult {
  entityExists: boolean;
  entityState?: string;
  results: { isError: boolean; result?: string }[];
}

let model: ModelServer;
beforeAll(async () => {
  model = await startModelServer({ reply: (r) => `re: ${lastUserContent(r)}` });
  process.env.OPENAI_BASE_URL = model.baseURL;
  process.env.MODEL_RETRY_BASE_DELAY_MS = '1';
  process.env.MODEL_MAX_RETRIES = '1';
});
afterAll(() => model.close());

const runEntity = new Entity<ChatState>((context: EntityContext<ChatState>) => chatEntity(context)).listen() as (
  trigger: unknown,
  context: InvocationContext,
) => Promise<BatchResult>;

async function runBatch(state: ChatState | undefined, batch: { name: string; input?: unknown }[]): Promise<BatchResult> {
  const trigger = {
    self: { name: 'chat', key: 'abc' },
    exists: state !== undefined,
    state: state === undefined ? undefined : JSON.stringify(state),
    batch: batch.map((op) => ({ name: op.name, input: op.input === undefined ? undefined : JSON.stringify(op.input), isSignal: true })),
  };
  return runEntity(trigger, new InvocationContext({ functionName: 'chat' }));
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
    expect(state.messages.map((m) => m.content)).toEqual(['Be brief.', 'one', 're: one', 'two', 're: two']);
    expect(model.requests.at(-1)?.body.messages.map((m) => m.content)).toEqual(['Be brief.', 'one', 're: one', 'two']);
  });

  it('stores a repeated message id once within and across batches', async () => {
    const first = parse(await runBatch(undefined, [{ name: 'create', input: {} }, { name: 'post', input: { messageId: 'x', message: 'hi' } }, { name: 'post', input: { messageId: 'x', message: 'hi' } }]));
    expect(first.messages).toHaveLength(2);
    const second = parse(await runBatch(first, [{ name: 'post', input: { messageId: 'x', message: 'hi' } }]));
    expect(second.messages).toHaveLength(2);
  });

  it('turns a model failure into a failed-turn record, not a thrown operation', async () => {
    model.enqueue({ status: 500 }, { status: 500 });
    const result = await runBatch(undefined, [{ name: 'create', input: {} }, { name: 'post', input: { messageId: 'f', message: 'hello?' } }]);
    expect(result.results.every((r) => !r.isError)).toBe(true);
    expect(parse(result).messages[1]).toMatchObject({ status: 'failed', errorCode: 'model_failed', replyTo: 'f' });
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
});
