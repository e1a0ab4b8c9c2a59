/**
 * The tools registry (src/tools/registry.ts): how one call of the model runs, what the model is told
 * about the tools; and the todo list's transitions (src/tools/todoList.ts) behind the todo tools.
 */
import { describe, expect, it } from 'vitest';
import type { ToolCallRecord } from '../../src/chat/state';
import { runToolStep } from '../../src/chat/turnSteps';
import { parseTodoList } from '../../src/durable/todoEntityStore';
import { ChatStoreUnavailableError } from '../../src/errors';
import { runToolCall, TOOL_NAMES, toolSpecs, unknownTools } from '../../src/tools/registry';
import { addTodo, appliedChange, EMPTY_TODO_LIST, removeTodo, type TodoListState, type TodoStore } from '../../src/tools/todoList';

const now = new Date('2026-01-15T22:00:00.000Z');

/** Todo lists in memory, changed by the list's own transitions (as the todoList entity does). */
function memoryTodos() {
  const lists = new Map<string, TodoListState>();
  const calls: string[] = [];
  const list = (chatId: string) => lists.get(chatId) ?? EMPTY_TODO_LIST;
  const store: TodoStore = {
    async add(chatId, toolCallId, task) {
      calls.push(`add ${toolCallId}`);
      lists.set(chatId, addTodo(list(chatId), toolCallId, task, now));
      return appliedChange(list(chatId), toolCallId)!;
    },
    async remove(chatId, toolCallId, id) {
      calls.push(`remove ${toolCallId}`);
      lists.set(chatId, removeTodo(list(chatId), toolCallId, id));
      return appliedChange(list(chatId), toolCallId)!;
    },
    async list(chatId) {
      calls.push('list');
      return list(chatId).items;
    },
  };
  return { store, lists, calls, list };
}

const call = (name: string, args: string, id = 'call-1'): ToolCallRecord => ({ id, name, arguments: args });
const errorOf = (content: string) => (JSON.parse(content) as { error?: string }).error;

