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
