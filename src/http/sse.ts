/**
 * Server-Sent Events for streamed completions: `delta` events with text as it arrives, a final
 * `done` event with usage, or an `error` event (the JSON error body) if the model fails mid-stream.
 * Pull-based, so nothing is read from the model faster than the client takes it.
 */
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
          const { type: _type, ...rest } = next.value;
          usage = rest;
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
