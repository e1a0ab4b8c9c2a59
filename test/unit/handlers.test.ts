/**
 * ask and whois handlers, called the way the Functions host calls them: with real HttpRequest and
 * InvocationContext objects, and a model client built from settings that point at the scripted server.
 */
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { askHandler } from '../../src/functions/ask';
import { whoisHandler } from '../../src/functions/whois';
import { createModelClient, type ModelClient } from '../../src/model';
import { startModelServer, type ModelServer } from '../support/model-server';

let model: ModelServer;
let client: ModelClient;
beforeAll(async () => {
  model = await startModelServer();
  const settings = loadConfig({ OPENAI_BASE_URL: model.baseURL, MODEL_RETRY_BASE_DELAY_MS: '1', MODEL_TIMEOUT_MS: '200', MODEL_MAX_RETRIES: '1' }).model;
  if (settings.endpoint === undefined) throw new Error('no endpoint');
  client = createModelClient(settings.endpoint, settings);
});
afterAll(() => model.close());
beforeEach(() => {
  model.requests.length = 0;
  model.setDefault({ reply: (r) => `echo: ${r.body.messages.at(-1)?.content ?? ''}` });
});

const ask = askHandler(() => client);
const whois = whoisHandler(() => client);

function askRequest(body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  return new HttpRequest({ url: 'http://localhost:7071/api/ask', method: 'POST', headers, body: { string: body } });
}
function whoisRequest(name: string) {
  return new HttpRequest({ url: `http://localhost:7071/api/whois/${encodeURIComponent(name)}`, method: 'GET', params: { name } });
}
async function call(handler: typeof ask, request: HttpRequest): Promise<HttpResponseInit & { status: number; headers: Record<string, string> }> {
  const response = (await handler(request, new InvocationContext())) as HttpResponseInit;
  return { ...response, status: response.status ?? 200, headers: (response.headers ?? {}) as Record<string, string> };
}
function errorCode(response: HttpResponseInit): string {
  return (response.jsonBody as { error: { code: string } }).error.code;
}

describe('POST /api/ask', () => {
  it('answers 200 text/plain with the completion, also for the seed\'s text/json', async () => {
    const response = await call(ask, askRequest('{"prompt":"Write a poem"}', { 'content-type': 'text/json' }));
    expect(response.status).toBe(200);
    expect(response.headers['Content-Type']).toBe('text/plain; charset=utf-8');
    expect(response.body).toBe('echo: Write a poem');
    expect(model.requests[0]?.body.messages).toEqual([{ role: 'user', content: 'Write a poem' }]);
  });

  it.each([
    ['bad JSON', '{"prompt":', 'invalid_json'],
    ['a missing prompt', '{"question":"hi"}', 'invalid_field'],
    ['a wrong-typed prompt', '{"prompt":["hi"]}', 'invalid_field'],
    ['an empty prompt', '{"prompt":""}', 'invalid_field'],
  ])('answers 400 for %s without calling the model', async (_name, body, code) => {
    const response = await call(ask, askRequest(body));
    expect(response.status).toBe(400);
    expect(errorCode(response)).toBe(code);
    expect(model.requests).toHaveLength(0);
  });

  it('answers 413 for a prompt over MAX_MESSAGE_CHARS and a body over MAX_BODY_BYTES', async () => {
    const longPrompt = await call(ask, askRequest(JSON.stringify({ prompt: 'x'.repeat(32_001) })));
    expect(longPrompt.status).toBe(413);
    const hugeBody = await call(ask, askRequest(JSON.stringify({ prompt: 'hi', pad: 'x'.repeat(300_000) })));
    expect(hugeBody.status).toBe(413);
    expect(errorCode(hugeBody)).toBe('payload_too_large');
  });

  it('answers 503 naming the settings when no model is configured', async () => {
    // The default handler reads the process settings, which in tests name no model.
    const response = await call(askHandler(), askRequest('{"prompt":"hi"}'));
    expect(response.status).toBe(503);
    expect(errorCode(response)).toBe('model_not_configured');
    const message = (response.jsonBody as { error: { message: string } }).error.message;
    expect(message).toContain('AZURE_OPENAI_ENDPOINT');
    expect(message).toContain('OPENAI_BASE_URL');
  });

  it('answers 429 with Retry-After when the model keeps throttling', async () => {
    model.setDefault({ status: 429, headers: { 'retry-after': '0' } });
    model.enqueue({ status: 429, headers: { 'retry-after': '0' } }, { status: 429, headers: { 'retry-after': '7' } });
    const response = await call(ask, askRequest('{"prompt":"hi"}'));
    expect(response.status).toBe(429);
    expect(response.headers['Retry-After']).toBe('7');
    expect(errorCode(response)).toBe('model_throttled');
  });

  it('answers 502 when the model keeps failing, and 504 when it keeps timing out', async () => {
    model.setDefault({ status: 500 });
    const failed = await call(ask, askRequest('{"prompt":"hi"}'));
    expect(failed.status).toBe(502);
    expect(errorCode(failed)).toBe('model_failed');
    model.setDefault({ hang: true });
    const timedOut = await call(ask, askRequest('{"prompt":"hi"}'));
    expect(timedOut.status).toBe(504);
    expect(errorCode(timedOut)).toBe('model_timeout');
  });

  it('recovers from one 500 within the same request', async () => {
    model.enqueue({ status: 500 });
    const response = await call(ask, askRequest('{"prompt":"again"}'));
    expect(response.status).toBe(200);
    expect(response.body).toBe('echo: again');
  });
});

