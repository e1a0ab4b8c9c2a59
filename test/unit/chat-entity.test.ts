/**
 * The chat's entities run through durable-functions' own entity handler, with the batch payload the
 * Durable extension sends, and the chat's ports injected: a fake of its task hub instances that
 * records the turns it starts, purges and terminates (no model is called inside the entity: a turn is
 * an orchestration, which `finishTurn` reports back).
 */
import { InvocationContext } from '@azure/functions';
import type { EntityContext } from 'durable-functions';
import { Entity } from 'durable-functions/lib/src/entities/Entity';
import { readFileSync } from 'node:fs';
import { beforeEach, describe, expect, it } from 'vitest';
import { readMessages, type HistoryPage } from '../../src/chat/history';
import { parseChatState } from '../../src/chat/schema';
import type { ChatState, TurnOutcome, TurnPlan } from '../../src/chat/state';
import type { TurnStreamStore } from '../../src/chat/turnStream';
import { toChatView } from '../../src/chat/view';
import { chatEntity, historyPageEntity, todoListEntity, type ChatEntityPorts } from '../../src/durable/chatEntities';
import type { ChatInstances } from '../../src/durable/chatInstances';
import type { TodoListState } from '../../src/tools/todoList';
import { ALL_TOOLS, APPROVAL_TOOLS } from '../support/turns';

interface BatchResult {
  entityExists: boolean;
  entityState?: string;
  results: { isError: boolean; result?: string }[];
  signals: { target: { name: string; key: string }; name: string; input?: string }[];
}
type Handler = (trigger: unknown, context: InvocationContext) => Promise<BatchResult>;

/** The chat's task hub instances, in memory: what the entity started, purged and terminated. */
class FakeInstances implements ChatInstances {
  started: { instanceId: string; plan: TurnPlan }[] = [];
  purged: string[] = [];
  purgedWhenFinished: string[] = [];
  terminated: string[] = [];
  /** Starts still to fail (the task hub refused them). */
  failStarts = 0;
  /** Instances whose purge fails. */
  failPurges = new Set<string>();

  async start(instanceId: string, plan: TurnPlan): Promise<void> {
    if (this.failStarts > 0) {
      this.failStarts--;
      throw new Error('The task hub did not answer.');
    }
    this.started.push({ instanceId, plan });
  }
  async purge(instanceIds: readonly string[]): Promise<string[]> {
    this.purged.push(...instanceIds);
    return instanceIds.filter((id) => this.failPurges.has(id));
  }
  async purgeWhenFinished(instanceId: string): Promise<boolean> {
    this.purgedWhenFinished.push(instanceId);
    return true;
  }
  async terminate(instanceId: string): Promise<void> {
    this.terminated.push(instanceId);
  }
  expiries: { instanceId: string; chatKey: string }[] = [];
  async startExpiry(instanceId: string, chatKey: string): Promise<void> {
    this.expiries.push({ instanceId, chatKey });
  }
}

let instances: FakeInstances;
let deletedStreams: string[];
let ms: number;
let ttlMs: number;
beforeEach(() => {
  ttlMs = 0;
  instances = new FakeInstances();
  deletedStreams = [];
  ms = Date.parse('2026-01-15T22:00:00.000Z');
});
const streams: TurnStreamStore = {
  append: async () => {},
  readAfter: async () => [],
  deleteTurn: async (chatId, messageId) => void deletedStreams.push(`${chatId}/${messageId}`),
  requestStop: async () => {},
  stopRequested: async () => false,
};
const ports: ChatEntityPorts = {
  instances: () => instances,
  streams: () => streams,
  settings: () => ({ historyTokenBudget: 500, historyPageBytes: 4096, maxToolRounds: 3, allTools: ALL_TOOLS, approvalTools: APPROVAL_TOOLS, approvalTimeoutMs: 60_000, chatTtlMs: ttlMs }),
  now: () => new Date((ms += 1_000)),
};

