/**
 * A scripted OpenAI-compatible model server for tests, on 127.0.0.1 and a free port.
 *
 *   const model = await startModelServer();          // model.baseURL → OPENAI_BASE_URL
 *   model.enqueue({ status: 429, headers: { 'retry-after': '0' } }, { reply: 'ok' });
 *   model.setDefault({ reply: (req) => `echo: ${lastUserContent(req)}`, latencyMs: 50 });
 *   model.enqueue({ toolCalls: [{ name: 'get_weather', arguments: { city: 'Oslo' } }] });
 *   model.setDefault({ reply: (req) => (lastMessage(req)?.role === 'tool' ? 'Sunny.' : { toolCalls: [...] }) });
 *   model.requests                                    // everything the app sent, in arrival order
 *   model.hold(); ...; model.release();               // park requests, then answer them all
 *   await model.close();
 *
 * Serves `POST /v1/chat/completions` (OpenAI style) and
 * `POST /openai/deployments/{deployment}/chat/completions?api-version=` (Azure style). Each request
 * takes the next queued behaviour, else the default. Behaviours can delay, fail with a status,
 * return garbage, reset the connection, hang until the client gives up, or stream SSE chunks (and
 * cut the stream, or end it cleanly without a finish reason). Replies and tool calls are streamed
 * when the request asks for a stream; tool calls end with finish_reason `tool_calls`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: ChatRequestBody;
  /** Epoch milliseconds, fractional (performance clock), so phase timings below 1 ms are visible. */
  receivedAt: number;
}

