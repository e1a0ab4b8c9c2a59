/**
 * The steps of a turn that do I/O, each run as an activity of the turn's orchestration: one model
 * call (published as it streams, for a streamed turn) and one tool call. Failures become data the
 * orchestration records: a model failure ends the turn with a failed-turn record, a tool failure is a
 * result the model sees.
 */
import { AppError } from '../errors';
import type { Completion, CompletionChunk, CompletionRequest, ModelClient } from '../model/client';
import { runToolCall, toolSpecs } from '../tools/registry';
import type { TodoStore } from '../tools/todoList';
import type { ToolCallRecord, ToolResult } from './state';
import type { ModelStepInput, ModelStepOutput, ToolStepInput } from './turn';
import { newAttemptId, TurnStreamPublisher, type TurnStreamStore } from './turnStream';

export interface ModelStepPorts {
  model: () => ModelClient;
  /** Where streamed turns are published; without it a streamed turn is answered when done. */
  streams: TurnStreamStore | undefined;
  /** Tells readers in this process that records of the chat's turn were stored. */
  announce(chatId: string): void;
  now(): number;
}

function failure(err: unknown, partialText: string, totalTokens: number): ModelStepOutput {
  const message = err instanceof Error ? err.message : 'The model call failed.';
  return { ok: false, code: err instanceof AppError ? err.code : 'model_failed', message, partialText, totalTokens };
}

export async function runModelStep(input: ModelStepInput, ports: ModelStepPorts): Promise<ModelStepOutput> {
  const request: CompletionRequest = input.tools.length === 0 ? { messages: input.prompt } : { messages: input.prompt, tools: toolSpecs(input.tools) };
  if (!input.stream || ports.streams === undefined) {
    let completion: Completion;
    try {
      completion = await ports.model().complete(request);
    } catch (err) {
      return failure(err, '', 0);
    }
    return { ok: true, text: completion.text, toolCalls: completion.toolCalls, totalTokens: completion.totalTokens };
  }
  const publisher = new TurnStreamPublisher(ports.streams, input.chatId, input.messageId, newAttemptId(ports.now()), () => ports.announce(input.chatId));
  publisher.start(input.round, input.userCreatedAt, input.previousResults);
  let text = '';
  let toolCalls: ToolCallRecord[] = [];
  let totalTokens = 0;
  try {
    const chunks: AsyncIterable<CompletionChunk> = await ports.model().stream(request);
    for await (const chunk of chunks) {
      if (chunk.type === 'delta') {
        text += chunk.text;
        publisher.text(chunk.text);
      } else if (chunk.type === 'tool-calls') {
        toolCalls = chunk.calls;
      } else {
        totalTokens = chunk.totalTokens;
      }
    }
  } catch (err) {
    await publisher.end();
    return { ...failure(err, text, totalTokens), streamAttempt: publisher.attempt };
  }
  await publisher.end(toolCalls);
  return { ok: true, text, toolCalls, totalTokens, streamAttempt: publisher.attempt };
}

export interface ToolStepPorts {
  todos: TodoStore;
  now(): Date;
}

export function runToolStep(input: ToolStepInput, ports: ToolStepPorts): Promise<ToolResult> {
  return runToolCall(input.call, input.tools, { chatId: input.chatId, todos: ports.todos, now: ports.now });
}
