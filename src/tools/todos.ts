/** The todo tools, like the Functions OpenAI extension's assistant sample: a per-chat list. */
import { z } from 'zod';
import { defineTool } from './tool';

export const addTodo = defineTool({
  name: 'add_todo',
  description: "Adds a task to the user's todo list and returns it with its id.",
  input: z.object({ task: z.string().min(1).max(1_000).describe('The task, in a few words.') }),
  run: async ({ task }, ctx) => {
    const change = await ctx.todos.add(ctx.chatId, ctx.toolCallId, task);
    if (change.kind !== 'added') throw new Error('The task could not be added.');
    return change.item;
  },
});

export const getTodos = defineTool({
  name: 'get_todos',
  description: "Lists the tasks on the user's todo list, oldest first.",
  input: z.object({}),
  run: async (_args, ctx) => ({ todos: await ctx.todos.list(ctx.chatId) }),
});

export const removeTodo = defineTool({
  name: 'remove_todo',
  description: "Removes a task from the user's todo list by its id.",
  // Removing is the one tool that loses something: a person approves each call.
  needsApproval: true,
  input: z.object({ id: z.number().int().positive().describe('The id get_todos or add_todo returned.') }),
  run: async ({ id }, ctx) => {
    const change = await ctx.todos.remove(ctx.chatId, ctx.toolCallId, id);
    if (change.kind === 'not_found') throw new Error(`There is no task with id ${id}.`);
    return { removed: change.item };
  },
});
