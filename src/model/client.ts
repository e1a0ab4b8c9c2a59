/**
 * The only code that talks to a model. One client for Azure OpenAI (Entra ID or key) and any
 * OpenAI-compatible server, with our own retry loop (so every fault class — 429, 5xx, timeouts,
 * resets, unusable answers — follows one policy) and a per-attempt timeout.
 */
import OpenAI, { AzureOpenAI } from 'openai';
import type { ModelEndpoint, ModelSettings } from '../config';
import { AppError, ModelFailedError, ModelThrottledError, ModelTimeoutError } from '../errors';

/** A function the model may call; `parameters` is a JSON Schema object. */
export interface ToolSpec {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

/** A call the model asked for; `arguments` is the model's raw JSON text (may be invalid JSON). */
export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

export type PromptMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string; toolCalls?: ToolCall[] }
  | { role: 'tool'; toolCallId: string; content: string };

export interface CompletionRequest {
  messages: readonly PromptMessage[];
  /** Functions the model may call; none (or an empty list) sends no `tools` at all. */
  tools?: readonly ToolSpec[];
  /** Cap on generated tokens; defaults to MODEL_MAX_COMPLETION_TOKENS. */
  maxTokens?: number;
}

export interface Completion {
  text: string;
  /** The function calls the model asked for, in its order; empty when it only answered text. */
  toolCalls: ToolCall[];
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/**
 * One piece of a streamed completion: text as it arrives, the usage of the whole call, and last of
 * all (after usage, once the stream has ended complete) the assembled tool calls, if the model made any.
 */
export type CompletionChunk =
  | { type: 'delta'; text: string }
  | { type: 'tool-calls'; calls: ToolCall[] }
  | { type: 'usage'; promptTokens: number; completionTokens: number; totalTokens: number };

export interface ModelClient {
  complete(request: CompletionRequest): Promise<Completion>;
  /**
   * Streams a completion. The returned promise settles once the model has accepted the call (with
   * the same retries as `complete`); a failure after that surfaces from the iterator as an AppError.
   */
  stream(request: CompletionRequest): Promise<AsyncIterable<CompletionChunk>>;
}

/** What went wrong with one attempt, and whether another attempt may help. */
interface AttemptFailure {
  kind: 'throttled' | 'timeout' | 'failed';
  retryable: boolean;
  /** The server's own wait hint (Retry-After / retry-after-ms), if any. */
  retryAfterMs: number | undefined;
  message: string;
}

/** Raised inside an attempt when a 200 answer carries no usable completion. */
class UnusableAnswerError extends Error {}

/**
 * Raised when an attempt as a whole outlasts MODEL_TIMEOUT_MS. The SDK's own timeout ends when the
 * response headers arrive, so a server that answers 200 and then stalls its body needs this one.
 */
class AttemptTimeoutError extends Error {}

/** Raised when no Entra ID token can be had; retrying will not help. */
class TokenUnavailableError extends Error {}

export interface ModelClientOptions {
  /** Waits between attempts; replaceable so unit tests of the policy need no clock. */
  sleep?: (ms: number) => Promise<void>;
}

export function createModelClient(endpoint: ModelEndpoint, settings: ModelSettings, options: ModelClientOptions = {}): ModelClient {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const openai = openAIClient(endpoint, settings);
  // Never repeated in error messages (see briefServerMessage).
  const secrets = endpoint.apiKey === undefined ? [] : [endpoint.apiKey];
  const model = endpoint.kind === 'azure' ? endpoint.deployment : endpoint.model;

  function requestBody(request: CompletionRequest) {
    const maxTokens = request.maxTokens ?? settings.maxCompletionTokens;
    // An empty `tools` list is rejected by some servers, so no tools means no `tools` key at all.
    const tools = request.tools === undefined || request.tools.length === 0 ? {} : { tools: request.tools.map(toOpenAITool) };
    return { model, messages: request.messages.map(toOpenAIMessage), ...tools, [settings.tokenLimitParameter]: maxTokens };
  }
  const callOptions = { timeout: settings.timeoutMs, maxRetries: 0 };

  /** Runs one attempt under MODEL_TIMEOUT_MS, headers and body (or first streamed chunk) included. */
  async function withDeadline<T>(attempt: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), settings.timeoutMs);
    try {
      return await attempt(controller.signal);
    } catch (err) {
      if (controller.signal.aborted) throw new AttemptTimeoutError('the model did not answer in time');
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async function completeOnce(request: CompletionRequest, signal: AbortSignal): Promise<Completion> {
    const response = await openai.chat.completions.create(requestBody(request), { ...callOptions, signal });
    const choice = Array.isArray(response?.choices) ? response.choices[0] : undefined;
    const content: unknown = choice?.message?.content;
    // Null content is valid: a message that only asks for tool calls carries none.
    if (choice === undefined || (content !== null && typeof content !== 'string')) {
      throw new UnusableAnswerError('the model answered without a completion');
    }
    const usage = response.usage;
    return {
      text: content ?? '',
      toolCalls: answeredToolCalls(choice.message.tool_calls),
      promptTokens: usage?.prompt_tokens ?? 0,
      completionTokens: usage?.completion_tokens ?? 0,
      totalTokens: usage?.total_tokens ?? 0,
    };
  }

  /** Runs `once` until it succeeds, retrying what may succeed on another attempt. */
  async function withRetries<T>(once: () => Promise<T>): Promise<T> {
    for (let attemptNumber = 0; ; attemptNumber++) {
      try {
        return await once();
      } catch (err) {
        const failure = classify(err, secrets);
        const backoffMs = settings.retryBaseDelayMs * 2 ** attemptNumber * (0.5 + Math.random() / 2);
        const waitMs = failure.retryAfterMs ?? backoffMs;
        // A wait longer than we may hold the caller is passed on (429 + Retry-After) instead of slept.
        if (!failure.retryable || attemptNumber >= settings.maxRetries || waitMs > settings.retryMaxDelayMs) {
          throw toAppError(failure, attemptNumber + 1);
        }
        await sleep(waitMs);
      }
    }
  }

  async function* chunksOf(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>): AsyncGenerator<CompletionChunk> {
    let finished = false;
    const calls = new Map<number, PartialToolCall>();
    try {
      for await (const chunk of stream) {
        if (chunk.choices?.[0]?.finish_reason) finished = true;
        addToolCallFragments(calls, chunk.choices?.[0]?.delta?.tool_calls);
        const text = chunk.choices?.[0]?.delta?.content;
        if (typeof text === 'string' && text !== '') yield { type: 'delta', text };
        if (chunk.usage) {
          yield { type: 'usage', promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens, totalTokens: chunk.usage.total_tokens };
        }
      }
    } catch (err) {
      // Mid-stream there is no retry: part of the answer is already with the client.
      throw toAppError(classify(err, secrets), 1);
    }
    // A connection that closes without a finish reason is a cut-off answer, not a complete one.
    if (!finished) throw new ModelFailedError('The model stream ended before the answer was complete.');
    // Calls go out only whole, so they come last: a fragment may arrive in any chunk before the end.
    const toolCalls = assembledToolCalls(calls);
    if (toolCalls.length > 0) yield { type: 'tool-calls', calls: toolCalls };
  }

  return {
    complete: (request) => withRetries(() => withDeadline((signal) => completeOnce(request, signal))),
    async stream(request) {
      // The first chunk is read inside the attempt: a 200 that carries no stream (invalid JSON, an
      // empty body, a plain completion object) is retried like any other fault, while nothing has
      // reached the client yet.
      // The deadline ends with the first chunk; a stream that stalls later is not bounded here.
      const { first, rest } = await withRetries(() =>
        withDeadline(async (signal) => {
          const stream = await openai.chat.completions.create({ ...requestBody(request), stream: true, stream_options: { include_usage: true } }, { ...callOptions, signal });
          const rest = stream[Symbol.asyncIterator]();
          const first = await rest.next();
          if (first.done) throw new UnusableAnswerError('the model answered without a stream of chunks');
          return { first: first.value, rest };
        }),
      );
      return chunksOf(resumed(first, rest));
    },
  };
}

/** `first`, then the rest of `iterator`; closing it early closes the iterator (and the model call). */
async function* resumed<T>(first: T, iterator: AsyncIterator<T>): AsyncGenerator<T> {
  try {
    yield first;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await iterator.return?.();
  }
}

type OpenAIMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;

function toOpenAIMessage(message: PromptMessage): OpenAIMessage {
  switch (message.role) {
    case 'tool':
      return { role: 'tool', tool_call_id: message.toolCallId, content: message.content };
    case 'assistant': {
      // Plain assistant turns go out exactly as before tools existed; an empty call list is no call.
      if (message.toolCalls === undefined || message.toolCalls.length === 0) return { role: 'assistant', content: message.content };
      const toolCalls = message.toolCalls.map((call) => ({ id: call.id, type: 'function' as const, function: { name: call.name, arguments: call.arguments } }));
      return { role: 'assistant', content: message.content || null, tool_calls: toolCalls };
    }
    default:
      return { role: message.role, content: message.content };
  }
}

function toOpenAITool(tool: ToolSpec): OpenAI.Chat.Completions.ChatCompletionFunctionTool {
  return { type: 'function', function: { name: tool.name, description: tool.description, parameters: tool.parameters } };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A call type we do not handle (e.g. `custom`); a missing type is taken as `function`. */
function isOtherToolType(type: unknown): boolean {
  return type !== undefined && type !== null && type !== 'function';
}

/**
 * The function calls of a non-streamed answer. The SDK does not check the JSON, so a call we could
 * not answer (no id or name) makes the answer unusable, retried like any other.
 */
function answeredToolCalls(raw: unknown): ToolCall[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new UnusableAnswerError('the model answered with malformed tool calls');
  const calls: ToolCall[] = [];
  for (const item of raw) {
    if (isRecord(item) && isOtherToolType(item.type)) continue;
    const fn = isRecord(item) && isRecord(item.function) ? item.function : undefined;
    const args = fn?.arguments ?? '';
    if (!isRecord(item) || typeof item.id !== 'string' || item.id === '' || typeof fn?.name !== 'string' || fn.name === '' || typeof args !== 'string') {
      throw new UnusableAnswerError('the model answered with malformed tool calls');
    }
    calls.push({ id: item.id, name: fn.name, arguments: args });
  }
  return calls;
}

/** A streamed tool call being put together from its `delta.tool_calls` fragments. */
interface PartialToolCall {
  id: string;
  name: string;
  arguments: string;
  /** Set when a fragment declares a non-function type: the call is dropped at the end. */
  ignored: boolean;
}

/** Adds one chunk's fragments: id and name come with a call's first fragment, arguments in pieces. */
function addToolCallFragments(calls: Map<number, PartialToolCall>, fragments: unknown): void {
  if (!Array.isArray(fragments)) return;
  for (const [position, fragment] of fragments.entries()) {
    if (!isRecord(fragment)) continue;
    // Parallel calls interleave, told apart by `index` (a server that omits it sends one per chunk position).
    const index = typeof fragment.index === 'number' ? fragment.index : position;
    let call = calls.get(index);
    if (call === undefined) {
      call = { id: '', name: '', arguments: '', ignored: false };
      calls.set(index, call);
    }
    if (isOtherToolType(fragment.type)) call.ignored = true;
    if (call.id === '' && typeof fragment.id === 'string') call.id = fragment.id;
    const fn = isRecord(fragment.function) ? fragment.function : {};
    // Some servers repeat the name in later fragments; the first one counts.
    if (call.name === '' && typeof fn.name === 'string') call.name = fn.name;
    if (typeof fn.arguments === 'string') call.arguments += fn.arguments;
  }
}

/** The function calls of a complete stream, by index; one without an id or name cannot be answered. */
function assembledToolCalls(calls: ReadonlyMap<number, PartialToolCall>): ToolCall[] {
  const complete: ToolCall[] = [];
  for (const [, call] of [...calls.entries()].sort(([a], [b]) => a - b)) {
    if (call.ignored) continue;
    if (call.id === '' || call.name === '') throw new ModelFailedError('The model stream ended with an incomplete tool call.');
    complete.push({ id: call.id, name: call.name, arguments: call.arguments });
  }
  return complete;
}

function openAIClient(endpoint: ModelEndpoint, settings: ModelSettings): OpenAI {
  const common = { timeout: settings.timeoutMs, maxRetries: 0 };
  if (endpoint.kind === 'openai-compatible') {
    // Local servers (Ollama, llama.cpp, a test server) need no key, but the SDK insists on one.
    return new OpenAI({ ...common, baseURL: endpoint.baseURL, apiKey: endpoint.apiKey ?? 'not-needed' });
  }
  const azure = { ...common, endpoint: endpoint.endpoint, apiVersion: endpoint.apiVersion, deployment: endpoint.deployment };
  if (endpoint.apiKey !== undefined) return new AzureOpenAI({ ...azure, apiKey: endpoint.apiKey });
  return new AzureOpenAI({ ...azure, azureADTokenProvider: entraTokenProvider(endpoint.managedIdentityClientId) });
}

/** Bearer tokens for Azure OpenAI from DefaultAzureCredential; @azure/identity loads on first use only. */
function entraTokenProvider(managedIdentityClientId: string | undefined): () => Promise<string> {
  let provider: Promise<() => Promise<string>> | undefined;
  return async () => {
    provider ??= import('@azure/identity').then(({ DefaultAzureCredential, getBearerTokenProvider }) =>
      getBearerTokenProvider(
        new DefaultAzureCredential(managedIdentityClientId === undefined ? {} : { managedIdentityClientId }),
        'https://cognitiveservices.azure.com/.default',
      ),
    );
    try {
      return await (await provider)();
    } catch (err) {
      // The credential chain's own message lists what it tried; it holds no secret.
      throw new TokenUnavailableError(`could not get an Entra ID token for Azure OpenAI (${err instanceof Error ? err.name : 'unknown error'})`);
    }
  };
}

function classify(err: unknown, secrets: readonly string[]): AttemptFailure {
  if (err instanceof OpenAI.APIConnectionTimeoutError || err instanceof AttemptTimeoutError) {
    return { kind: 'timeout', retryable: true, retryAfterMs: undefined, message: 'the model did not answer in time' };
  }
  if (err instanceof OpenAI.APIConnectionError) {
    return { kind: 'failed', retryable: true, retryAfterMs: undefined, message: 'could not connect to the model' };
  }
  if (err instanceof OpenAI.APIError && err.status !== undefined) {
    const status = err.status;
    const retryAfterMs = retryAfterFromHeaders(err.headers);
    if (status === 429) return { kind: 'throttled', retryable: true, retryAfterMs, message: 'the model is throttling requests (429)' };
    const retryable = status === 408 || status >= 500;
    return { kind: 'failed', retryable, retryAfterMs, message: `the model answered ${status}${briefServerMessage(err, secrets)}` };
  }
  if (err instanceof UnusableAnswerError || err instanceof SyntaxError) {
    return { kind: 'failed', retryable: true, retryAfterMs: undefined, message: 'the model returned an unusable answer' };
  }
  if (err instanceof TokenUnavailableError) return { kind: 'failed', retryable: false, retryAfterMs: undefined, message: err.message };
  if (err instanceof AppError) throw err;
  return { kind: 'failed', retryable: true, retryAfterMs: undefined, message: 'the model call failed unexpectedly' };
}

/**
 * The server's own error text, shortened. Servers may quote the key they were sent (e.g. "Incorrect
 * API key provided: sk-..."), and this text reaches clients, chat state and logs, so the configured
 * key is masked first.
 */
function briefServerMessage(err: InstanceType<typeof OpenAI.APIError>, secrets: readonly string[]): string {
  let text = typeof err.error === 'object' && err.error !== null && 'message' in err.error ? String(err.error.message) : '';
  for (const secret of secrets) text = text.split(secret).join('[redacted]');
  return text === '' ? '' : `: ${text.slice(0, 200)}`;
}

/** Reads `retry-after-ms` or `retry-after` (seconds or an HTTP date). */
export function retryAfterFromHeaders(headers: Headers | undefined, now: number = Date.now()): number | undefined {
  const ms = Number(headers?.get('retry-after-ms') ?? Number.NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers?.get('retry-after');
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function toAppError(failure: AttemptFailure, attempts: number): AppError {
  const message = `${capitalize(failure.message)} (after ${attempts} attempt${attempts === 1 ? '' : 's'}).`;
  switch (failure.kind) {
    case 'throttled':
      return new ModelThrottledError(message, (failure.retryAfterMs ?? 1000) / 1000);
    case 'timeout':
      return new ModelTimeoutError(message);
    case 'failed':
      return new ModelFailedError(message);
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
