/**
 * A scripted OpenAI-compatible model server for tests, on 127.0.0.1 and a free port.
 *
 *   const model = await startModelServer();          // model.baseURL → OPENAI_BASE_URL
 *   model.enqueue({ status: 429, headers: { 'retry-after': '0' } }, { reply: 'ok' });
 *   model.setDefault({ reply: (req) => `echo: ${lastUserContent(req)}`, latencyMs: 50 });
 *   model.requests                                    // everything the app sent, in arrival order
 *   model.hold(); ...; model.release();               // park requests, then answer them all
 *   await model.close();
 *
 * Serves `POST /v1/chat/completions` (OpenAI style) and
 * `POST /openai/deployments/{deployment}/chat/completions?api-version=` (Azure style). Each request
 * takes the next queued behaviour, else the default. Behaviours can delay, fail with a status,
 * return garbage, reset the connection, hang until the client gives up, or stream SSE chunks (and
 * cut the stream, or end it cleanly without a finish reason).
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

export interface ChatRequestBody {
  model?: string;
  messages: { role: string; content: string }[];
  stream?: boolean;
  max_tokens?: number;
  max_completion_tokens?: number;
  [key: string]: unknown;
}

export type Behaviour =
  | { reply: string | ((request: RecordedRequest) => string); latencyMs?: number; usage?: { prompt: number; completion: number } }
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
      if (held !== undefined) held.push(() => void respond(behaviour, recorded, req, res));
      else void respond(behaviour, recorded, req, res);
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

async function respond(b: Behaviour, request: RecordedRequest, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
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
  const text = typeof b.reply === 'function' ? b.reply(request) : b.reply;
  // A client that asked for a stream gets the reply streamed, word by word, like a real server.
  if (request.body.stream === true) return streamChunks({ stream: text.split(/(?<= )/) }, request, res);
  const usage = b.usage ?? { prompt: roughTokens(request.body.messages.map((m) => m.content).join('\n')), completion: roughTokens(text) };
  const choices = [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }];
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(choices, request, usage)));
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

async function streamChunks(b: { stream: string[]; chunkDelayMs?: number; firstChunkDelayMs?: number; failAfterChunks?: number; endWithoutFinish?: boolean }, request: RecordedRequest, res: http.ServerResponse) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  // A model's time to first token.
  if (b.firstChunkDelayMs) await delay(b.firstChunkDelayMs);
  const base = { id: `chatcmpl-${Math.round(request.receivedAt)}`, object: 'chat.completion.chunk', created: Math.floor(request.receivedAt / 1000), model: request.body.model ?? 'scripted' };
  for (const [i, piece] of b.stream.entries()) {
    if (b.failAfterChunks !== undefined && i >= b.failAfterChunks) {
      res.socket?.destroy();
      return;
    }
    res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] })}\n\n`);
    if (b.chunkDelayMs) await delay(b.chunkDelayMs);
  }
  if (b.endWithoutFinish) {
    res.end(); // a clean end of the response, but no finish reason and no [DONE]: a truncated answer
    return;
  }
  const prompt = roughTokens(request.body.messages.map((m) => m.content).join('\n'));
  const completion = roughTokens(b.stream.join(''));
  res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
  res.write(`data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } })}\n\n`);
  res.end('data: [DONE]\n\n');
}