/** The signals a batch sent, but those to the chat list (chatindex), which the list tests check. */
const ownSignals = (result: BatchResult) => result.signals.filter((s) => s.target.name !== 'chatindex');

const runChat = new Entity<unknown>(chatEntity(ports)).listen() as Handler;
const runPage = new Entity<unknown>((context: EntityContext<unknown>) => historyPageEntity(context)).listen() as Handler;
const runTodos = new Entity<unknown>(todoListEntity({ now: () => new Date('2026-01-15T22:00:00.000Z') })).listen() as Handler;

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
const errors = (result: BatchResult) => result.results.map((r) => r.isError);
const post = (messageId: string, message = `message ${messageId}`, stream?: boolean) => ({ name: 'post', input: stream === undefined ? { messageId, message } : { messageId, message, stream } });
const replied = (messageId: string, text = `re: ${messageId}`, totalTokens = 10): { name: string; input: TurnOutcome } => ({ name: 'finishTurn', input: { messageId, rounds: [], end: { kind: 'replied', text }, totalTokens } });
const created = async (instructions?: string) => parse(await runBatch(undefined, [{ name: 'create', input: instructions === undefined ? {} : { instructions } }]));

describe('chat entity through the SDK handler', () => {
  it('queues a post and starts exactly one turn for it, with a deterministic instance id and everything the turn needs', async () => {
    const result = await runBatch(undefined, [{ name: 'create', input: { instructions: 'Be brief.' } }, post('a', 'one')]);
    expect(errors(result)).toEqual([false, false]);
    const state = parse(result);
    expect(instances.started.map((s) => s.instanceId)).toEqual(['turn~abc~a']);
    expect(instances.started[0]?.plan).toEqual({
      chatId: 'abc',
      messageId: 'a',
      prompt: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'one' },
      ],
      tools: [...ALL_TOOLS],
      approvalTools: [...APPROVAL_TOOLS],
      approvalTimeoutMs: 60_000,
      stream: false,
      userCreatedAt: state.recent.at(-1)?.createdAt,
      maxToolRounds: 3,
    });
    expect(state.turn).toMatchObject({ messageId: 'a', instanceId: 'turn~abc~a' });
    expect(state.queue).toEqual([]);
    expect(state.recent.map((m) => m.id)).toEqual(['s-0001', 'a']);
  });

  it('queues a second post while a turn runs, and starts it when finishTurn records the first', async () => {
    const first = parse(await runBatch(await created('Be brief.'), [post('a', 'one'), post('b', 'two')]));
    expect(instances.started.map((s) => s.instanceId)).toEqual(['turn~abc~a']);
    expect(first.queue.map((m) => [m.id, m.content])).toEqual([['b', 'two']]);
    expect(toChatView('abc', first, first.recent, ALL_TOOLS)).toMatchObject({ pendingMessages: [{ id: 'b', content: 'two' }], runningTurn: { messageId: 'a' } });

    const second = parse(await runBatch(first, [replied('a', 're: one')]));
    expect(instances.started.map((s) => s.instanceId)).toEqual(['turn~abc~a', 'turn~abc~b']);
    // The second turn's prompt carries the first turn's reply.
    expect(instances.started[1]?.plan.prompt.map((m) => m.content)).toEqual(['Be brief.', 'one', 're: one', 'two']);
    expect(second.recent.map((m) => m.id)).toEqual(['s-0001', 'a', 'a.reply', 'b']);
    expect(second).toMatchObject({ queue: [], turn: { messageId: 'b' }, totalTokens: 10, unpurgedTurns: ['turn~abc~a'] });
  });

  it('records a turn’s tool rounds before its reply, and purges the turns finished before it', async () => {
    let state = parse(await runBatch(await created(), [post('a'), replied('a'), post('b')]));
    expect(instances.purged).toEqual([]);
    const outcome: TurnOutcome = {
      messageId: 'b',
      rounds: [
        {
          text: 'Checking.',
          toolCalls: [{ id: 'call-1', name: 'get_current_time', arguments: '{}' }, { id: 'call-2', name: 'add_todo', arguments: '{"task":"x"}' }],
          results: [
            { toolCallId: 'call-1', name: 'get_current_time', content: '{"utc":"2026-01-15T22:00:00.000Z"}', failed: false },
            { toolCallId: 'call-2', name: 'add_todo', content: '{"error":"no"}', failed: true },
          ],
          streamAttempt: 'a1',
        },
      ],
      end: { kind: 'replied', text: 'It is 22:00.' },
      totalTokens: 40,
      streamAttempt: 'a2',
    };
    state = parse(await runBatch(state, [{ name: 'finishTurn', input: outcome }]));
    expect(state.recent.slice(-4).map((m) => [m.id, m.role, m.toolCallId ?? m.toolCalls?.length, m.status, m.streamAttempt])).toEqual([
      ['b.reply.1', 'assistant', 2, undefined, 'a1'],
      ['b.reply.1.1', 'tool', 'call-1', undefined, undefined],
      ['b.reply.1.2', 'tool', 'call-2', 'failed', undefined],
      ['b.reply', 'assistant', undefined, undefined, 'a2'],
    ]);
    expect(state.turn).toBeUndefined();
    expect(instances.purged).toEqual(['turn~abc~a']);
    expect(state.unpurgedTurns).toEqual(['turn~abc~b']);
  });

  it('records a failed turn’s outcome as a failed-turn record with its code, and goes on with the next turn', async () => {
    const running = parse(await runBatch(await created(), [post('a', 'one'), post('b', 'two')]));
    const failed: TurnOutcome = { messageId: 'a', rounds: [], end: { kind: 'failed', code: 'model_timeout', message: 'The model did not answer in time.', partialText: 'It is' }, totalTokens: 0, streamAttempt: 'a9' };
    const result = await runBatch(running, [{ name: 'finishTurn', input: failed }]);
    expect(errors(result)).toEqual([false]);
    const state = parse(result);
    expect(state.recent.find((m) => m.id === 'a.reply')).toMatchObject({ role: 'assistant', status: 'failed', errorCode: 'model_timeout', error: 'The model did not answer in time.', content: 'It is', streamAttempt: 'a9' });
    // The failed record is not part of the next turn's prompt.
    expect(instances.started[1]?.plan.prompt.map((m) => m.content)).toEqual(['You are a helpful assistant.', 'one', 'two']);
  });

  it('keeps a turn whose purge failed to purge it later', async () => {
    instances.failPurges.add('turn~abc~a');
    const state = parse(await runBatch(await created(), [post('a'), replied('a'), post('b'), replied('b'), post('c'), replied('c')]));
    expect(instances.purged).toEqual(['turn~abc~a', 'turn~abc~a', 'turn~abc~b']);
    expect(state.unpurgedTurns).toEqual(['turn~abc~a', 'turn~abc~c']);
  });

  it('changes nothing for a repeated post or a repeated finishTurn, within and across batches', async () => {
    const first = await runBatch(await created(), [post('x', 'hi'), post('x', 'hi')]);
    expect(parse(first).recent.map((m) => m.id)).toEqual(['x']);
    const done = await runBatch(parse(first), [replied('x'), replied('x'), post('x', 'hi')]);
    expect(errors(done)).toEqual([false, false, false]);
    const again = await runBatch(parse(done), [post('x', 'hi'), replied('x', 'different')]);
    expect(again.entityState).toBe(done.entityState);
    expect(instances.started.map((s) => s.instanceId)).toEqual(['turn~abc~x']);
    expect(parse(again).recent.map((m) => [m.id, m.content])).toEqual([
      ['x', 'hi'],
      ['x.reply', 're: x'],
    ]);
  });

  it('keeps a message queued when its turn cannot be started, and starts it with the next post', async () => {
    instances.failStarts = 1;
    const refused = await runBatch(await created(), [post('a', 'one')]);
    expect(errors(refused)).toEqual([true]);
    const waiting = parse(refused);
    expect(waiting.queue.map((m) => m.id)).toEqual(['a']);
    expect(waiting.turn).toBeUndefined();
    expect(waiting.recent).toEqual([]);

    const next = parse(await runBatch(waiting, [post('b', 'two')]));
    expect(instances.started.map((s) => s.instanceId)).toEqual(['turn~abc~a']);
    expect(next).toMatchObject({ turn: { messageId: 'a' }, queue: [{ id: 'b' }] });
  });

  it('keeps the next message queued when its start after a finished turn fails, having recorded the finished one', async () => {
    const running = parse(await runBatch(await created(), [post('a'), post('b')]));
    instances.failStarts = 1;
    const result = await runBatch(running, [replied('a')]);
    expect(errors(result)).toEqual([true]);
    const state = parse(result);
    expect(state.recent.map((m) => m.id)).toEqual(['a', 'a.reply']);
    expect(state.turn).toBeUndefined();
    expect(state.queue.map((m) => m.id)).toEqual(['b']);
    // A later post starts it.
    expect(parse(await runBatch(state, [post('c')]))).toMatchObject({ turn: { messageId: 'b' }, queue: [{ id: 'c' }] });
  });

  it('records the outcome of a queued turn whose start failed after the orchestration had been created', async () => {
    instances.failStarts = 1;
    const waiting = parse(await runBatch(await created(), [post('a', 'one')]));
    const state = parse(await runBatch(waiting, [replied('a', 'late but here')]));
    expect(state.recent.map((m) => [m.id, m.content])).toEqual([
      ['a', 'one'],
      ['a.reply', 'late but here'],
    ]);
    expect(state.queue).toEqual([]);
  });

  it('starts a streamed turn as streamed, and removes the previous streamed turn’s records when the next turn starts', async () => {
    const state = parse(await runBatch(await created(), [post('a', 'one', true)]));
    expect(instances.started[0]?.plan.stream).toBe(true);
    expect(state).toMatchObject({ turn: { messageId: 'a', stream: true }, streamedTurn: 'a' });
    expect(deletedStreams).toEqual([]);
    const next = parse(await runBatch(state, [replied('a'), post('b', 'two')]));
    expect(deletedStreams).toEqual(['abc/a']);
    expect(next.streamedTurn).toBeUndefined();
  });

  it('ignores a post to a chat that does not exist, and rejects a malformed operation input without changing the state', async () => {
    const ignored = await runBatch(undefined, [post('a')]);
    expect(ignored.entityExists).toBe(false);
    expect(instances.started).toEqual([]);
    const state = await created();
    for (const op of [{ name: 'post', input: { message: 42 } }, { name: 'finishTurn', input: { messageId: 'a', rounds: [], end: { kind: 'maybe' }, totalTokens: 1 } }]) {
      const result = await runBatch(state, [op]);
      expect(errors(result)).toEqual([true]);
      expect(parse(result)).toEqual(state);
    }
  });

  it('deletes: ends the running turn, purges every turn instance, the todo list and the pages, and the chat', async () => {
    instances.failPurges.add('turn~abc~a');
    const state = parse(await runBatch(await created(), [post('a'), replied('a'), post('b'), replied('b'), post('c', 'three', true), post('d')]));
    expect(state).toMatchObject({ unpurgedTurns: ['turn~abc~a', 'turn~abc~b'], turn: { messageId: 'c' }, streamedTurn: 'c', queue: [{ id: 'd' }] });
    instances.failPurges.clear();
    instances.purged = [];
    const deleted = await runBatch(state, [{ name: 'delete' }]);
    expect(deleted.entityExists).toBe(false);
    expect(deleted.entityState).toBeUndefined();
    expect(instances.terminated).toEqual(['turn~abc~c']);
    expect(instances.purgedWhenFinished.sort()).toEqual(['turn~abc~b', 'turn~abc~c']);
    expect(instances.purged).toEqual(['turn~abc~a', '@todolist@abc']);
    expect(deletedStreams).toEqual(['abc/c']);
    // Only the owner's chat list hears of it.
    expect(deleted.signals.map((s) => [s.target, s.name, s.input])).toEqual([[{ name: 'chatindex', key: '_shared' }, 'remove', JSON.stringify({ chatId: 'abc' })]]);
    // The turn that was running reports back after the delete: nothing is recorded, its instance is purged.
    const late = await runBatch(undefined, [replied('c')]);
    expect(late.entityExists).toBe(false);
    expect(instances.purgedWhenFinished).toContain('turn~abc~c');
  });

  it('signals delete to the todo list (or a page) whose purge fails', async () => {
    instances.failPurges.add('@todolist@abc');
    const deleted = await runBatch(await created(), [{ name: 'delete' }]);
    expect(deleted.entityExists).toBe(false);
    expect(ownSignals(deleted).map((s) => [s.target, s.name])).toEqual([[{ name: 'todolist', key: 'abc' }, 'delete']]);
  });

  it('cuts full pages, sends each to its page entity, which stores it and confirms back; delete removes every page', async () => {
    let state: unknown = await created();
    const pages = new Map<number, HistoryPage>();
    for (let i = 0; i < 30; i++) {
      const result = await runBatch(state, [post(`m${i}`, `${i} ${'lorem ipsum dolor sit amet '.repeat(18)}`), replied(`m${i}`)]);
      expect(errors(result)).toEqual([false, false]);
      state = JSON.parse(result.entityState ?? 'null');
      for (const signal of ownSignals(result)) {
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

    instances.purged = [];
    instances.failPurges.add('@chathistorypage@abc~1');
    const deleted = await runBatch(state, [{ name: 'delete' }]);
    expect(deleted.entityExists).toBe(false);
    expect(instances.purged).toEqual(['@todolist@abc', ...[...pages.keys()].map((n) => `@chathistorypage@abc~${n}`)]);
    expect(ownSignals(deleted).map((s) => [s.target.key, s.name])).toEqual([['abc~1', 'delete']]);
    const page = await runBatch(pages.get(1), [{ name: 'delete' }], { name: 'chatHistoryPage', key: 'abc~1', run: runPage });
    expect(page.entityExists).toBe(false);
  });

  it('migrates a state saved by the layout before pages (schema 1) on its first operation, continuing with further operations until paged out', async () => {
    const v1: unknown = JSON.parse(readFileSync(new URL('../fixtures/chat-state-v1.json', import.meta.url), 'utf8'));
    const first = await runBatch(v1, [post('after-migration', 'still here?')]);
    expect(errors(first)).toEqual([false]);
    let state: unknown = JSON.parse(first.entityState ?? 'null');
    expect(state).toMatchObject({ schemaVersion: 3, totalMessages: 123, queue: [], turn: { messageId: 'after-migration' } });
    const writes = first.signals.filter((s) => s.name === 'write');
    expect(writes.length).toBe(8);
    expect(ownSignals(first).at(-1)).toMatchObject({ target: { name: 'chat', key: 'abc' }, name: 'continuePaging' });
    let pagesCut = writes.length;
    for (let more = true; more; ) {
      const next = await runBatch(state, [{ name: 'continuePaging' }]);
      state = JSON.parse(next.entityState ?? 'null');
      pagesCut += next.signals.filter((s) => s.name === 'write').length;
      more = next.signals.some((s) => s.name === 'continuePaging');
    }
    expect(parseChatState(state, 'abc').pageCount).toBe(pagesCut);
    // The prompt of the turn after migration carried the old history's newest messages.
    expect(instances.started[0]?.plan.prompt.at(-2)?.content).toBe('Reply to: Message 60: ' + 'x'.repeat(200) + ' ✓');
    // A retry of a message answered before the migration is still recognised.
    expect((await runBatch(state, [post('legacy-060', 'again')])).entityState).toBe(JSON.stringify(state));
  });

  it('migrates a schema 2 state (turns inside the entity) on its first operation, even one that changes nothing else', async () => {
    const { queue: _queue, unpurgedTurns: _unpurged, ...rest } = await created('Be brief.');
    const v2 = { ...rest, schemaVersion: 2 };
    const rewritten = await runBatch(v2, [{ name: 'continuePaging' }]);
    expect(parse(rewritten)).toEqual({ ...v2, schemaVersion: 3, queue: [], unpurgedTurns: [] });
    const posted = parse(await runBatch(v2, [post('a', 'one')]));
    expect(posted).toMatchObject({ schemaVersion: 3, turn: { messageId: 'a' } });
    expect(instances.started.map((s) => s.instanceId)).toEqual(['turn~abc~a']);
  });
});