describe('GET /api/whois/{name}', () => {
  it('asks "Who is {name}?" with at most 100 tokens', async () => {
    const response = await call(whois, whoisRequest('Turing'));
    expect(response.status).toBe(200);
    expect(response.body).toBe('echo: Who is Turing?');
    expect(model.requests[0]?.body.max_completion_tokens).toBe(100);
  });

  it('answers 400 for a blank or overlong name', async () => {
    expect((await call(whois, whoisRequest(' '))).status).toBe(400);
    expect((await call(whois, whoisRequest('n'.repeat(201)))).status).toBe(400);
    expect(model.requests).toHaveLength(0);
  });
});

describe('POST /api/ask with Accept: text/event-stream', () => {
  const sseRequest = (prompt: string) =>
    askRequest(JSON.stringify({ prompt }), { 'content-type': 'application/json', accept: 'text/event-stream' });

  async function* events(body: unknown): AsyncGenerator<{ event: string; data: unknown; at: number }> {
    const reader = (body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = /^event: (.*)$/m.exec(block)?.[1] ?? '';
        const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null') as unknown;
        yield { event: name, data, at: Date.now() };
      }
    }
  }

  it('streams one delta event per chunk, the first before the model has finished, then usage', async () => {
    model.enqueue({ stream: ['Once ', 'upon ', 'a ', 'time'], chunkDelayMs: 150 });
    const started = Date.now();
    const response = await call(ask, sseRequest('story'));
    expect(response.status).toBe(200);
    expect(response.headers['Content-Type']).toBe('text/event-stream; charset=utf-8');
    const seen = [];
    for await (const e of events(response.body)) seen.push(e);
    expect(seen.map((e) => e.event)).toEqual(['delta', 'delta', 'delta', 'delta', 'done']);
    expect(seen.slice(0, 4).map((e) => (e.data as { text: string }).text).join('')).toBe('Once upon a time');
    expect(seen[4]?.data).toMatchObject({ usage: { completionTokens: expect.any(Number), totalTokens: expect.any(Number) } });
    // the model takes 4 × 150 ms; the first event must not wait for the last chunk
    expect(seen[0]!.at - started).toBeLessThan(seen[4]!.at - started - 300);
    expect(model.requests[0]?.body.stream).toBe(true);
  });

  it('ends with an error event when the model fails mid-stream', async () => {
    model.enqueue({ stream: ['partial ', 'answer ', 'never ends'], chunkDelayMs: 30, failAfterChunks: 2 });
    const response = await call(ask, sseRequest('story'));
    const seen = [];
    for await (const e of events(response.body)) seen.push(e);
    expect(seen.map((e) => e.event)).toEqual(['delta', 'delta', 'error']);
    expect(seen[2]?.data).toMatchObject({ error: { code: 'model_failed' } });
  });

  it('treats a stream that ends cleanly without a finish reason as an error, not a complete answer', async () => {
    model.enqueue({ stream: ['half an ', 'answer'], endWithoutFinish: true });
    const response = await call(ask, sseRequest('story'));
    const seen = [];
    for await (const e of events(response.body)) seen.push(e);
    expect(seen.map((e) => e.event)).toEqual(['delta', 'delta', 'error']);
    expect(seen[2]?.data).toMatchObject({ error: { code: 'model_failed', message: expect.stringContaining('ended before the answer was complete') } });
  });

  it('treats a stream cut off after its first chunk as an error, without retrying', async () => {
    // One chunk arrives (so the call was accepted and is not retried), then the connection closes.
    model.enqueue({ stream: ['only this', 'never sent'], chunkDelayMs: 30, failAfterChunks: 1 });
    const response = await call(ask, sseRequest('story'));
    const seen = [];
    for await (const e of events(response.body)) seen.push(e.event);
    expect(seen).toEqual(['delta', 'error']);
    expect(model.requests).toHaveLength(1);
  });

  it('answers throttling before the stream starts with 429 and Retry-After', async () => {
    model.setDefault({ status: 429, headers: { 'retry-after': '4' } });
    model.enqueue({ status: 429, headers: { 'retry-after': '0' } });
    const response = await call(ask, sseRequest('story'));
    expect(response.status).toBe(429);
    expect(response.headers['Retry-After']).toBe('4');
  });
});
