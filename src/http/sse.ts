/**
 * Server-Sent Events for streamed completions: `delta` events with text as it arrives, a final
 * `done` event with usage, or an `error` event (the JSON error body) if the model fails mid-stream.
 * Pull-based, so nothing is read from the model faster than the client takes it.
 */
import type { TurnEvent } from '../chat/turnStream';
import type { UIStreamItem } from '../chat/uiMessageStream';
import { AppError, ModelFailedError } from '../errors';
import type { CompletionChunk } from '../model';

const encoder = new TextEncoder();

function event(name: string, data: unknown): Uint8Array {
  return encoder.encode(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
}

export function completionEventStream(chunks: AsyncIterable<CompletionChunk>): ReadableStream<Uint8Array> {
  const iterator = chunks[Symbol.asyncIterator]();
  let usage: Omit<Extract<CompletionChunk, { type: 'usage' }>, 'type'> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done) {
            controller.enqueue(event('done', { usage: usage ?? null }));
            controller.close();
            return;
          }
          if (next.value.type === 'delta') {
            controller.enqueue(event('delta', { text: next.value.text }));
            return;
          }
          if (next.value.type === 'usage') {
            const { type: _type, ...rest } = next.value;
            usage = rest;
          }
        }
      } catch (err) {
        const failure = err instanceof AppError ? err : new ModelFailedError('The model stream failed.');
        controller.enqueue(event('error', { error: { code: failure.code, message: failure.message } }));
        controller.close();
      }
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}

/** True when the client asked for Server-Sent Events. */
export function wantsEventStream(accept: string | null): boolean {
  return accept !== null && accept.split(',').some((type) => type.trim().toLowerCase().startsWith('text/event-stream'));
}

export const EVENT_STREAM_HEADERS = { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache' } as const;

/** A streamed chat turn as SSE: every event with an `id:` a client can resume from (Last-Event-ID). */
export function turnEventStream(events: AsyncIterable<TurnEvent>): ReadableStream<Uint8Array> {
  const iterator = events[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await iterator.next();
        if (next.done) {
          controller.close();
          return;
        }
        const e = next.value;
        controller.enqueue(encoder.encode(e.event === 'ping' ? ': ping\n\n' : `id: ${e.id}\nevent: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`));
      } catch (err) {
        // The chat store failed while tailing: the client may resume from its last event id.
        const failure = err instanceof AppError ? err : new ModelFailedError('The turn could not be followed.');
        controller.enqueue(event('error', { error: { code: failure.code, message: failure.message } }));
        controller.close();
      }
    },
    async cancel() {
      await iterator.return?.(undefined);
    },
  });
}

/** The AI SDK's UI message stream headers: DefaultChatTransport reads the body as that protocol. */
export const UI_MESSAGE_STREAM_HEADERS = { ...EVENT_STREAM_HEADERS, 'x-vercel-ai-ui-message-stream': 'v1', 'X-Accel-Buffering': 'no' } as const;

/** A turn as the AI SDK's UI message stream: a `data:` frame per chunk, keep-alives as comments, then `data: [DONE]`. */
export function uiMessageEventStream(items: AsyncIterable<UIStreamItem>): ReadableStream<Uint8Array> {
  const iterator = items[Symbol.asyncIterator]();
  let ended = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (ended) {
        controller.close();
        return;
      }
      try {
        const next = await iterator.next();
        if (next.done) {
          ended = true;
          controller.enqueue(encoder.encode('data: [DONE]\n\n'));
          return;
        }
        const item = next.value;
        controller.enqueue(encoder.encode(item.type === 'ping' ? ': ping\n\n' : `data: ${JSON.stringify(item)}\n\n`));
      } catch (err) {
        // The chat store failed while following the turn: the client may resume with GET .../stream.
        const failure = err instanceof AppError ? err : new ModelFailedError('The turn could not be followed.');
        ended = true;
        controller.enqueue(encoder.encode(`data: ${JSON.stringify({ type: 'error', errorText: failure.message })}\n\ndata: [DONE]\n\n`));
      }
    },
    async cancel() {
      await iterator.return?.(undefined);
    },
  });
}