/** A tool call as the app sent it back in an assistant message. */
export interface ChatRequestToolCall {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

/** A prompt message as sent: `content` is null on an assistant message that only carries tool calls. */
export interface ChatRequestMessage {
  role: string;
  content: string | null;
  tool_calls?: ChatRequestToolCall[];
  tool_call_id?: string;
}

export interface ChatRequestTool {
  type: string;
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
}

export interface ChatRequestBody {
  model?: string;
  messages: ChatRequestMessage[];
  tools?: ChatRequestTool[];
  stream?: boolean;
  max_tokens?: number;
  max_completion_tokens?: number;
  [key: string]: unknown;
}

/** A call the scripted model makes; an object `arguments` is sent as its JSON text. */
export interface ScriptedToolCall {
  /** Defaults to `call_<n>`, numbered across the server's life. */
  id?: string;
  name: string;
  arguments: string | Record<string, unknown>;
  /** Defaults to `function`; any other type lets tests check that the app ignores it. */
  type?: string;
}

/** Tool calls, optionally with text before them: what a `reply` function may answer instead of text. */
export interface ScriptedToolAnswer {
  toolCalls: ScriptedToolCall[];
  reply?: string;
}

type Usage = { prompt: number; completion: number };

export type Behaviour =
  | { reply: string | ((request: RecordedRequest) => string | ScriptedToolAnswer); latencyMs?: number; usage?: Usage }
  | (ScriptedToolAnswer & { latencyMs?: number; usage?: Usage; chunkDelayMs?: number })
  | { status: number; headers?: Record<string, string>; body?: string; latencyMs?: number }
  | { garbage: string; latencyMs?: number }
  | { emptyChoices: true; latencyMs?: number }
  | { reset: true; latencyMs?: number }
  | { hang: true }
  | { stream: string[]; chunkDelayMs?: number; firstChunkDelayMs?: number; failAfterChunks?: number; endWithoutFinish?: boolean };

export interface ModelServer {
  /** OpenAI-style base URL, e.g. http://127.0.0.1:1234/v1 */
  baseURL: string;
  /** Origin, used as an Azure OpenAI endpoint. */
  origin: string;
  requests: RecordedRequest[];
  enqueue(...behaviours: Behaviour[]): void;
  setDefault(behaviour: Behaviour): void;
  /** Parks every request (they are recorded but not answered) until `release()`. */
  hold(): void;
  release(): void;
  /** Resolves once `count` requests have arrived. */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export function lastUserContent(request: RecordedRequest): string {
  const users = request.body.messages.filter((m) => m.role === 'user');
  return users[users.length - 1]?.content ?? '';
}

/** The request's last message: `role === 'tool'` when the app is sending back tool results. */
export function lastMessage(request: RecordedRequest): ChatRequestMessage | undefined {
  return request.body.messages.at(-1);
}

/** Everything a prompt carries, for the rough usage figures. */
function promptText(request: RecordedRequest): string {
  return request.body.messages.map((m) => [m.content ?? '', ...(m.tool_calls ?? []).map((c) => c.function.arguments)].join('\n')).join('\n');
}

/** A crude but deterministic token estimate for usage figures (the app counts with a real tokenizer). */
function roughTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

export async function startModelServer(defaultBehaviour: Behaviour = { reply: (r) => `echo: ${lastUserContent(r)}` }): Promise<ModelServer> {
  const queue: Behaviour[] = [];
  let fallback = defaultBehaviour;
  const requests: RecordedRequest[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const openSockets = new Set<import('node:net').Socket>();
  let held: (() => void)[] | undefined;
  let callCount = 0;
  const nextCallId = () => `call_${++callCount}`;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const isChat = req.method === 'POST' && /^\/(v1\/chat\/completions|openai\/deployments\/[^/]+\/chat\/completions)$/.test(url.pathname);
      if (!isChat) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'not found' } }));
        return;
      }
      let body: ChatRequestBody;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ChatRequestBody;
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'bad json' } }));
        return;
      }
      const recorded: RecordedRequest = { method: req.method ?? "POST", path: url.pathname, query: url.searchParams, headers: req.headers, body, receivedAt: performance.timeOrigin + performance.now() };
      requests.push(recorded);
      for (const w of waiters.filter((w) => requests.length >= w.count)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
      const behaviour = queue.shift() ?? fallback;
      if (held !== undefined) held.push(() => void respond(behaviour, recorded, req, res, nextCallId));
      else void respond(behaviour, recorded, req, res, nextCallId);
    });
  });
  server.on('connection', (socket) => {
    openSockets.add(socket);
    socket.on('close', () => openSockets.delete(socket));
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;

  return {
    baseURL: `${origin}/v1`,
    origin,
    requests,
    enqueue: (...behaviours) => queue.push(...behaviours),
    setDefault: (behaviour) => {
      fallback = behaviour;
    },
    hold: () => {
      held ??= [];
    },
    release: () => {
      const parked = held ?? [];
      held = undefined;
      for (const answer of parked) answer();
    },
    waitForRequests(count, timeoutMs = 30_000) {
      if (requests.length >= count) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`model server saw ${requests.length} of ${count} requests`)), timeoutMs);
        waiters.push({ count, resolve: () => (clearTimeout(timer), resolve()) });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of openSockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function respond(b: Behaviour, request: RecordedRequest, req: http.IncomingMessage, res: http.ServerResponse, nextCallId: () => string): Promise<void> {
  if ('hang' in b) return; // the client's timeout (or close()) ends it
  if ('stream' in b) return streamChunks(b, request, res);
  if (b.latencyMs) await delay(b.latencyMs);
  if ('reset' in b) {
    req.socket.destroy();
    return;
  }
  if ('status' in b) {
    res.writeHead(b.status, { 'content-type': 'application/json', ...b.headers });
    res.end(b.body ?? JSON.stringify({ error: { message: `scripted ${b.status}`, type: 'scripted' } }));
    return;
  }
  if ('garbage' in b) {
    res.writeHead(200, { 'content-type': 'application/json' }).end(b.garbage);
    return;
  }
  if ('emptyChoices' in b) {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody([], request, { prompt: 1, completion: 0 })));
    return;
  }
  return answer(b, request, res, nextCallId);
}

type AnswerBehaviour = Extract<Behaviour, { reply: unknown } | { toolCalls: unknown }>;

/** Text, tool calls or both: as one completion, or streamed when the client asked for a stream. */
function answer(b: AnswerBehaviour, request: RecordedRequest, res: http.ServerResponse, nextCallId: () => string): Promise<void> | void {
  const scripted = 'toolCalls' in b ? b : typeof b.reply === 'function' ? b.reply(request) : b.reply;
  const text = typeof scripted === 'string' ? scripted : (scripted.reply ?? '');
  const calls = typeof scripted === 'string' ? [] : scripted.toolCalls.map((call) => toolCallOf(call, nextCallId));
  // A client that asked for a stream gets the reply streamed, word by word, like a real server.
  if (request.body.stream === true) {
    const chunkDelayMs = 'chunkDelayMs' in b ? b.chunkDelayMs : undefined;
    return streamChunks({ stream: text === '' && calls.length > 0 ? [] : text.split(/(?<= )/), toolCalls: calls, chunkDelayMs }, request, res);
  }
  const usage = b.usage ?? { prompt: roughTokens(promptText(request)), completion: roughTokens(text + callsText(calls)) };
  // Like OpenAI: a message that only calls tools has null content.
  const message = calls.length === 0 ? { role: 'assistant', content: text } : { role: 'assistant', content: text === '' ? null : text, tool_calls: calls.map(wireToolCall) };
  const choices = [{ index: 0, message, finish_reason: calls.length === 0 ? 'stop' : 'tool_calls' }];
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(choices, request, usage)));
}

