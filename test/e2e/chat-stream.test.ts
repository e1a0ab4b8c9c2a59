/**
 * Streamed chat turns on the runtime under test: POST with Accept: text/event-stream gets the stored
 * user message, the reply as the model generates it, then the stored reply; a client that loses the
 * connection resumes with Last-Event-ID and gets exactly the rest; faults end in defined events.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { lastUserContent } from '../support/model-server';
import { pollUntil } from '../support/poll';
import { allEvents, sseEvents, streamedText, type SseEvent } from '../support/sse';
import { countStreamRecords } from '../support/stored';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t?.stop());
beforeEach(() => {
  t.model.setDefault({ reply: (r) => `re: ${lastUserContent(r)}` });
});

const json = { 'Content-Type': 'application/json' };
const put = async (id: string) => expect((await fetch(t.url(`/api/chats/${id}`), { method: 'PUT', headers: json, body: '{}' })).status).toBe(201);
const streamPost = (id: string, message: string, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(t.url(`/api/chats/${id}`), { method: 'POST', headers: { ...json, Accept: 'text/event-stream', ...headers }, body: JSON.stringify({ message }), signal });
const chat = async (id: string) =>
  (await (await fetch(t.url(`/api/chats/${id}`))).json()) as { recentMessages: { id: string; role: string; content: string; createdAt: string; status?: string; error?: string }[] };
const streamRecords = (chatId: string) => countStreamRecords(t, chatId);
const words = (n: number) => Array.from({ length: n }, (_, i) => `word${i} `);

describe('streamed chat turns', () => {
  it('streams the stored user message, deltas as the model produces them, then the stored reply; every event has an id', async () => {
    await put('stream-basic');
    const pieces = words(12);
    t.model.enqueue({ stream: pieces, chunkDelayMs: 40 });
    const response = await streamPost('stream-basic', 'Tell me a story', { 'Idempotency-Key': 'story-1' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    expect(response.headers.get('x-message-id')).toBe('story-1');
    const events = await allEvents(response);
    expect(events.every((e) => typeof e.id === 'string' && e.id.length > 0)).toBe(true);
    expect(events[0]).toMatchObject({ event: 'message', data: { id: 'story-1', role: 'user' } });
    const deltas = events.filter((e) => e.event === 'delta');
    // Text arrived in more than one piece, before the model had finished.
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas[0]!.receivedAt).toBeLessThan(events.at(-1)!.receivedAt - 200);
    expect(streamedText(events)).toBe(pieces.join(''));
    const done = events.at(-1)!;
    expect(done).toMatchObject({ event: 'done', data: { id: 'story-1.reply', role: 'assistant', replyTo: 'story-1' } });
    const stored = await chat('stream-basic');
    expect(stored.recentMessages.map((m) => [m.id, m.content])).toEqual([
      ['story-1', 'Tell me a story'],
      ['story-1.reply', pieces.join('')],
    ]);
    expect((done.data as { createdAt: string }).createdAt).toBe(stored.recentMessages[1]!.createdAt);
    expect((events[0]!.data as { createdAt: string }).createdAt).toBe(stored.recentMessages[0]!.createdAt);

    // The same POST again (same key) streams the same turn from the stored reply, storing nothing new.
    const again = await allEvents(await streamPost('stream-basic', 'Tell me a story', { 'Idempotency-Key': 'story-1' }));
    expect(streamedText(again)).toBe(pieces.join(''));
    expect(again.at(-1)).toMatchObject({ event: 'done', data: { id: 'story-1.reply' } });
    expect((await chat('stream-basic')).recentMessages).toHaveLength(2);
  });

  it('resumes after a cut connection with Last-Event-ID: exactly the rest of the text, while streaming and after the turn is done', async () => {
    await put('stream-resume');
    const pieces = words(30);
    t.model.enqueue({ stream: pieces, chunkDelayMs: 30 });
    const cut = new AbortController();
    const first = await streamPost('stream-resume', 'Go', { 'Idempotency-Key': 'resume-1' }, cut.signal);
    const seen: SseEvent[] = [];
    for await (const e of sseEvents(first)) {
      seen.push(e);
      if (seen.filter((x) => x.event === 'delta').length === 3) break;
    }
    cut.abort();
    const lastId = seen.at(-1)!.id!;
    const rest = await allEvents(await streamPost('stream-resume', 'Go', { 'Idempotency-Key': 'resume-1', 'Last-Event-ID': lastId }));
    expect(rest.some((e) => e.event === 'reset' || e.event === 'message')).toBe(false);
    expect(streamedText(seen) + streamedText(rest)).toBe(pieces.join(''));
    expect(rest.at(-1)).toMatchObject({ event: 'done' });

    // After the turn: a resume from the middle gets the rest from the stored reply.
    const later = await allEvents(await streamPost('stream-resume', 'Go', { 'Idempotency-Key': 'resume-1', 'Last-Event-ID': lastId }));
    expect(streamedText(seen) + streamedText(later)).toBe(pieces.join(''));
    // From the last event: nothing more.
    expect(await allEvents(await streamPost('stream-resume', 'Go', { 'Idempotency-Key': 'resume-1', 'Last-Event-ID': rest.at(-1)!.id! }))).toEqual([]);
  });

  it('ends a turn whose model stream breaks mid-reply with an error event and a failed-turn record that keeps the partial text', async () => {
    await put('stream-break');
    t.model.enqueue({ stream: words(10), chunkDelayMs: 20, failAfterChunks: 4 });
    const events = await allEvents(await streamPost('stream-break', 'Break', { 'Idempotency-Key': 'break-1' }));
    expect(events.at(-1)).toMatchObject({ event: 'error', data: { id: 'break-1.reply', error: { code: 'model_failed' } } });
    const partial = words(4).join('');
    expect(streamedText(events)).toBe(partial);
    const stored = (await chat('stream-break')).recentMessages[1]!;
    expect(stored).toMatchObject({ id: 'break-1.reply', status: 'failed', content: partial });
  });

  it('completes and stores the turn when the client disconnects mid-stream', async () => {
    await put('stream-gone');
    const pieces = words(20);
    t.model.enqueue({ stream: pieces, chunkDelayMs: 25 });
    const gone = new AbortController();
    const response = await streamPost('stream-gone', 'Bye', { 'Idempotency-Key': 'gone-1' }, gone.signal);
    for await (const e of sseEvents(response)) if (e.event === 'delta') break;
    gone.abort();
    const stored = await pollUntil('the turn to be stored', async () => (await chat('stream-gone')).recentMessages.find((m) => m.id === 'gone-1.reply'), 30_000, 50);
    expect(stored.content).toBe(pieces.join(''));
  });

  it('streams turns queued behind a streaming one when they start, each with its own text', async () => {
    await put('stream-queue');
    t.model.enqueue({ stream: words(10), chunkDelayMs: 40 }, { stream: ['second ', 'reply'], chunkDelayMs: 10 });
    const [a, b] = await Promise.all([
      streamPost('stream-queue', 'first', { 'Idempotency-Key': 'q-1' }).then(allEvents),
      // Sent a moment later, so it queues behind the first.
      new Promise((resolve) => setTimeout(resolve, 100)).then(() => streamPost('stream-queue', 'second', { 'Idempotency-Key': 'q-2' })).then(allEvents),
    ]);
    expect(streamedText(a)).toBe(words(10).join(''));
    expect(streamedText(b)).toBe('second reply');
    // The second turn's user message is stored after the first reply.
    expect(Date.parse((b[0]!.data as { createdAt: string }).createdAt)).toBeGreaterThan(Date.parse((a.at(-1)!.data as { createdAt: string }).createdAt));
    expect((await chat('stream-queue')).recentMessages.map((m) => m.id)).toEqual(['q-1', 'q-1.reply', 'q-2', 'q-2.reply']);
  });

  it("keeps a turn's stream records only until the chat's next turn, and deletes them with the chat", async () => {
    await put('stream-clean');
    t.model.enqueue({ stream: words(5), chunkDelayMs: 5 });
    await allEvents(await streamPost('stream-clean', 'one', { 'Idempotency-Key': 'clean-1' }));
    expect(await streamRecords('stream-clean')).toBeGreaterThan(2); // start, text, end
    // A plain turn next: the streamed turn's records go.
    expect((await fetch(t.url('/api/chats/stream-clean'), { method: 'POST', headers: json, body: JSON.stringify({ message: 'two' }) })).status).toBe(200);
    expect(await streamRecords('stream-clean')).toBe(0);
    t.model.enqueue({ stream: words(5), chunkDelayMs: 5 });
    await allEvents(await streamPost('stream-clean', 'three', { 'Idempotency-Key': 'clean-3' }));
    expect(await streamRecords('stream-clean')).toBeGreaterThan(2);
    expect([202, 204]).toContain((await fetch(t.url('/api/chats/stream-clean'), { method: 'DELETE' })).status);
    await pollUntil('the stream records to be deleted with the chat', async () => ((await streamRecords('stream-clean')) === 0 ? true : undefined), 30_000, 50);
  });

  it('keeps a stream open through seconds of silence: a turn queued behind a 6 s one', async () => {
    await put('stream-silent');
    t.model.enqueue({ stream: words(30), chunkDelayMs: 200 }, { stream: ['late ', 'but ', 'here'] });
    const first = streamPost('stream-silent', 'long one', { 'Idempotency-Key': 'silent-1' }).then(allEvents);
    await pollUntil('the first turn to be streaming', async () => (t.model.requests.some((r) => lastUserContent(r) === 'long one') ? true : undefined), 30_000, 20);
    const second = await allEvents(await streamPost('stream-silent', 'queued one', { 'Idempotency-Key': 'silent-2' }));
    expect(streamedText(second)).toBe('late but here');
    expect(second.at(-1)).toMatchObject({ event: 'done' });
    expect(streamedText(await first)).toBe(words(30).join(''));
  });

  it('refuses a streamed post to an unknown chat with 404 JSON, before streaming', async () => {
    const response = await streamPost('stream-missing', 'hi');
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toContain('application/json');
  });
});
