/**
 * Tools in chat turns, on the runtime this process drives: each turn is an orchestration whose model
 * and tool calls are activities. The scripted model asks for tools the way OpenAI's API does
 * (tool_calls, parallel calls, streamed delta.tool_calls); the suite checks what the model was sent
 * back, what the history shows, the todo list's effects, and what the task hub keeps afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { lastMessage, lastUserContent, type RecordedRequest } from '../support/model-server';
import { pollUntil } from '../support/poll';
import { sseEvents, type SseEvent } from '../support/sse';
import { listTaskHubRows, readStoredEntity } from '../support/stored';

const MAX_TOOL_ROUNDS = 3;
const json = { 'Content-Type': 'application/json' };

interface Message {
  id: string;
  role: string;
  content: string;
  replyTo?: string;
  status?: string;
  toolCalls?: { id: string; name: string; arguments: string }[];
  toolCallId?: string;
  name?: string;
}
interface View {
  recentMessages: Message[];
  tools: string[];
  pendingMessages: unknown[];
  runningTurn?: { status: string };
}

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ MAX_TOOL_ROUNDS: String(MAX_TOOL_ROUNDS), MODEL_TIMEOUT_MS: '10000' });
  // Without a script: text that names what the model was sent last.
  t.model.setDefault({ reply: (r) => (lastMessage(r)?.role === 'tool' ? `after tools: ${lastMessage(r)?.content ?? ''}` : `re: ${lastUserContent(r)}`) });
});
afterAll(() => t?.stop());

async function put(chatId: string, body: unknown = {}): Promise<Response> {
  return fetch(t.url(`/api/chats/${chatId}`), { method: 'PUT', headers: json, body: JSON.stringify(body) });
}
async function post(chatId: string, message: string, messageId: string): Promise<Response> {
  return fetch(t.url(`/api/chats/${chatId}?wait=60`), { method: 'POST', headers: { ...json, 'Idempotency-Key': messageId }, body: JSON.stringify({ message }) });
}
async function view(chatId: string): Promise<View> {
  const response = await fetch(t.url(`/api/chats/${chatId}`));
  expect(response.status).toBe(200);
  return (await response.json()) as View;
}
const requestsFor = (text: string): RecordedRequest[] => t.model.requests.filter((r) => r.body.messages.some((m) => m.role === 'user' && m.content === text));
const turnOf = (v: View, messageId: string) => v.recentMessages.filter((m) => m.id === messageId || m.replyTo === messageId);

describe('tools', () => {
  it('runs a tool round: the model gets the tools and the result, the history shows the steps, the todo is stored once', async () => {
    expect((await put('tools-basic')).status).toBe(201);
    t.model.enqueue({ toolCalls: [{ id: 'call_add_1', name: 'add_todo', arguments: { task: 'water the plants' } }], reply: 'Let me add that.' });
    const response = await post('tools-basic', 'remind me to water the plants', 'tb-1');
    expect(response.status).toBe(200);
    expect(await response.text()).toMatch(/^after tools: .*water the plants/);

    const [first, second] = requestsFor('remind me to water the plants');
    expect(first?.body.tools?.map((tool) => tool.function.name)).toEqual(['get_current_time', 'add_todo', 'get_todos', 'remove_todo']);
    expect(first?.body.tools?.find((tool) => tool.function.name === 'add_todo')?.function.parameters).toMatchObject({ type: 'object', properties: { task: { type: 'string' } }, required: ['task'] });
    expect(second?.body.messages.slice(-2)).toMatchObject([
      { role: 'assistant', content: 'Let me add that.', tool_calls: [{ id: 'call_add_1', type: 'function', function: { name: 'add_todo', arguments: '{"task":"water the plants"}' } }] },
      { role: 'tool', tool_call_id: 'call_add_1' },
    ]);

    const turn = turnOf(await view('tools-basic'), 'tb-1');
    expect(turn.map((m) => [m.id, m.role])).toEqual([
      ['tb-1', 'user'],
      ['tb-1.reply.1', 'assistant'],
      ['tb-1.reply.1.1', 'tool'],
      ['tb-1.reply', 'assistant'],
    ]);
    expect(turn[1]).toMatchObject({ content: 'Let me add that.', toolCalls: [{ id: 'call_add_1', name: 'add_todo', arguments: '{"task":"water the plants"}' }] });
    expect(turn[2]).toMatchObject({ toolCallId: 'call_add_1', name: 'add_todo' });
    expect(JSON.parse(turn[2]?.content ?? '')).toMatchObject({ id: 1, task: 'water the plants' });

    // The next turn's prompt carries the tool steps of this one.
    t.model.enqueue({ toolCalls: [{ id: 'call_list_1', name: 'get_todos', arguments: {} }] });
    expect((await post('tools-basic', 'what is on my list?', 'tb-2')).status).toBe(200);
    const [listing, answered] = requestsFor('what is on my list?');
    expect(listing?.body.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'assistant', 'user']);
    expect(JSON.parse(lastMessage(answered as RecordedRequest)?.content ?? '')).toEqual({ todos: [expect.objectContaining({ id: 1, task: 'water the plants' })] });
  });

  it('runs parallel calls of one reply, each once, and sends the results back in the order of the calls', async () => {
    expect((await put('tools-parallel')).status).toBe(201);
    t.model.enqueue({
      toolCalls: [
        { id: 'call_p1', name: 'add_todo', arguments: { task: 'first' } },
        { id: 'call_p2', name: 'add_todo', arguments: { task: 'second' } },
        { id: 'call_p3', name: 'get_current_time', arguments: {} },
      ],
    });
    expect((await post('tools-parallel', 'add two things', 'tp-1')).status).toBe(200);
    const back = requestsFor('add two things')[1]?.body.messages.filter((m) => m.role === 'tool') ?? [];
    expect(back.map((m) => m.tool_call_id)).toEqual(['call_p1', 'call_p2', 'call_p3']);
    expect(Date.parse((JSON.parse(back[2]?.content ?? '{}') as { utc: string }).utc)).toBeGreaterThan(Date.now() - 60_000);
    const todos = await readStoredEntity<{ items: { task: string }[] }>(t, 'todolist', 'tools-parallel');
    expect(todos?.state.items.map((i) => i.task).sort()).toEqual(['first', 'second']);
  });

  it('turns a tool that throws and bad arguments into tool errors the model sees, and the turn still answers', async () => {
    expect((await put('tools-errors')).status).toBe(201);
    t.model.enqueue({
      toolCalls: [
        { id: 'call_e1', name: 'remove_todo', arguments: { id: 42 } },
        { id: 'call_e2', name: 'add_todo', arguments: { task: 7 } },
        { id: 'call_e3', name: 'add_todo', arguments: '{"task": "unclosed' },
        { id: 'call_e4', name: 'launch_rockets', arguments: {} },
      ],
    });
    const posting = post('tools-errors', 'do odd things', 'te-1');
    // remove_todo needs approval (approvals.test.ts): approved, it runs and throws.
    await pollUntil('remove_todo to wait for approval', async () => (await view('tools-errors')).runningTurn?.status === 'waiting_for_approval' || undefined);
    const approved = await fetch(t.url('/api/chats/tools-errors/approvals/call_e1'), { method: 'POST', headers: json, body: '{"approved":true}' });
    expect(approved.status).toBe(200);
    const response = await posting;
    expect(response.status).toBe(200);
    const results = turnOf(await view('tools-errors'), 'te-1').filter((m) => m.role === 'tool');
    expect(results.map((m) => [m.toolCallId, m.status])).toEqual([
      ['call_e1', 'failed'],
      ['call_e2', 'failed'],
      ['call_e3', 'failed'],
      ['call_e4', 'failed'],
    ]);
    const errors = results.map((m) => (JSON.parse(m.content) as { error: string }).error);
    expect(errors[0]).toMatch(/no task with id 42/);
    expect(errors[1]).toMatch(/Invalid arguments/);
    expect(errors[2]).toMatch(/not valid JSON/);
    expect(errors[3]).toMatch(/no tool named 'launch_rockets'/);
    expect((await readStoredEntity<{ items: unknown[] }>(t, 'todolist', 'tools-errors'))?.state.items).toEqual([]); // nothing was added
  });

  it(`stops offering tools after ${MAX_TOOL_ROUNDS} rounds, and fails a turn whose model still asks for them`, async () => {
    expect((await put('tools-limit')).status).toBe(201);
    const loop = { toolCalls: [{ name: 'get_current_time', arguments: {} }] };
    t.model.enqueue(loop, loop, loop, { reply: 'Fine, it is late.' });
    expect(await (await post('tools-limit', 'what time is it, really?', 'tl-1')).text()).toBe('Fine, it is late.');
    const calls = requestsFor('what time is it, really?');
    expect(calls.map((r) => r.body.tools?.length ?? 0)).toEqual([4, 4, 4, 0]);

    t.model.enqueue(loop, loop, loop, loop);
    const failed = await post('tools-limit', 'again', 'tl-2');
    expect(failed.status).toBe(502);
    expect(((await failed.json()) as { error: { message: string } }).error.message).toMatch(/limit of 3 tool rounds/);
    expect(turnOf(await view('tools-limit'), 'tl-2').at(-1)).toMatchObject({ id: 'tl-2.reply', status: 'failed' });
  });

  it('lets a chat choose its tools: none, some, or an unknown one refused', async () => {
    expect((await put('tools-choice', { tools: [] })).status).toBe(201);
    expect((await view('tools-choice')).tools).toEqual([]);
    expect((await post('tools-choice', 'no tools here', 'tc-1')).status).toBe(200);
    expect(requestsFor('no tools here')[0]?.body.tools).toBeUndefined();

    expect((await put('tools-choice', { tools: ['get_todos'] })).status).toBe(201);
    expect((await post('tools-choice', 'one tool here', 'tc-2')).status).toBe(200);
    expect(requestsFor('one tool here')[0]?.body.tools?.map((tool) => tool.function.name)).toEqual(['get_todos']);

    const refused = await put('tools-choice', { tools: ['get_todos', 'format_disk'] });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ error: { code: 'invalid_field', message: expect.stringContaining('format_disk') } });
    expect((await view('tools-choice')).tools).toEqual(['get_todos']);
  });

  it('streams a turn with a tool round, and a client cut off mid-turn resumes with exactly the rest', async () => {
    expect((await put('tools-stream')).status).toBe(201);
    t.model.enqueue({ toolCalls: [{ id: 'call_s1', name: 'add_todo', arguments: { task: 'stream it' } }], reply: 'Adding. ' }, { stream: ['Added ', 'it ', 'to ', 'your ', 'list.'], chunkDelayMs: 150 });
    const first = await fetch(t.url('/api/chats/tools-stream'), { method: 'POST', headers: { ...json, Accept: 'text/event-stream', 'Idempotency-Key': 'ts-1' }, body: JSON.stringify({ message: 'add stream it' }) });
    expect(first.status).toBe(200);
    const seen: SseEvent[] = [];
    for await (const e of sseEvents(first)) {
      seen.push(e);
      // Cut after the tool round and the first text of the answer.
      if (e.event === 'delta' && seen.some((s) => s.event === 'tool-result')) break;
    }
    expect(seen.map((e) => e.event)).toEqual(['message', 'delta', 'tool-call', 'tool-result', 'delta']);
    expect(seen[2]?.data).toMatchObject({ round: 1, toolCallId: 'call_s1', name: 'add_todo', arguments: '{"task":"stream it"}' });
    expect(seen[3]?.data).toMatchObject({ round: 2, toolCallId: 'call_s1', name: 'add_todo' });

    const resumed = await fetch(t.url('/api/chats/tools-stream'), {
      method: 'POST',
      headers: { ...json, Accept: 'text/event-stream', 'Idempotency-Key': 'ts-1', 'Last-Event-ID': seen.at(-1)?.id ?? '' },
      body: JSON.stringify({ message: 'add stream it' }),
    });
    const rest: SseEvent[] = [];
    for await (const e of sseEvents(resumed)) rest.push(e);
    expect(rest.at(-1)?.event).toBe('done');
    expect(rest.filter((e) => e.event !== 'delta' && e.event !== 'done')).toEqual([]);
    const answer = [seen[4], ...rest].filter((e) => e?.event === 'delta').map((e) => (e?.data as { text: string }).text).join('');
    expect(answer).toBe('Added it to your list.');
    expect(new Set([...seen, ...rest].map((e) => e.id)).size).toBe(seen.length + rest.length);
  });

  it('keeps the task hub from growing with finished turns, and deleting a chat removes what it owns', async () => {
    const turns = async (chatId: string, from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        t.model.enqueue({ toolCalls: [{ name: 'add_todo', arguments: { task: `task ${i}` } }] });
        expect((await post(chatId, `add task ${i}`, `${chatId}-${i}`)).status).toBe(200);
      }
    };
    const settledRows = async () => {
      const rows = await pollUntil('the task hub to settle', async () => {
        const a = await listTaskHubRows(t);
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        const b = await listTaskHubRows(t);
        return a.length === b.length ? b : undefined;
      }, 60_000, 0);
      return rows.length;
    };

    const empty = await settledRows();
    expect((await put('tools-rows')).status).toBe(201);
    await turns('tools-rows', 0, 2);
    const afterTwo = await settledRows();
    await turns('tools-rows', 2, 8);
    const afterTen = await settledRows();
    console.log(`[${t.runtime.name}] task hub rows: before the chat ${empty}, after 2 turns ${afterTwo}, after 10 turns ${afterTen}`);
    // Eight more turns, each with a tool round, leave at most a few rows more (the chat's growing
    // history within its entity, not one instance per turn).
    expect(afterTen - afterTwo).toBeLessThanOrEqual(8);

    expect((await fetch(t.url('/api/chats/tools-rows'), { method: 'DELETE' })).status).toBe(204);
    const afterDelete = await settledRows();
    console.log(`[${t.runtime.name}] task hub rows after deleting the chat: ${afterDelete}`);
    expect(afterDelete).toBeLessThanOrEqual(empty);
    expect(await readStoredEntity(t, 'todolist', 'tools-rows')).toBeUndefined();
  }, 180_000);
});