describe('runToolCall', () => {
  it('runs a tool with valid arguments and answers its result as JSON', async () => {
    const todos = memoryTodos();
    const ctx = { chatId: 'c', todos: todos.store, now: () => now };
    expect(await runToolCall(call('get_current_time', '{}'), TOOL_NAMES, ctx)).toEqual({ toolCallId: 'call-1', name: 'get_current_time', content: '{"utc":"2026-01-15T22:00:00.000Z"}', failed: false });
    // No arguments at all are an empty object.
    expect(await runToolCall(call('get_current_time', '  '), TOOL_NAMES, ctx)).toMatchObject({ failed: false });
    const added = await runToolCall(call('add_todo', '{"task":"buy milk"}', 'call-2'), TOOL_NAMES, ctx);
    expect(added).toEqual({ toolCallId: 'call-2', name: 'add_todo', content: JSON.stringify({ id: 1, task: 'buy milk', createdAt: now.toISOString() }), failed: false });
    expect(JSON.parse((await runToolCall(call('get_todos', '{}', 'call-3'), TOOL_NAMES, ctx)).content)).toEqual({ todos: [{ id: 1, task: 'buy milk', createdAt: now.toISOString() }] });
    expect(await runToolCall(call('remove_todo', '{"id":1}', 'call-4'), TOOL_NAMES, ctx)).toMatchObject({ failed: false, content: JSON.stringify({ removed: { id: 1, task: 'buy milk', createdAt: now.toISOString() } }) });
    expect(todos.list('c').items).toEqual([]);
  });

  it('answers arguments that are not JSON with an error the model sees, without running the tool', async () => {
    const todos = memoryTodos();
    const result = await runToolCall(call('add_todo', '{"task": "buy'), TOOL_NAMES, { chatId: 'c', todos: todos.store, now: () => now });
    expect(result).toMatchObject({ toolCallId: 'call-1', name: 'add_todo', failed: true });
    expect(errorOf(result.content)).toBe('The arguments are not valid JSON: {"task": "buy');
    expect(todos.calls).toEqual([]);
  });

  it.each([
    ['add_todo', '{"task":""}', 'task'],
    ['add_todo', '{"task":42}', 'task'],
    ['add_todo', '{}', 'task'],
    ['remove_todo', '{"id":"1"}', 'id'],
    ['remove_todo', '{"id":1.5}', 'id'],
    ['remove_todo', '[1]', ''],
  ])('answers %s with arguments %s that do not fit its schema with an error naming the field', async (name, args, field) => {
    const todos = memoryTodos();
    const result = await runToolCall(call(name, args), TOOL_NAMES, { chatId: 'c', todos: todos.store, now: () => now });
    expect(result.failed).toBe(true);
    expect(errorOf(result.content)).toMatch(/^Invalid arguments: /);
    expect(errorOf(result.content)).toContain(field);
    expect(todos.calls).toEqual([]);
  });

  it("answers a tool the app does not have, or one the chat did not enable, as no such tool, without running it", async () => {
    const todos = memoryTodos();
    const ctx = { chatId: 'c', todos: todos.store, now: () => now };
    const unknown = await runToolCall(call('launch_rockets', '{}'), TOOL_NAMES, ctx);
    expect(unknown).toEqual({ toolCallId: 'call-1', name: 'launch_rockets', content: JSON.stringify({ error: "There is no tool named 'launch_rockets'." }), failed: true });
    const disabled = await runToolCall(call('add_todo', '{"task":"x"}'), ['get_current_time'], ctx);
    expect(disabled).toMatchObject({ failed: true, content: JSON.stringify({ error: "There is no tool named 'add_todo'." }) });
    expect(todos.calls).toEqual([]);
    // The tool step activity holds a call to the chat's tools the same way.
    expect(await runToolStep({ chatId: 'c', call: call('get_current_time', '{}'), tools: [] }, { todos: todos.store, now: () => now })).toMatchObject({ failed: true });
    expect(await runToolStep({ chatId: 'c', call: call('get_current_time', '{}'), tools: ['get_current_time'] }, { todos: todos.store, now: () => now })).toMatchObject({ failed: false });
  });

  it('answers a tool that throws with its message (remove_todo of an id not on the list), and the list records it', async () => {
    const todos = memoryTodos();
    const result = await runToolCall(call('remove_todo', '{"id":7}'), TOOL_NAMES, { chatId: 'c', todos: todos.store, now: () => now });
    expect(result).toEqual({ toolCallId: 'call-1', name: 'remove_todo', content: JSON.stringify({ error: 'There is no task with id 7.' }), failed: true });
    expect(appliedChange(todos.list('c'), 'call-1')).toEqual({ kind: 'not_found', id: 7 });
  });

  it('answers a call that runs again (an activity re-run) as it did the first time, changing the list once', async () => {
    const todos = memoryTodos();
    const ctx = { chatId: 'c', todos: todos.store, now: () => now };
    const first = await runToolCall(call('add_todo', '{"task":"once"}', 'same'), TOOL_NAMES, ctx);
    const again = await runToolCall(call('add_todo', '{"task":"once"}', 'same'), TOOL_NAMES, ctx);
    expect(again).toEqual(first);
    expect(todos.list('c').items).toHaveLength(1);
  });

  it('keeps one todo list per chat', async () => {
    const todos = memoryTodos();
    await runToolCall(call('add_todo', '{"task":"mine"}'), TOOL_NAMES, { chatId: 'a', todos: todos.store, now: () => now });
    const other = await runToolCall(call('get_todos', '{}', 'call-2'), TOOL_NAMES, { chatId: 'b', todos: todos.store, now: () => now });
    expect(JSON.parse(other.content)).toEqual({ todos: [] });
  });
});

