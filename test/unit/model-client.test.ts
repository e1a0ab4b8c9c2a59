import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, type ModelSettings } from '../../src/config';
import { ModelFailedError, ModelThrottledError, ModelTimeoutError } from '../../src/errors';
import { createModelClient, retryAfterFromHeaders, type CompletionChunk, type PromptMessage, type ToolSpec } from '../../src/model';
import { lastMessage, startModelServer, type ModelServer } from '../support/model-server';

let model: ModelServer;
beforeAll(async () => {
  model = await startModelServer();
});
afterAll(() => model.close());
beforeEach(() => {
  model.requests.length = 0;
  model.setDefault({ reply: 'fine' });
});

/** Builds the client the way the app does: from settings, through the normal config path. */
function clientFor(env: Record<string, string>, sleeps: number[] = []) {
  const config = loadConfig({ MODEL_RETRY_BASE_DELAY_MS: '1', MODEL_TIMEOUT_MS: '300', ...env });
  const settings: ModelSettings = config.model;
  if (settings.endpoint === undefined) throw new Error('test needs an endpoint');
  return createModelClient(settings.endpoint, settings, {
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
}
const openAIEnv = () => ({ OPENAI_BASE_URL: model.baseURL });
const ask = { messages: [{ role: 'user' as const, content: 'hello' }] };

describe('model client against an OpenAI-compatible server', () => {
  it('returns the completion text and usage', async () => {
    model.enqueue({ reply: 'Hi there', usage: { prompt: 7, completion: 3 } });
    const result = await clientFor(openAIEnv()).complete(ask);
    expect(result).toEqual({ text: 'Hi there', toolCalls: [], promptTokens: 7, completionTokens: 3, totalTokens: 10 });
    const [sent] = model.requests;
    expect(sent?.path).toBe('/v1/chat/completions');
    expect(sent?.body.model).toBe('chat');
    expect(sent?.body.messages).toEqual([{ role: 'user', content: 'hello' }]);
    expect(sent?.body.max_completion_tokens).toBe(1000);
    expect(sent?.body.max_tokens).toBeUndefined();
  });

  it('sends max_tokens instead when MODEL_TOKEN_LIMIT_PARAMETER says so, and the caller cap', async () => {
    await clientFor({ ...openAIEnv(), MODEL_TOKEN_LIMIT_PARAMETER: 'max_tokens' }).complete({ ...ask, maxTokens: 100 });
    expect(model.requests[0]?.body.max_tokens).toBe(100);
    expect(model.requests[0]?.body.max_completion_tokens).toBeUndefined();
  });

  it('sends the bearer key when OPENAI_API_KEY is set', async () => {
    await clientFor({ ...openAIEnv(), OPENAI_API_KEY: 'sk-test-123' }).complete(ask);
    expect(model.requests[0]?.headers.authorization).toBe('Bearer sk-test-123');
  });

  it('retries a 429 after the Retry-After the server asked for, then succeeds', async () => {
    const sleeps: number[] = [];
    model.enqueue({ status: 429, headers: { 'retry-after': '2' } }, { reply: 'after throttling' });
    const result = await clientFor(openAIEnv(), sleeps).complete(ask);
    expect(result.text).toBe('after throttling');
    expect(sleeps).toEqual([2000]);
    expect(model.requests).toHaveLength(2);
  });

  it('backs off exponentially on 500/503 without Retry-After', async () => {
    const sleeps: number[] = [];
    model.enqueue({ status: 500 }, { status: 503 }, { reply: 'recovered' });
    const result = await clientFor({ ...openAIEnv(), MODEL_RETRY_BASE_DELAY_MS: '100' }, sleeps).complete(ask);
    expect(result.text).toBe('recovered');
    expect(sleeps).toHaveLength(2);
    expect(sleeps[0]).toBeGreaterThanOrEqual(50);
    expect(sleeps[0]).toBeLessThanOrEqual(100);
    expect(sleeps[1]).toBeGreaterThanOrEqual(100);
    expect(sleeps[1]).toBeLessThanOrEqual(200);
  });

  it('gives up on persistent 429 with ModelThrottledError carrying Retry-After', async () => {
    model.setDefault({ status: 429, headers: { 'retry-after': '3' } });
    const err = await clientFor({ ...openAIEnv(), MODEL_MAX_RETRIES: '2' }).complete(ask).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelThrottledError);
    expect((err as ModelThrottledError).headers['Retry-After']).toBe('3');
    expect(model.requests).toHaveLength(3);
  });

  it('passes a Retry-After longer than MODEL_RETRY_MAX_DELAY_MS straight on instead of sleeping', async () => {
    const sleeps: number[] = [];
    model.enqueue({ status: 429, headers: { 'retry-after': '120' } });
    const err = await clientFor({ ...openAIEnv(), MODEL_RETRY_MAX_DELAY_MS: '10000' }, sleeps).complete(ask).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelThrottledError);
    expect((err as ModelThrottledError).retryAfterSeconds).toBe(120);
    expect(sleeps).toEqual([]);
  });

  it('times out each attempt and ends in ModelTimeoutError', async () => {
    model.setDefault({ hang: true });
    const err = await clientFor({ ...openAIEnv(), MODEL_MAX_RETRIES: '1', MODEL_TIMEOUT_MS: '200' }).complete(ask).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelTimeoutError);
    expect(model.requests).toHaveLength(2);
  });

  it('retries a timeout and succeeds on the next attempt', async () => {
    model.enqueue({ hang: true }, { reply: 'second time' });
    expect((await clientFor({ ...openAIEnv(), MODEL_TIMEOUT_MS: '200' }).complete(ask)).text).toBe('second time');
  });

  it.each([
    ['invalid JSON', { garbage: '{"choices": [' }],
    ['an empty choice list', { emptyChoices: true as const }],
    ['a connection reset', { reset: true as const }],
    ['a JSON null', { garbage: 'null' }],
  ])('retries %s and succeeds', async (_name, fault) => {
    model.enqueue(fault, { reply: 'good' });
    expect((await clientFor(openAIEnv()).complete(ask)).text).toBe('good');
    expect(model.requests).toHaveLength(2);
  });

  it('ends persistent garbage in ModelFailedError', async () => {
    model.setDefault({ garbage: 'not json at all' });
    const err = await clientFor({ ...openAIEnv(), MODEL_MAX_RETRIES: '1' }).complete(ask).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFailedError);
    expect((err as Error).message).toMatch(/unusable answer \(after 2 attempts\)/);
  });

  it('does not retry a 400 and reports the status', async () => {
    model.enqueue({ status: 400, body: JSON.stringify({ error: { message: 'context too long' } }) });
    const err = await clientFor(openAIEnv()).complete(ask).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFailedError);
    expect((err as Error).message).toContain('400: context too long');
    expect(model.requests).toHaveLength(1);
  });
});