describe('todo list entity through the SDK handler', () => {
  const runList = (state: unknown, batch: { name: string; input?: unknown }[]) => runBatch(state, batch, { name: 'todoList', key: 'abc', run: runTodos });
  const list = (result: BatchResult) => JSON.parse(result.entityState ?? 'null') as TodoListState;

  it('adds once per tool call id, within and across batches', async () => {
    const first = await runList(undefined, [
      { name: 'add', input: { toolCallId: 't1', task: 'buy milk' } },
      { name: 'add', input: { toolCallId: 't1', task: 'buy milk' } },
      { name: 'add', input: { toolCallId: 't2', task: 'walk the dog' } },
    ]);
    expect(errors(first)).toEqual([false, false, false]);
    expect(list(first).items.map((i) => [i.id, i.task])).toEqual([
      [1, 'buy milk'],
      [2, 'walk the dog'],
    ]);
    const again = await runList(list(first), [{ name: 'add', input: { toolCallId: 't2', task: 'walk the dog' } }]);
    expect(list(again)).toEqual(list(first));
  });

  it('removes by id, records an unknown id as not found, and is deleted with its chat', async () => {
    const added = list(await runList(undefined, [{ name: 'add', input: { toolCallId: 't1', task: 'buy milk' } }]));
    const result = await runList(added, [
      { name: 'remove', input: { toolCallId: 'r1', id: 1 } },
      { name: 'remove', input: { toolCallId: 'r2', id: 42 } },
    ]);
    const state = list(result);
    expect(state.items).toEqual([]);
    expect(state.applied.slice(-2)).toEqual([
      { toolCallId: 'r1', change: { kind: 'removed', item: { id: 1, task: 'buy milk', createdAt: '2026-01-15T22:00:00.000Z' } } },
      { toolCallId: 'r2', change: { kind: 'not_found', id: 42 } },
    ]);
    const malformed = await runList(state, [{ name: 'remove', input: { toolCallId: 'r3', id: 'one' } }]);
    expect(errors(malformed)).toEqual([true]);
    expect(list(malformed)).toEqual(state);
    expect((await runList(state, [{ name: 'delete' }])).entityExists).toBe(false);
  });
});