describe('toolSpecs', () => {
  it('describes each tool with a JSON Schema object without the $schema dialect, in the order asked', () => {
    const specs = toolSpecs(['remove_todo', 'get_current_time', 'add_todo']);
    expect(specs.map((s) => s.name)).toEqual(['remove_todo', 'get_current_time', 'add_todo']);
    for (const spec of specs) {
      expect(spec.description.length).toBeGreaterThan(10);
      expect(spec.parameters).not.toHaveProperty('$schema');
      expect(spec.parameters).toMatchObject({ type: 'object' });
    }
    expect(specs[0]?.parameters).toMatchObject({ properties: { id: { type: 'integer', description: expect.any(String) } }, required: ['id'] });
    expect(specs[2]?.parameters).toMatchObject({ properties: { task: { type: 'string', minLength: 1, maxLength: 1000 } }, required: ['task'] });
    expect(JSON.stringify(specs)).not.toContain('$schema');
  });

  it('leaves out names that are not tools, and names them for the chat API to refuse', () => {
    expect(toolSpecs(['nope', 'get_todos']).map((s) => s.name)).toEqual(['get_todos']);
    expect(toolSpecs([])).toEqual([]);
    expect(unknownTools(['get_todos', 'nope', 'rm -rf'])).toEqual(['nope', 'rm -rf']);
    expect(TOOL_NAMES).toEqual(['get_current_time', 'add_todo', 'get_todos', 'remove_todo']);
  });
});

describe('todo list', () => {
  it('adds with increasing ids, once per tool call id', () => {
    const one = addTodo(EMPTY_TODO_LIST, 't1', 'first', now);
    const two = addTodo(one, 't2', 'second', now);
    expect(two.items).toEqual([
      { id: 1, task: 'first', createdAt: now.toISOString() },
      { id: 2, task: 'second', createdAt: now.toISOString() },
    ]);
    expect(addTodo(two, 't1', 'first', now)).toBe(two);
    expect(appliedChange(two, 't2')).toEqual({ kind: 'added', item: { id: 2, task: 'second', createdAt: now.toISOString() } });
    expect(EMPTY_TODO_LIST).toEqual({ items: [], nextId: 1, applied: [] });
  });

  it('removes by id once per tool call id, never reuses an id, and records an unknown id as not found', () => {
    const listed = addTodo(addTodo(EMPTY_TODO_LIST, 't1', 'first', now), 't2', 'second', now);
    const removed = removeTodo(listed, 'r1', 1);
    expect(removed.items.map((i) => i.id)).toEqual([2]);
    expect(appliedChange(removed, 'r1')).toEqual({ kind: 'removed', item: { id: 1, task: 'first', createdAt: now.toISOString() } });
    // The same call again changes nothing and keeps its first answer; another call for the same id finds nothing.
    expect(removeTodo(removed, 'r1', 1)).toBe(removed);
    const missing = removeTodo(removed, 'r2', 1);
    expect(missing.items).toEqual(removed.items);
    expect(appliedChange(missing, 'r2')).toEqual({ kind: 'not_found', id: 1 });
    expect(addTodo(missing, 't3', 'third', now).items.map((i) => i.id)).toEqual([2, 3]);
  });

  it('remembers a bounded number of calls', () => {
    let list = EMPTY_TODO_LIST;
    for (let i = 0; i < 250; i++) list = removeTodo(list, `r${i}`, 99);
    expect(list.applied).toHaveLength(200);
    expect(appliedChange(list, 'r249')).toEqual({ kind: 'not_found', id: 99 });
    expect(appliedChange(list, 'r0')).toBeUndefined();
  });

  it('reads a stored list validated: none is empty, a broken one is a storage fault', () => {
    expect(parseTodoList(undefined)).toEqual(EMPTY_TODO_LIST);
    const stored = addTodo(EMPTY_TODO_LIST, 't1', 'x', now);
    expect(parseTodoList(JSON.parse(JSON.stringify(stored)))).toEqual(stored);
    expect(() => parseTodoList({ items: 'no' })).toThrow(ChatStoreUnavailableError);
  });
});
