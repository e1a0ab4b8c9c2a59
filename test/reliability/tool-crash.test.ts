/**
 * A turn with a tool round across a kill -9 of the runtime (the local host, or the Functions host with
 * its Node worker): the model asks for `add_todo`, the tool runs, and the runtime is killed while the
 * second model call (the one that gets the tool's result) is in flight. After the restart the turn
 * completes from its orchestration's history: the first model call and the tool are not run again,
 * only the interrupted call is, and the todo list holds the task once.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { lastMessage, type RecordedRequest } from '../support/model-server';
import { pollUntil } from '../support/poll';
import { readStoredEntity } from '../support/stored';
import { readChat } from './helpers';

let t: TestApp;
beforeAll(async () => {
  // The slow call must still be in flight when the runtime is killed.
  t = await startTestApp({ MODEL_TIMEOUT_MS: '120000', MODEL_MAX_RETRIES: '0' });
  t.model.setDefault({ reply: (r) => (lastMessage(r)?.role === 'tool' ? 'Added it.' : 'No tools needed.') });
});
afterAll(() => t?.stop());

const json = { 'Content-Type': 'application/json' };
const QUESTION = 'please remember to renew the passport';
const forQuestion = (r: RecordedRequest) => r.body.messages.some((m) => m.role === 'user' && m.content === QUESTION);

it('completes a turn killed during its second model call without repeating the first call or the tool', { timeout: 400_000 }, async () => {
  expect((await fetch(t.url('/api/chats/tool-kill'), { method: 'PUT', headers: json, body: '{}' })).status).toBe(201);
  t.model.enqueue({ toolCalls: [{ id: 'call_renew', name: 'add_todo', arguments: { task: 'renew the passport' } }] }, { reply: 'too late', latencyMs: 300_000 });
  const before = t.model.requests.length;
  const posted = await fetch(t.url('/api/chats/tool-kill?wait=0'), { method: 'POST', headers: { ...json, 'Idempotency-Key': 'tk-1' }, body: JSON.stringify({ message: QUESTION }) });
  expect(posted.status).toBe(202);

  // The second call has arrived: the tool has run and its result was recorded.
  await t.model.waitForRequests(before + 2, 60_000);
  expect(lastMessage(t.model.requests.at(-1) as RecordedRequest)?.role).toBe('tool');
  await t.restartHost({ kill: true });

  const chat = await pollUntil(
    'the killed turn to complete',
    async () => {
      const view = await readChat(t, 'tool-kill').catch(() => undefined);
      return view?.recentMessages.some((m) => m.id === 'tk-1.reply') === true ? view : undefined;
    },
    360_000,
    250,
  );
  expect(chat.recentMessages.map((m) => [m.id, m.role])).toEqual([
    ['tk-1', 'user'],
    ['tk-1.reply.1', 'assistant'],
    ['tk-1.reply.1.1', 'tool'],
    ['tk-1.reply', 'assistant'],
  ]);
  expect(chat.recentMessages.at(-1)?.content).toBe('Added it.');

  const calls = t.model.requests.filter(forQuestion);
  const firstCalls = calls.filter((r) => lastMessage(r)?.role === 'user');
  const secondCalls = calls.filter((r) => lastMessage(r)?.role === 'tool');
  expect(firstCalls).toHaveLength(1); // the first model call is not repeated
  expect(secondCalls.length).toBeGreaterThanOrEqual(2); // the interrupted one, then its re-run
  const todos = await readStoredEntity<{ items: { task: string }[] }>(t, 'todolist', 'tool-kill');
  expect(todos?.state.items.map((i) => i.task)).toEqual(['renew the passport']);

  // And the model, asking for the list, sees the task once.
  t.model.enqueue({ toolCalls: [{ id: 'call_list', name: 'get_todos', arguments: {} }] });
  const listed = await fetch(t.url('/api/chats/tool-kill?wait=60'), { method: 'POST', headers: { ...json, 'Idempotency-Key': 'tk-2' }, body: JSON.stringify({ message: 'what is on my list?' }) });
  expect(listed.status).toBe(200);
  const result = (await readChat(t, 'tool-kill'))?.recentMessages.find((m) => m.id === 'tk-2.reply.1.1');
  expect(JSON.parse(result?.content ?? '{}')).toEqual({ todos: [expect.objectContaining({ task: 'renew the passport' })] });
});