describe('chat entity: its owner’s chat list and its expiry', () => {
  const indexSignals = (result: BatchResult) => result.signals.filter((s) => s.target.name === 'chatindex').map((s) => ({ key: s.target.key, name: s.name, input: JSON.parse(s.input ?? 'null') as unknown }));

  it('tells its owner’s list when its title, times or size change, under its own id, and nothing else', async () => {
    const chat = { name: 'chat', key: 'u0123:planner', run: runChat };
    const made = await runBatch(undefined, [{ name: 'create', input: {} }], chat);
    expect(indexSignals(made)).toEqual([{ key: 'u0123', name: 'upsert', input: { chatId: 'planner', summary: { title: '', createdAt: expect.any(String), lastUpdatedAt: expect.any(String), messageCount: 0 } } }]);
    const long = `Please   plan my week:\n${'groceries, laundry, '.repeat(10)}`;
    const posted = await runBatch(JSON.parse(made.entityState ?? 'null'), [post('m1', long)], chat);
    const state = JSON.parse(posted.entityState ?? 'null') as ChatState;
    expect(state.title).toMatch(/^Please plan my week: groceries, laundry,.*…$/);
    expect(state.title?.length).toBeLessThanOrEqual(80);
    expect(indexSignals(posted).at(-1)).toMatchObject({ key: 'u0123', name: 'upsert', input: { chatId: 'planner', summary: { title: state.title, messageCount: 1 } } });
    // An operation that changes none of it (a repeated post) tells the list nothing.
    expect(indexSignals(await runBatch(state, [post('m1', long)], chat))).toEqual([]);
    // Its turns and pages are keyed by the chat's key; its list entry by its own id.
    expect(instances.started.at(-1)?.instanceId).toBe('turn~u0123:planner~m1');
  });

  it('starts its expiry orchestration once when CHAT_TTL_DAYS is set, and says when it is due', async () => {
    ttlMs = 60_000;
    const made = await runBatch(undefined, [{ name: 'create', input: {} }, { name: 'create', input: {} }]);
    expect(instances.expiries).toEqual([{ instanceId: 'expiry~abc', chatKey: 'abc' }]);
    const state = parse(made);
    expect(state.expiryArmed).toBe(true);
    const due = await runBatch(state, [{ name: 'expiryDue' }]);
    expect(JSON.parse(due.results[0]?.result ?? 'null')).toBe(new Date(Date.parse(state.lastUpdatedAt) + 60_000).toISOString());
    ttlMs = 0;
    expect((await runBatch(state, [{ name: 'expiryDue' }])).results[0]?.result).toBeUndefined();
    // Asking a chat that is gone does not bring it back.
    const gone = await runBatch(undefined, [{ name: 'expiryDue' }, { name: 'expire' }]);
    expect(gone.results.map((r) => r.result)).toEqual([undefined, undefined]);
    expect(gone.entityExists).toBe(false);
  });

  it('expires only when idle past its due time: then it deletes itself and what it owns, and leaves its list', async () => {
    ttlMs = 60_000;
    const state = parse(await runBatch(await created(), [post('m1'), replied('m1')]));
    const early = await runBatch(state, [{ name: 'expire' }]);
    expect(JSON.parse(early.results[0]?.result ?? 'null')).toBe(false);
    expect(early.entityExists).toBe(true);
    ms += 120_000;
    const busy = await runBatch(state, [post('m2'), { name: 'expire' }]);
    expect(JSON.parse(busy.results[1]?.result ?? 'null')).toBe(false); // a turn runs: not idle
    const late = await runBatch(state, [{ name: 'expire' }]);
    expect(JSON.parse(late.results[0]?.result ?? 'null')).toBe(true);
    expect(late.entityExists).toBe(false);
    expect(instances.purged).toContain('@todolist@abc');
    expect(indexSignals(late)).toEqual([{ key: '_shared', name: 'remove', input: { chatId: 'abc' } }]);
    // Its expiry orchestration is what asked: it ends by itself, so it is not terminated here.
    expect(instances.terminated).toEqual([]);
  });

  it('ends and purges its expiry orchestration when deleted by request', async () => {
    ttlMs = 60_000;
    await runBatch(await created(), [{ name: 'delete' }]);
    expect(instances.terminated).toEqual(['expiry~abc']);
    expect(instances.purgedWhenFinished).toEqual(['expiry~abc']);
  });
});
