/**
 * What a tool is: a function the model may call in a turn. Each runs as its own activity of the turn
 * (chat/turnSteps.ts), so a call that completed is never run again; an activity may still run twice
 * if its host dies mid-call, so a tool with effects uses `ctx.toolCallId` to apply them once.
 */
import type { z } from 'zod';
import type { TodoStore } from './todoList';

export interface ToolContext {
  chatId: string;
  /** The model's id for this call: the same on every execution of it. */
  toolCallId: string;
  now(): Date;
  todos: TodoStore;
}

export interface Tool<Args = unknown> {
  name: string;
  description: string;
  /** The arguments, validated before `run`; sent to the model as JSON Schema. */
  input: z.ZodType<Args>;
  /** The call waits for a person to approve it before it runs. */
  needsApproval?: boolean;
  /** The result, sent to the model as JSON. A throw becomes a tool error the model sees. */
  run(args: Args, ctx: ToolContext): Promise<unknown>;
}

/** Keeps a tool's argument type inside its definition while the registry holds tools of any arguments. */
export function defineTool<Args>(tool: Tool<Args>): Tool<unknown> {
  return tool as Tool<unknown>;
}