/** A scripted call with its id and type settled and its arguments as JSON text. */
interface SettledToolCall {
  id: string;
  type: string;
  name: string;
  arguments: string;
}

function toolCallOf(call: ScriptedToolCall, nextCallId: () => string): SettledToolCall {
  const args = typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments);
  return { id: call.id ?? nextCallId(), type: call.type ?? 'function', name: call.name, arguments: args };
}

function callsText(calls: readonly SettledToolCall[]): string {
  return calls.map((c) => c.name + c.arguments).join('');
}

/** A call as OpenAI sends it; a non-function type carries its payload under its own name (like `custom`). */
function wireToolCall(call: SettledToolCall) {
  const payload = call.type === 'function' ? { name: call.name, arguments: call.arguments } : { name: call.name, input: call.arguments };
  return { id: call.id, type: call.type, [call.type]: payload };
}

/** Splits text into `parts` pieces (fewer when it is shorter), so arguments arrive in fragments. */
function pieces(text: string, parts: number): string[] {
  const size = Math.max(1, Math.ceil(text.length / parts));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/**
 * The `delta.tool_calls` fragments of a streamed answer: each call's first fragment has its id and
 * name, its arguments follow in three pieces, and parallel calls interleave (round robin by index).
 */
function toolCallFragments(calls: readonly SettledToolCall[]): unknown[][] {
  const perCall = calls.map((call, index) => {
    const field = call.type === 'function' ? 'function' : call.type;
    const argsKey = call.type === 'function' ? 'arguments' : 'input';
    const first = { index, id: call.id, type: call.type, [field]: { name: call.name, [argsKey]: '' } };
    return [first, ...pieces(call.arguments, 3).map((piece) => ({ index, [field]: { [argsKey]: piece } }))];
  });
  const rounds: unknown[][] = [];
  for (let round = 0; perCall.some((fragments) => round < fragments.length); round++) {
    for (const fragments of perCall) {
      const fragment = fragments[round];
      if (fragment !== undefined) rounds.push([fragment]);
    }
  }
  return rounds;
}

function completionBody(choices: unknown[], request: RecordedRequest, usage: { prompt: number; completion: number }) {
  return {
    id: `chatcmpl-${Math.round(request.receivedAt)}`,
    object: 'chat.completion',
    created: Math.floor(request.receivedAt / 1000),
    model: request.body.model ?? 'scripted',
    choices,
    usage: { prompt_tokens: usage.prompt, completion_tokens: usage.completion, total_tokens: usage.prompt + usage.completion },
  };
}

interface StreamScript {
  stream: string[];
  /** Sent after the text, as `delta.tool_calls` chunks; the stream then finishes with `tool_calls`. */
  toolCalls?: SettledToolCall[];
  chunkDelayMs?: number;
  firstChunkDelayMs?: number;
  failAfterChunks?: number;
  endWithoutFinish?: boolean;
}

async function streamChunks(b: StreamScript, request: RecordedRequest, res: http.ServerResponse) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  // A model's time to first token.
  if (b.firstChunkDelayMs) await delay(b.firstChunkDelayMs);
  const base = { id: `chatcmpl-${Math.round(request.receivedAt)}`, object: 'chat.completion.chunk', created: Math.floor(request.receivedAt / 1000), model: request.body.model ?? 'scripted' };
  const calls = b.toolCalls ?? [];
  const deltas = [...b.stream.map((piece) => ({ content: piece })), ...toolCallFragments(calls).map((fragments) => ({ tool_calls: fragments }))];
  for (const [i, delta] of deltas.entries()) {
    if (b.failAfterChunks !== undefined && i >= b.failAfterChunks) {
      res.socket?.destroy();
      return;
    }
    res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`);
    if (b.chunkDelayMs) await delay(b.chunkDelayMs);
  }
  if (b.endWithoutFinish) {
    res.end(); // a clean end of the response, but no finish reason and no [DONE]: a truncated answer
    return;
  }
  const prompt = roughTokens(promptText(request));
  const completion = roughTokens(b.stream.join('') + callsText(calls));
  const finishReason = calls.length === 0 ? 'stop' : 'tool_calls';
  res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: finishReason }] })}\n\n`);
  res.write(`data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } })}\n\n`);
  res.end('data: [DONE]\n\n');
}
