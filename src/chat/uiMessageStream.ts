/**
 * A chat turn in the AI SDK's UI message stream protocol (`x-vercel-ai-ui-message-stream: v1`), the
 * wire format `useChat`'s DefaultChatTransport reads: the turn's events (chat/turnStream.ts) become
 * `start`, steps (`start-step`/`finish-step`, one per model call), text blocks, tool parts (input,
 * approval request, output, error, denied) and a `finish`, `error` or `abort` at the end.
 *
 * A turn that waits for approval ends its UI stream there (`finish` with finishReason `tool-calls`):
 * the client answers with its next POST, whose stream continues the same assistant message from the
 * round's results (`continueAfter`). So that `lastAssistantMessageIsCompleteWithApprovalResponses`
 * can send that POST, a round that waits shows only its calls that need approval; its other calls are
 * shown with their results.
 */
import type { TurnEvent } from './turnStream';

export type UIMessageChunk =
  | { type: 'start'; messageId: string }
  | { type: 'start-step' }
  | { type: 'finish-step' }
  | { type: 'reset-step' }
  | { type: 'text-start'; id: string }
  | { type: 'text-delta'; id: string; delta: string }
  | { type: 'text-end'; id: string }
  | { type: 'tool-input-available'; toolCallId: string; toolName: string; input: unknown }
  | { type: 'tool-approval-request'; approvalId: string; toolCallId: string }
  | { type: 'tool-output-available'; toolCallId: string; output: unknown }
  | { type: 'tool-output-error'; toolCallId: string; errorText: string }
  | { type: 'tool-output-denied'; toolCallId: string }
  | { type: 'error'; errorText: string }
  | { type: 'finish'; finishReason: 'stop' | 'tool-calls' | 'error' }
  | { type: 'abort'; reason: string };

/** A chunk, or a keep-alive (an SSE comment) while nothing happens. */
export type UIStreamItem = UIMessageChunk | { type: 'ping' };

export interface UIStreamOptions {
  /** The assistant message's id (the reply's id in the chat). */
  replyId: string;
  needsApproval(toolName: string): boolean;
  /** Whether the turn waits for an answer to a call of `round` now (read from the chat). */
  waitsForAnswer(round: number): Promise<boolean>;
  /** Continue after a pause for approval: the round of these calls was shown; start at its results. */
  continueAfter?: ReadonlySet<string>;
}

interface ShownCall {
  round: number;
  name: string;
  input: unknown;
  /** Deferred to its result: a call needing no approval in a round that waits. */
  deferred: boolean;
}