const weatherTool: ToolSpec = {
  name: 'get_weather',
  description: 'Current weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
};
const timeTool: ToolSpec = { name: 'get_time', description: 'Local time in a time zone', parameters: { type: 'object', properties: { tz: { type: 'string' } } } };
const twoCalls = [
  { id: 'call_w', name: 'get_weather', arguments: { city: 'Oslo' } },
  { id: 'call_t', name: 'get_time', arguments: '{"tz":"Europe/Oslo"}' },
];
const twoCallsAssembled = [
  { id: 'call_w', name: 'get_weather', arguments: '{"city":"Oslo"}' },
  { id: 'call_t', name: 'get_time', arguments: '{"tz":"Europe/Oslo"}' },
];

async function collect(chunks: AsyncIterable<CompletionChunk>): Promise<CompletionChunk[]> {
  const all: CompletionChunk[] = [];
  for await (const chunk of chunks) all.push(chunk);
  return all;
}

interface ToolCallFragment {
  index: number;
  id?: string;
  function?: { name?: string; arguments?: string };
}

/** The `delta.tool_calls` fragments the scripted server streams, read straight off the wire. */
async function rawToolCallFragments(): Promise<ToolCallFragment[]> {
  const response = await fetch(`${model.baseURL}/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'chat', stream: true, messages: [] }) });
  const events = (await response.text()).split('\n\n').filter((e) => e.startsWith('data: {'));
  return events.flatMap((e) => (JSON.parse(e.slice('data: '.length)) as { choices: { delta?: { tool_calls?: ToolCallFragment[] } }[] }).choices[0]?.delta?.tool_calls ?? []);
}

describe('model client tool calling', () => {
  it('sends tools as function JSON schemas, and no tools key without tools', async () => {
    const client = clientFor(openAIEnv());
    await client.complete({ ...ask, tools: [weatherTool, timeTool] });
    await client.complete({ ...ask, tools: [] });
    await client.complete(ask);
    expect(model.requests[0]?.body.tools).toEqual([
      { type: 'function', function: { name: 'get_weather', description: 'Current weather for a city', parameters: weatherTool.parameters } },
      { type: 'function', function: { name: 'get_time', description: 'Local time in a time zone', parameters: timeTool.parameters } },
    ]);
    expect('tools' in (model.requests[1]?.body ?? {})).toBe(false);
    expect('tools' in (model.requests[2]?.body ?? {})).toBe(false);
  });

  it('returns two parallel tool calls of a non-streamed answer with empty text', async () => {
    model.enqueue({ toolCalls: [...twoCalls, { name: 'get_weather', arguments: { city: 'Bergen' } }], usage: { prompt: 5, completion: 9 } });
    const result = await clientFor(openAIEnv()).complete({ ...ask, tools: [weatherTool, timeTool] });
    expect(result).toMatchObject({ text: '', promptTokens: 5, completionTokens: 9, totalTokens: 14 });
    expect(result.toolCalls.slice(0, 2)).toEqual(twoCallsAssembled);
    // The server numbers calls scripted without an id.
    expect(result.toolCalls[2]).toEqual({ id: expect.stringMatching(/^call_\d+$/), name: 'get_weather', arguments: '{"city":"Bergen"}' });
  });

  it('assembles two interleaved streamed tool calls whose arguments arrive in pieces, after usage', async () => {
    model.enqueue({ toolCalls: twoCalls });
    const fragments = await rawToolCallFragments();
    // What the scripted server sends: both calls interleaved by index, arguments split.
    expect(fragments.map((f) => f.index)).toEqual([0, 1, 0, 1, 0, 1, 0, 1]);
    expect(fragments.filter((f) => f.index === 0 && f.function?.arguments !== '').length).toBe(3);

    model.enqueue({ toolCalls: twoCalls });
    const chunks = await collect(await clientFor(openAIEnv()).stream({ ...ask, tools: [weatherTool, timeTool] }));
    expect(chunks.map((c) => c.type)).toEqual(['usage', 'tool-calls']);
    expect(chunks.at(-1)).toEqual({ type: 'tool-calls', calls: twoCallsAssembled });
    expect(model.requests.at(-1)?.body.stream_options).toEqual({ include_usage: true });
  });

  it('sends tool calls and their results back in the next request', async () => {
    // One default answers both rounds: tool calls first, text once the results are in.
    model.setDefault({
      reply: (r) => (lastMessage(r)?.role === 'tool' ? `results: ${r.body.messages.filter((m) => m.role === 'tool').map((m) => m.content).join(', ')}` : { toolCalls: twoCalls }),
    });
    const client = clientFor(openAIEnv());
    const first = await client.complete({ ...ask, tools: [weatherTool, timeTool] });
    const messages: PromptMessage[] = [
      ...ask.messages,
      { role: 'assistant', content: first.text, toolCalls: first.toolCalls },
      { role: 'tool', toolCallId: 'call_w', content: '{"sky":"clear"}' },
      { role: 'tool', toolCallId: 'call_t', content: '12:00' },
    ];
    const second = await client.complete({ messages, tools: [weatherTool, timeTool] });
    expect(second).toMatchObject({ text: 'results: {"sky":"clear"}, 12:00', toolCalls: [] });
    expect(model.requests[1]?.body.messages).toEqual([
      { role: 'user', content: 'hello' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_w', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } },
          { id: 'call_t', type: 'function', function: { name: 'get_time', arguments: '{"tz":"Europe/Oslo"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_w', content: '{"sky":"clear"}' },
      { role: 'tool', tool_call_id: 'call_t', content: '12:00' },
    ]);
  });

  it('sends an assistant message with text and calls with its text, and one with no calls as before', async () => {
    const messages: PromptMessage[] = [
      { role: 'assistant', content: 'Checking.', toolCalls: [{ id: 'c1', name: 'get_time', arguments: '{}' }] },
      { role: 'assistant', content: 'plain', toolCalls: [] },
    ];
    await clientFor(openAIEnv()).complete({ messages });
    expect(model.requests[0]?.body.messages).toEqual([
      { role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_time', arguments: '{}' } }] },
      { role: 'assistant', content: 'plain' },
    ]);
  });

  it('returns text and tool calls together, non-streamed and streamed', async () => {
    const client = clientFor(openAIEnv());
    model.enqueue({ reply: 'Let me check that.', toolCalls: twoCalls });
    const result = await client.complete({ ...ask, tools: [weatherTool, timeTool] });
    expect(result).toMatchObject({ text: 'Let me check that.', toolCalls: twoCallsAssembled });

    model.enqueue({ reply: 'Let me check that.', toolCalls: twoCalls });
    const chunks = await collect(await client.stream({ ...ask, tools: [weatherTool, timeTool] }));
    const text = chunks.flatMap((c) => (c.type === 'delta' ? [c.text] : [])).join('');
    expect(text).toBe('Let me check that.');
    expect(chunks.slice(-2).map((c) => c.type)).toEqual(['usage', 'tool-calls']);
    expect(chunks.at(-1)).toEqual({ type: 'tool-calls', calls: twoCallsAssembled });
  });

  it('ignores tool calls that are not functions, non-streamed and streamed', async () => {
    const client = clientFor(openAIEnv());
    const calls = [{ id: 'x1', type: 'custom', name: 'grammar', arguments: 'free text' }, twoCalls[0]!];
    model.enqueue({ toolCalls: calls }, { toolCalls: calls });
    expect((await client.complete(ask)).toolCalls).toEqual([twoCallsAssembled[0]]);
    expect((await collect(await client.stream(ask))).at(-1)).toEqual({ type: 'tool-calls', calls: [twoCallsAssembled[0]] });
  });

  it('streams plain text without a tool-calls chunk, as before', async () => {
    model.enqueue({ stream: ['Hel', 'lo'] });
    const chunks = await collect(await clientFor(openAIEnv()).stream(ask));
    expect(chunks.map((c) => c.type)).toEqual(['delta', 'delta', 'usage']);
  });

  it('retries an answer whose tool call has no id', async () => {
    const bad = { choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'get_time', arguments: '{}' } }] } }] };
    model.enqueue({ garbage: JSON.stringify(bad) }, { toolCalls: [twoCalls[1]!] });
    expect((await clientFor(openAIEnv()).complete(ask)).toolCalls).toEqual([twoCallsAssembled[1]]);
    expect(model.requests).toHaveLength(2);
  });
});

describe('model client against Azure OpenAI', () => {
  it('builds the deployment URL, api-version and api-key header', async () => {
    model.enqueue({ reply: 'from azure' });
    const client = clientFor({ AZURE_OPENAI_ENDPOINT: model.origin, AZURE_OPENAI_API_KEY: 'azure-key-1', CHAT_MODEL_DEPLOYMENT_NAME: 'gpt-dep' });
    expect((await client.complete(ask)).text).toBe('from azure');
    const [sent] = model.requests;
    expect(sent?.path).toBe('/openai/deployments/gpt-dep/chat/completions');
    expect(sent?.query.get('api-version')).toBe('2024-10-21');
    expect(sent?.headers['api-key']).toBe('azure-key-1');
    expect(sent?.headers.authorization).toBeUndefined();
  });

  it('prefers Azure when both endpoints are configured', async () => {
    const client = clientFor({ AZURE_OPENAI_ENDPOINT: model.origin, AZURE_OPENAI_API_KEY: 'k', OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' });
    await client.complete(ask);
    expect(model.requests[0]?.path).toBe('/openai/deployments/chat/chat/completions');
  });
});

describe('retryAfterFromHeaders', () => {
  it('reads seconds, milliseconds and HTTP dates', () => {
    expect(retryAfterFromHeaders(new Headers({ 'retry-after': '5' }))).toBe(5000);
    expect(retryAfterFromHeaders(new Headers({ 'retry-after-ms': '250', 'retry-after': '5' }))).toBe(250);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterFromHeaders(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:07 GMT' }), now)).toBe(7000);
    expect(retryAfterFromHeaders(new Headers({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(retryAfterFromHeaders(new Headers())).toBeUndefined();
  });
});
