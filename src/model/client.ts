/**
 * The only code that talks to a model. One client for Azure OpenAI (Entra ID or key) and any
 * OpenAI-compatible server, with our own retry loop (so every fault class — 429, 5xx, timeouts,
 * resets, unusable answers — follows one policy) and a per-attempt timeout.
 */
import OpenAI, { AzureOpenAI } from 'openai';
import type { ModelEndpoint, ModelSettings } from '../config';
import { AppError, ModelFailedError, ModelThrottledError, ModelTimeoutError } from '../errors';

export interface PromptMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface CompletionRequest {
  messages: readonly PromptMessage[];
  /** Cap on generated tokens; defaults to MODEL_MAX_COMPLETION_TOKENS. */
  maxTokens?: number;
}

export interface Completion {
  text: string;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/** One piece of a streamed completion: text as it arrives, then the usage of the whole call. */
export type CompletionChunk = { type: 'delta'; text: string } | { type: 'usage'; promptTokens: number; completionTokens: number; totalTokens: number };

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
    return { model, messages: request.messages.map((m) => ({ role: m.role, content: m.content })), [settings.tokenLimitParameter]: maxTokens };
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
    if (choice === undefined || (content !== null && typeof content !== 'string')) {
      throw new UnusableAnswerError('the model answered without a completion');
    }
    const usage = response.usage;
    return {
      text: content ?? '',
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
    try {
      for await (const chunk of stream) {
        if (chunk.choices?.[0]?.finish_reason) finished = true;
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