/** The text of a tool result or call arguments as a value: JSON when it parses, else the text. */
function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export async function* toUIMessageStream(events: AsyncIterable<TurnEvent>, options: UIStreamOptions): AsyncGenerator<UIStreamItem> {
  yield { type: 'start', messageId: options.replyId };
  const calls = new Map<string, ShownCall>();
  let skipping = options.continueAfter !== undefined;
  let stepOpen = false;
  let text: string | undefined; // the open text block's id
  let blocks = 0;
  let asked = 0; // approval requests shown in the open step
  let deferredInRound: Extract<TurnEvent, { event: 'tool-call' }>[] = [];

  function* openStep(): Generator<UIMessageChunk> {
    if (!stepOpen) {
      stepOpen = true;
      asked = 0;
      yield { type: 'start-step' };
    }
  }
  function* closeText(): Generator<UIMessageChunk> {
    if (text !== undefined) yield { type: 'text-end', id: text };
    text = undefined;
  }
  function* closeStep(): Generator<UIMessageChunk> {
    yield* closeText();
    if (stepOpen) yield { type: 'finish-step' };
    stepOpen = false;
  }
  // A round's calls are shown at once when its first event after the calls comes (or it pauses).
  function* flushCalls(waits: boolean): Generator<UIMessageChunk> {
    for (const call of deferredInRound) {
      const deferred = waits && !options.needsApproval(call.data.name);
      calls.set(call.data.toolCallId, { round: call.data.round, name: call.data.name, input: jsonOrText(call.data.arguments), deferred });
      if (!deferred) yield { type: 'tool-input-available', toolCallId: call.data.toolCallId, toolName: call.data.name, input: jsonOrText(call.data.arguments) };
    }
    deferredInRound = [];
  }

  for await (const e of events) {
    if (e.event === 'ping') {
      yield { type: 'ping' };
      continue;
    }
    if (skipping) {
      // Replayed up to the pause the client saw: note the round's calls, start at their results.
      if (e.event === 'tool-call') calls.set(e.data.toolCallId, { round: e.data.round, name: e.data.name, input: jsonOrText(e.data.arguments), deferred: !options.needsApproval(e.data.name) });
      const paused = [...(options.continueAfter ?? [])].map((id) => calls.get(id)?.round).find((r) => r !== undefined);
      const resumes = e.event === 'tool-result' && paused !== undefined && calls.get(e.data.toolCallId)?.round === paused;
      if (!resumes && e.event !== 'done' && e.event !== 'error' && e.event !== 'cancelled') continue;
      skipping = false;
    }
    switch (e.event) {
      case 'message':
        break;
      case 'delta':
        yield* flushCalls(false);
        yield* openStep();
        if (text === undefined) {
          // Unique within the message across the client's requests: the attempt (one run of one model call) and a count.
          text = `${e.id.split(':')[0] ?? 'text'}-${++blocks}`;
          yield { type: 'text-start', id: text };
        }
        yield { type: 'text-delta', id: text, delta: e.data.text };
        break;
      case 'reset':
        // The model call runs again: what it streamed is void (tool parts of earlier rounds stand).
        yield* closeText();
        if (stepOpen) yield { type: 'reset-step' };
        break;
      case 'tool-call':
        yield* openStep();
        yield* closeText();
        deferredInRound.push(e);
        break;
      case 'approval-request': {
        yield* flushCalls(true);
        yield { type: 'tool-approval-request', approvalId: e.data.toolCallId, toolCallId: e.data.toolCallId };
        asked++;
        const expected = [...calls.values()].filter((c) => c.round === e.data.round && options.needsApproval(c.name)).length;
        if (asked >= expected && (await options.waitsForAnswer(e.data.round))) {
          // The client answers with its next request; this one ends here.
          yield* closeStep();
          yield { type: 'finish', finishReason: 'tool-calls' };
          return;
        }
        break;
      }
      case 'tool-result': {
        yield* flushCalls(false);
        yield* closeStep();
        const call = calls.get(e.data.toolCallId);
        if (call?.deferred === true) {
          yield { type: 'tool-input-available', toolCallId: e.data.toolCallId, toolName: e.data.name, input: call.input };
          call.deferred = false;
        }
        const content = jsonOrText(e.data.content);
        if (e.data.status === 'denied') yield { type: 'tool-output-denied', toolCallId: e.data.toolCallId };
        else if (e.data.status === 'failed') {
          const error = typeof content === 'object' && content !== null && 'error' in content && typeof content.error === 'string' ? content.error : e.data.content;
          yield { type: 'tool-output-error', toolCallId: e.data.toolCallId, errorText: error };
        } else yield { type: 'tool-output-available', toolCallId: e.data.toolCallId, output: content };
        break;
      }
      case 'done':
        yield* flushCalls(false);
        yield* closeStep();
        yield { type: 'finish', finishReason: 'stop' };
        return;
      case 'error':
        yield* closeStep();
        yield { type: 'error', errorText: e.data.error.message };
        yield { type: 'finish', finishReason: 'error' };
        return;
      case 'cancelled':
        yield* closeStep();
        yield { type: 'abort', reason: 'The turn was cancelled.' };
        return;
    }
  }
}
