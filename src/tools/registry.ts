/**
 * The tools the app has, and how one call of the model runs: arguments parsed and validated, the
 * tool run, and any failure turned into a result the model sees (a tool never fails a turn).
 */
import { z } from 'zod';
import type { ToolCallRecord, ToolResult } from '../chat/state';
import type { ToolSpec } from '../model/client';
import { getCurrentTime } from './getCurrentTime';
import type { Tool, ToolContext } from './tool';
import { addTodo, getTodos, removeTodo } from './todos';

export const TOOLS: readonly Tool[] = [getCurrentTime, addTodo, getTodos, removeTodo];

export const TOOL_NAMES: readonly string[] = TOOLS.map((t) => t.name);

/** The tools whose calls wait for a person's approval before they run. */
export const APPROVAL_TOOL_NAMES: readonly string[] = TOOLS.filter((t) => t.needsApproval === true).map((t) => t.name);

export function findTool(name: string): Tool | undefined {
  return TOOLS.find((t) => t.name === name);
}

/** The names that are not tools of this app. */
export function unknownTools(names: readonly string[]): string[] {
  return names.filter((n) => findTool(n) === undefined);
}

/** The tools `names` as the model is told about them. */
export function toolSpecs(names: readonly string[]): ToolSpec[] {
  return names.flatMap((name) => {
    const tool = findTool(name);
    if (tool === undefined) return [];
    const { $schema: _dialect, ...parameters } = z.toJSONSchema(tool.input) as Record<string, unknown>;
    return [{ name: tool.name, description: tool.description, parameters }];
  });
}

/** Runs one call: the result's content is JSON, `{"error": ...}` when the call failed. */
export async function runToolCall(call: ToolCallRecord, enabled: readonly string[], ctx: Omit<ToolContext, 'toolCallId'>): Promise<ToolResult> {
  const failed = (message: string): ToolResult => ({ toolCallId: call.id, name: call.name, content: JSON.stringify({ error: message }), failed: true });
  const tool = enabled.includes(call.name) ? findTool(call.name) : undefined;
  if (tool === undefined) return failed(`There is no tool named '${call.name}'.`);
  let raw: unknown;
  try {
    raw = call.arguments.trim() === '' ? {} : JSON.parse(call.arguments);
  } catch {
    return failed(`The arguments are not valid JSON: ${call.arguments.slice(0, 200)}`);
  }
  const args = tool.input.safeParse(raw);
  if (!args.success) return failed(`Invalid arguments: ${z.prettifyError(args.error)}`);
  try {
    const result = await tool.run(args.data, { ...ctx, toolCallId: call.id });
    return { toolCallId: call.id, name: call.name, content: JSON.stringify(result ?? null), failed: false };
  } catch (err) {
    return failed(err instanceof Error ? err.message : 'The tool failed.');
  }
}
