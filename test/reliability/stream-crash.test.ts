/**
 * A streamed turn across a kill -9 of the runtime (the local host, or the Functions host with its
 * Node worker): the client loses its connection mid-reply and resumes with Last-Event-ID once the
 * runtime is back. The turn runs again under a new attempt, so the client is told to restart the
 * text (`reset`) and gets the new attempt's text, which is what the chat stores, once.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { allEvents, sseEvents, streamedText, type SseEvent } from '../support/sse';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ MODEL_MAX_RETRIES: '1' });
});
afterAll(() => t?.stop());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const json = { 'Content-Type': 'application/json' };
const firstAttempt = Array.from({ length: 100 }, (_, i) => `first${i} `);
const secondAttempt = Array.from({ length: 20 }, (_, i) => `second${i} `);

it('restarts the text of a turn killed mid-stream, and stores the turn once', { timeout: 240_000 }, async () => {
  expect((await fetch(t.url('/api/chats/stream-kill'), { method: 'PUT', headers: json, body: '{}' })).status).toBe(201);
  t.model.enqueue({ stream: firstAttempt, chunkDelayMs: 50 });
  t.model.setDefault({ stream: secondAttempt, chunkDelayMs: 5 });
  const headers = { ...json, Accept: 'text/event-stream', 'Idempotency-Key': 'killed-1' };
  const post = (extra: Record<string, string> = {}) => fetch(t.url('/api/chats/stream-kill'), { method: 'POST', headers: { ...headers, ...extra }, body: JSON.stringify({ message: 'a long story, please' }) });

  const seen: SseEvent[] = [];
  const reading = (async () => {
    try {
      for await (const e of sseEvents(await post())) seen.push(e);
    } catch {
      // the connection dies with the runtime
    }
  })();
  // Kill once part of the reply has been streamed.
  while (seen.filter((e) => e.event === 'delta').length < 3) await sleep(10);
  await t.restartHost({ kill: true });
  await reading;
  expect(seen.at(-1)?.event).toBe('delta');
  const lastId = seen.at(-1)?.id ?? '';

  // Resume as a client would: the same POST with the same key and the last event id, retried until the runtime answers.
  let resumed: SseEvent[] | undefined;
  for (let attempt = 0; resumed === undefined && attempt < 100; attempt++) {
    try {
      const response = await post({ 'Last-Event-ID': lastId });
      if (response.status === 200) resumed = await allEvents(response);
      else await response.arrayBuffer();
    } catch {
      await sleep(500);
    }
  }
  expect(resumed).toBeDefined();
  const events = resumed ?? [];
  const reset = events.findIndex((e) => e.event === 'reset');
  expect(reset).toBeGreaterThanOrEqual(0);
  // Nothing of the killed attempt after the reset; the new attempt's text, complete.
  expect(streamedText(events)).toBe(secondAttempt.join(''));
  expect(events.at(-1)).toMatchObject({ event: 'done', data: { id: 'killed-1.reply' } });

  const chat = (await (await fetch(t.url('/api/chats/stream-kill'))).json()) as { recentMessages: { id: string; content: string }[] };
  expect(chat.recentMessages.map((m) => [m.id, m.content])).toEqual([
    ['killed-1', 'a long story, please'],
    ['killed-1.reply', secondAttempt.join('')],
  ]);
});
