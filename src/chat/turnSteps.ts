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
import { CANCELLED_TURN_MESSAGE, type ToolCallRecord, type ToolResult } from './state';
import { CANCELLED_CODE, type ModelStepInput, type ModelStepOutput, type StopStepInput, type ToolStepInput } from './turn';
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

const STOPPED = Symbol('stopped');
// How often a running model call looks for its turn's stop request.
const STOP_POLL_MS = 250;

/** Resolves once the turn's stop request is stored (never, without a stream store); `dispose` ends the polling. */
function watchForStop(ports: ModelStepPorts, input: ModelStepInput): { stopped: Promise<typeof STOPPED>; dispose(): void } {
  const streams = ports.streams;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let disposed = false;
  const stopped = new Promise<typeof STOPPED>((resolve) => {
    if (streams === undefined) return;
    const poll = (): void => {
      void streams.stopRequested(input.chatId, input.messageId).then(
        (yes) => (yes ? resolve(STOPPED) : undefined),
        () => undefined,
      ).finally(() => {
        if (!disposed) timer = setTimeout(poll, STOP_POLL_MS);
      });
    };
    poll();
  });
  return {
    stopped,
    dispose: () => {
      disposed = true;
      clearTimeout(timer);
    },
  };
}

const cancelledStep = (partialText: string, totalTokens: number): ModelStepOutput => ({ ok: false, code: CANCELLED_CODE, message: CANCELLED_TURN_MESSAGE, partialText, totalTokens });

/**
 * One model call of a turn. It stops early when its turn is cancelled (the stop step stores a stop
 * request, looked for every 250 ms) and then answers with the text produced so far.
 */
export async function runModelStep(input: ModelStepInput, ports: ModelStepPorts): Promise<ModelStepOutput> {
  const request: CompletionRequest = input.tools.length === 0 ? { messages: input.prompt } : { messages: input.prompt, tools: toolSpecs(input.tools) };
  const stop = watchForStop(ports, input);
  try {
    if (!input.stream || ports.streams === undefined) {
      let completion: Completion | typeof STOPPED;
      try {
        const call = ports.model().complete(request);
        call.catch(() => undefined); // its answer is dropped if the turn stops first
        completion = await Promise.race([call, stop.stopped]);
      } catch (err) {
        return failure(err, '', 0);
      }
      if (completion === STOPPED) return cancelledStep('', 0);
      return { ok: true, text: completion.text, toolCalls: completion.toolCalls, totalTokens: completion.totalTokens };
    }
    const publisher = new TurnStreamPublisher(ports.streams, input.chatId, input.messageId, newAttemptId(ports.now()), () => ports.announce(input.chatId));
    publisher.start(input.round, input.userCreatedAt, input.previousResults);
    let text = '';
    let toolCalls: ToolCallRecord[] = [];
    let totalTokens = 0;
    try {
      const opened = await Promise.race([ports.model().stream(request), stop.stopped]);
      if (opened === STOPPED) {
        await publisher.end();
        return { ...cancelledStep(text, totalTokens), streamAttempt: publisher.attempt };
      }
      const chunks: AsyncIterator<CompletionChunk> = opened[Symbol.asyncIterator]();
      for (;;) {
        const next = await Promise.race([chunks.next(), stop.stopped]);
        if (next === STOPPED) {
          void chunks.return?.().catch(() => undefined); // closes the model call
          await publisher.end();
          return { ...cancelledStep(text, totalTokens), streamAttempt: publisher.attempt };
        }
        if (next.done === true) break;
        const chunk = next.value;
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
  } finally {
    stop.dispose();
  }
}

/** Stops the turn's running model call: it sees the stop request within a poll and ends. */
export async function runStopStep(input: StopStepInput, ports: Pick<ModelStepPorts, 'streams'>): Promise<void> {
  await ports.streams?.requestStop(input.chatId, input.messageId);
}

export interface ToolStepPorts {
  todos: TodoStore;
  now(): Date;
}

export function runToolStep(input: ToolStepInput, ports: ToolStepPorts): Promise<ToolResult> {
  return runToolCall(input.call, input.tools, { chatId: input.chatId, todos: ports.todos, now: ports.now });
}
