/**
 * A chat's todo list: the state of its `todolist` entity and the transitions of its operations.
 * Adding and removing are keyed by the tool call that asked for them, so a call that runs twice
 * (an activity re-run after a crash) changes the list once and gets the same answer.
 */
export interface TodoItem {
  id: number;
  task: string;
  createdAt: string;
}

export type TodoChange = { kind: 'added'; item: TodoItem } | { kind: 'removed'; item: TodoItem } | { kind: 'not_found'; id: number };

export interface TodoListState {
  items: TodoItem[];
  nextId: number;
  /** What recent calls did, by tool call id (bounded): a repeated call gets its first answer. */
  applied: { toolCallId: string; change: TodoChange }[];
}

const REMEMBERED_CALLS = 200;

export const EMPTY_TODO_LIST: TodoListState = { items: [], nextId: 1, applied: [] };

export function appliedChange(state: TodoListState, toolCallId: string): TodoChange | undefined {
  return state.applied.find((a) => a.toolCallId === toolCallId)?.change;
}

function remember(state: TodoListState, toolCallId: string, change: TodoChange): TodoListState {
  return { ...state, applied: [...state.applied, { toolCallId, change }].slice(-REMEMBERED_CALLS) };
}

export function addTodo(state: TodoListState, toolCallId: string, task: string, now: Date): TodoListState {
  if (appliedChange(state, toolCallId) !== undefined) return state;
  const item: TodoItem = { id: state.nextId, task, createdAt: now.toISOString() };
  return remember({ ...state, items: [...state.items, item], nextId: state.nextId + 1 }, toolCallId, { kind: 'added', item });
}

export function removeTodo(state: TodoListState, toolCallId: string, id: number): TodoListState {
  if (appliedChange(state, toolCallId) !== undefined) return state;
  const item = state.items.find((i) => i.id === id);
  if (item === undefined) return remember(state, toolCallId, { kind: 'not_found', id });
  return remember({ ...state, items: state.items.filter((i) => i.id !== id) }, toolCallId, { kind: 'removed', item });
}

/** Where todo lists live (a `todolist` entity per chat in production). */
export interface TodoStore {
  /** Applies the change once per tool call and returns what it did. */
  add(chatId: string, toolCallId: string, task: string): Promise<TodoChange>;
  remove(chatId: string, toolCallId: string, id: number): Promise<TodoChange>;
  list(chatId: string): Promise<TodoItem[]>;
}
