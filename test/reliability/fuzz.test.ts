/**
 * Hostile input (DESIGN.md section 6, "bad input"): a property-based fuzz of routes, methods,
 * headers, bodies, chat ids, Idempotency-Keys and timestampUTCs against the app on the runtime under test,
 * with a fixed seed. Every answer must be a documented 2xx or a 4xx with the JSON error shape —
 * never a 5xx, never a hung request — and must not echo a secret. A second property sends what
 * fetch cannot: Content-Length lies, conflicting framing headers and raw bytes in header values,
 * over raw sockets. Afterwards the host still serves a full chat round trip, logged no handler
 * failure, and holds no connections for requests whose clients went away.
 */
import { readdirSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { runtimeFromEnv } from '../support/runtimes';
import { AZURITE_ACCOUNT_KEY } from '../support/azurite';
import { lastUserContent } from '../support/model-server';
import { isErrorBody, parseJson, printSummary, rawExchange } from './helpers';

const SEED = 424_242;
const RUNS = 600;
const RAW_RUNS = 300;
const REQUEST_DEADLINE_MS = 15_000;
/** Raw exchanges never wait on the model, so they get a shorter deadline (this also bounds shrinking). */
const RAW_DEADLINE_MS = 5_000;
const MAX_BODY_BYTES = 262_144; // the default, so the fuzz also checks the default limit
const MAX_MESSAGE_CHARS = 32_000;

const MODEL_KEY = 'sk-test-SECRET-123';
const CLIENT_TOKEN = 'client-SECRET-token-456';
/** The runtime's real key where it checks keys (else a stand-in), so requests get past the key check. */
const FUNCTION_KEY = runtimeFromEnv().functionKey ?? 'function-SECRET-key-789';
/** Strings that must never appear in a response or in the host's log. */
const SECRETS = [MODEL_KEY, CLIENT_TOKEN, FUNCTION_KEY, AZURITE_ACCOUNT_KEY];

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ OPENAI_API_KEY: MODEL_KEY, MODEL_MAX_RETRIES: '1', MODEL_TIMEOUT_MS: '2000' });
  t.model.setDefault({ reply: (request) => `re: ${lastUserContent(request).slice(0, 100)}` });
  for (const chatId of ['fuzz-chat', 'Fuzz.Chat_2']) {
    expect((await fetch(t.url(`/api/chats/${chatId}`), { method: 'PUT' })).status).toBe(201);
  }
});
afterAll(() => t?.stop());

// ---- what the fuzz sends -------------------------------------------------------------------

const VALID_CHAT_ID = fc.stringMatching(/^[A-Za-z0-9._-]{1,128}$/).filter((id) => id !== '.' && id !== '..');

/** Chat ids as they appear in the path: already percent-encoded where needed. */
const chatIdInPath = fc.oneof(
  fc.constantFrom('fuzz-chat', 'Fuzz.Chat_2', 'FUZZ-CHAT', 'fuzz_chat'),
  VALID_CHAT_ID,
  fc.constantFrom(
    '..',
    '.',
    '..%2F..%2Fadmin',
    '..%2f..%2fruntime%2fwebhooks',
    '%2e%2e',
    'a%2Fb',
    'a%5Cb',
    'a@b',
    '%40chat%40x',
    'ch%C3%A4t',
    '%F0%9F%92%AC',
    '%C0%AE%C0%AE',
    '%00',
    '%ZZ',
    '%',
    'a%20b',
    'a+b',
    '~user',
    'x'.repeat(129),
    'x'.repeat(10_240),
    'CON',
    '%E2%80%AE',
  ),
  fc.string({ unit: 'grapheme', maxLength: 40 }).map((raw) => encodeURIComponent(raw)),
);

const timestampUTC = fc.oneof(
  fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
  fc.constantFrom(
    '2024-01-15T22:00:00',
    '2024-01-15T22:00:00Z',
    '2024-02-30T00:00:00Z',
    '2024-01-01T24:00:00Z',
    '2024-01-01T00:00:60Z',
    '2024-13-01T00:00:00Z',
    '2024-01-01T00:00:00+99:99',
    '9999-12-31T23:59:59.999999999+14:00',
    '0000-01-01T00:00:00Z',
    '+275760-09-13T00:00:00Z',
    'yesterday',
    '',
    ' ',
    '1705356000000',
    "2024-01-01T00:00:00Z' OR '1'='1",
  ),
  fc.string({ maxLength: 40 }),
);

const waitValue = fc.constantFrom('0', '1', '0.5', '230', '231', '-1', 'abc', '', '1e309', 'NaN', 'Infinity', '0x10');

const query = fc
  .record(
    {
      timestampUTC,
      wait: waitValue,
      code: fc.constant(FUNCTION_KEY),
      extra: fc.string({ maxLength: 20 }),
    },
    { requiredKeys: [] },
  )
  .map((params) => {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) search.append(name, value);
    const text = search.toString();
    return text === '' ? '' : `?${text}`;
  });

/** Paths with the methods their routes serve (empty: no route), so most requests get past routing. */
interface FuzzRoute {
  path: string;
  methods: string[];
}

const route: fc.Arbitrary<FuzzRoute> = fc.oneof<fc.MaybeWeightedArbitrary<FuzzRoute>[]>(
  { arbitrary: chatIdInPath.map((id) => ({ path: `/api/chats/${id}`, methods: ['PUT', 'POST', 'GET', 'DELETE'] })), weight: 8 },
  { arbitrary: fc.constant({ path: '/api/ask', methods: ['POST'] }), weight: 3 },
  { arbitrary: chatIdInPath.map((name) => ({ path: `/api/whois/${name}`, methods: ['GET'] })), weight: 2 },
  {
    arbitrary: fc.constantFrom<FuzzRoute[]>(
      { path: '/api/ui', methods: ['GET'] },
      { path: '/api/ASK', methods: ['POST'] },
      { path: '/API/chats/fuzz-chat', methods: ['PUT', 'POST', 'GET', 'DELETE'] },
      { path: '/api/chats', methods: [] },
      { path: '/api/chats/', methods: [] },
      { path: '/api/chats/fuzz-chat/extra', methods: [] },
      { path: '/api', methods: [] },
      { path: '/api/whois/', methods: [] },
    ),
    weight: 1,
  },
  { arbitrary: fc.webSegment().map((segment) => ({ path: `/api/${segment}`, methods: [] })), weight: 1 },
);

const anyMethod = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'PROPFIND');
/** Mostly a method the route serves, sometimes any method. */
const methodFor = (methods: string[]) => (methods.length === 0 ? anyMethod : fc.oneof({ arbitrary: fc.constantFrom(...methods), weight: 4 }, { arbitrary: anyMethod, weight: 1 }));

const contentType = fc.constantFrom(
  undefined,
  'application/json',
  'application/json; charset=utf-8',
  'text/json',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'application/json; charset=utf-16',
  'application/octet-stream',
  'application/xml',
  ';;;',
  '',
);

const idempotencyKey = fc.oneof(
  fc.constantFrom(undefined, 'key-1', 'key-1', 'KEY-1', 'a.b', 'a_b', 'x'.repeat(128), 'x'.repeat(129), '', ' ', 'a b', '../x', 'a/b', '%41', "' OR 1=1", 'k'.repeat(4096)),
  fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/),
);

const jsonText = (value: unknown) => JSON.stringify(value);
const deepArrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const textField = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'grapheme', maxLength: 50 }), fc.constantFrom('', ' ', '\u0000', '\ud800', 'x'.repeat(MAX_MESSAGE_CHARS + 1)));

/** Request bodies as bytes. */
const body: fc.Arbitrary<Uint8Array | undefined> = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 2 },
  {
    arbitrary: fc
      .record({ message: textField, prompt: textField, instructions: textField, messageId: fc.oneof(fc.string({ maxLength: 20 }), fc.jsonValue()) }, { requiredKeys: [] })
      .map((value) => Buffer.from(jsonText(value))),
    weight: 5,
  },
  {
    arbitrary: fc.record({ message: fc.jsonValue(), prompt: fc.jsonValue(), instructions: fc.jsonValue() }, { requiredKeys: [] }).map((value) => Buffer.from(jsonText(value))),
    weight: 3,
  },
  { arbitrary: fc.jsonValue().map((value) => Buffer.from(jsonText(value) ?? 'null')), weight: 2 },
  {
    arbitrary: fc
      .constantFrom(
        '{"__proto__":{"message":"polluted","polluted":true}}',
        '{"constructor":{"prototype":{"message":"polluted","polluted":true}},"prompt":"hi"}',
        '{"message":"hi","__proto__":{"isAdmin":true},"messageId":"proto-1"}',
        '{"prompt":"hi","prompt":{"nested":1}}',
        '{"message":"hi"}{"message":"again"}',
        '{"message":"\\ud800"}',
        '{"message":1e999}',
        '{"message":"hi",}',
        "{'message':'hi'}",
        'null',
        '[]',
        '"just a string"',
        '123',
        'true',
        '\ufeff{"message":"with a byte order mark"}',
        '',
        '   ',
        `{"message":${deepArrays(100_000)}}`,
        deepArrays(100_000),
        `{"message":"hi","extra":${deepArrays(50_000)}}`,
        `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`,
        `{"message":"${'a'.repeat(MAX_BODY_BYTES)}"}`,
        `{"prompt":"${'é'.repeat(MAX_BODY_BYTES / 2)}"}`,
        `{"message":"${'a'.repeat(MAX_MESSAGE_CHARS + 1)}"}`,
        `{"instructions":"${'b'.repeat(MAX_MESSAGE_CHARS + 1)}"}`,
      )
      .map((text) => Buffer.from(text)),
    weight: 3,
  },
  {
    arbitrary: fc.constantFrom(
      Buffer.from([0x7b, 0x22, 0x6d, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), // {"m":"<invalid UTF-8>"}
      Buffer.from([0x7b, 0x22, 0x6d, 0x65, 0x73, 0x73, 0x61, 0x67, 0x65, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]), // bad 2-byte sequence
      Buffer.from([0xed, 0xa0, 0x80]), // an encoded surrogate
      Buffer.from([0xc0, 0xaf]), // overlong '/'
      Buffer.from('{"message":"hi"}', 'utf16le'),
    ),
    weight: 2,
  },
  { arbitrary: fc.uint8Array({ maxLength: 512 }), weight: 2 },
);

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Uint8Array | undefined;
}

const fuzzRequest: fc.Arbitrary<FuzzRequest> = route
  .chain(({ path, methods }) => fc.record({ path: fc.constant(path), method: methodFor(methods), query, contentType, idempotencyKey, body, acceptsEventStream: fc.boolean() }))
  .map(({ method, path, query, contentType, idempotencyKey, body, acceptsEventStream }) => {
    const headers: Record<string, string> = { Authorization: `Bearer ${CLIENT_TOKEN}`, 'x-functions-key': FUNCTION_KEY };
    if (contentType !== undefined) headers['Content-Type'] = contentType;
    if (idempotencyKey !== undefined) headers['Idempotency-Key'] = idempotencyKey;
    if (acceptsEventStream) headers['Accept'] = 'text/event-stream';
    // fetch refuses bodies on GET and HEAD; those are covered by the raw-socket property.
    return { method, path: `${path}${query}`, headers, body: method === 'GET' || method === 'HEAD' ? undefined : body };
  });

// ---- what every answer must be -------------------------------------------------------------

interface Answer {
  status: number;
  contentType: string;
  text: string;
  headerText: string;
}

const statusCounts = new Map<string, number>();
const count = (key: string) => statusCounts.set(key, (statusCounts.get(key) ?? 0) + 1);

function checkAnswer(request: { method: string; path: string }, answer: Answer): void {
  const where = `${request.method} ${request.path.slice(0, 200)} -> ${answer.status} ${answer.text.slice(0, 300)}`;
  expect(answer.status, where).toBeLessThan(500);
  if (answer.status >= 400 && answer.status < 500 && answer.text === '') {
    // Refused by the host before any app code ran (the app never answers an empty 4xx): no function's
    // route matched (an empty 404 on both runtimes), or the Functions host's front end refused the
    // request line itself (400 for a NUL in the path, 414 for a 10 KB path).
    count(`${answer.status} (from the host)`);
  } else if (answer.status >= 400) {
    count(`${answer.status} ${isErrorBody(parseJson(answer.text)) ? (parseJson(answer.text) as { error: { code: string } }).error.code : '(no body)'}`);
    if (request.method !== 'HEAD') {
      expect(answer.contentType, where).toContain('application/json');
      expect(isErrorBody(parseJson(answer.text)), where).toBe(true);
    }
  } else {
    count(String(answer.status));
    expect([200, 201, 202, 204], where).toContain(answer.status);
  }
  for (const secret of SECRETS) {
    expect(answer.text.includes(secret) || answer.headerText.includes(secret), `${where}: the answer contains a secret`).toBe(false);
  }
}

async function send(request: FuzzRequest): Promise<Answer> {
  const response = await fetch(t.url(request.path), {
    method: request.method,
    headers: request.headers,
    body: request.body,
    signal: AbortSignal.timeout(REQUEST_DEADLINE_MS),
  });
  const text = await response.text();
  const headerText = [...response.headers].map(([name, value]) => `${name}: ${value}`).join('\n');
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', text, headerText };
}

// ---- raw sockets: what fetch cannot send ---------------------------------------------------

interface RawCase {
  label: string;
  bytes: Buffer;
  /** Sends FIN after the bytes: a client that stops sending (needed when it promised more than it sent). */
  halfClose: boolean;
}

const rawBodyText = fc.constantFrom('{"prompt":"hi"}', '{"message":"hi"}', '{"instructions":"x"}', '{}', '', '{"message":"hé"}');
const rawPath = fc.constantFrom('/api/ask', '/api/chats/fuzz-chat', '/api/chats/fuzz-chat?wait=0', '/api/chats/new-raw-chat', '/api/whois/Ada', '/api/chats/..%2Fx');
const rawMethod = fc.constantFrom('POST', 'PUT', 'GET', 'DELETE');

/**
 * Header values as raw bytes: Latin-1, UTF-8, control characters — only printable ASCII and tabs
 * where the runtime's front end cannot forward the rest (the Functions host never answers those;
 * README "Runtimes").
 */
const anyHeaderBytes = fc.oneof(
  { arbitrary: fc.constantFrom('key-1', 'raw-key-2', 'application/json', 'text/json').map((text) => Buffer.from(text, 'latin1')), weight: 3 },
  { arbitrary: fc.constantFrom('h\u00e9llo', '\u00ff\u00fe', 'a\tb', ' padded ', '').map((text) => Buffer.from(text, 'latin1')), weight: 2 },
  { arbitrary: fc.constantFrom('ключ', '🔑', 'ā'.repeat(100)).map((text) => Buffer.from(text, 'utf8')), weight: 2 },
  { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 40 }).map((bytes) => Buffer.from(bytes.map((b) => (b === 0x0d || b === 0x0a ? 0x20 : b)))), weight: 1 },
);
const printable = (b: number) => b === 0x09 || (b >= 0x20 && b < 0x7f);
const rawHeaderValue = runtimeFromEnv().frontEnd.forwardsRawHeaderBytes ? anyHeaderBytes : anyHeaderBytes.map((bytes) => Buffer.from(bytes.filter(printable)));

const framing = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('exact' as const) }), weight: 4 },
  fc.record({ kind: fc.constant('longer' as const), by: fc.integer({ min: 1, max: 1000 }) }),
  fc.record({ kind: fc.constant('shorter' as const), by: fc.integer({ min: 1, max: 10 }) }),
  fc.record({ kind: fc.constant('header' as const), value: fc.constantFrom('-1', 'abc', '1e3', '0x10', ' 15', '99999999999999999999', '') }),
  fc.record({ kind: fc.constant('two lengths' as const) }),
  fc.record({ kind: fc.constant('length and chunked' as const) }),
  // Malformed chunking only where the front end refuses it with a 4xx: the Functions host answers it
  // with a 500 or not at all, before any app code runs (README "Runtimes").
  ...(runtimeFromEnv().frontEnd.refusesMalformedChunking ? [fc.record({ kind: fc.constant('bad chunk' as const), chunk: fc.constantFrom('zz', '-1', 'fffffffffffffffff', '5;ext', '') })] : []),
);

const rawCase: fc.Arbitrary<RawCase> = fc
  .record({ method: rawMethod, path: rawPath, body: rawBodyText, framing, key: fc.option(rawHeaderValue), other: fc.option(rawHeaderValue), contentType: fc.option(rawHeaderValue) })
  .map(({ method, path, body, framing, key, other, contentType }) => {
    const bodyBytes = Buffer.from(body, 'utf8');
    const head: Buffer[] = [Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer ${CLIENT_TOKEN}\r\nx-functions-key: ${FUNCTION_KEY}\r\n`)];
    const header = (name: string, value: Buffer) => head.push(Buffer.concat([Buffer.from(`${name}: `), value, Buffer.from('\r\n')]));
    if (key !== null) header('Idempotency-Key', key);
    if (other !== null) header('X-Anything', other);
    if (contentType !== null) header('Content-Type', contentType);
    let payload = bodyBytes;
    let halfClose = false;
    switch (framing.kind) {
      case 'exact':
        header('Content-Length', Buffer.from(String(bodyBytes.length)));
        break;
      case 'longer':
        // Promises more than it sends, then stops: the server cannot answer the request, only drop it.
        header('Content-Length', Buffer.from(String(bodyBytes.length + framing.by)));
        halfClose = true;
        break;
      case 'shorter':
        header('Content-Length', Buffer.from(String(Math.max(0, bodyBytes.length - framing.by))));
        break;
      case 'header':
        // Some of these parse as a length larger than the body (" 15"): stop sending, as with 'longer'.
        header('Content-Length', Buffer.from(framing.value));
        halfClose = true;
        break;
      case 'two lengths':
        header('Content-Length', Buffer.from(String(bodyBytes.length)));
        header('Content-Length', Buffer.from(String(bodyBytes.length + 1)));
        break;
      case 'length and chunked':
        header('Content-Length', Buffer.from(String(bodyBytes.length)));
        header('Transfer-Encoding', Buffer.from('chunked'));
        payload = Buffer.concat([Buffer.from(`${bodyBytes.length.toString(16)}\r\n`), bodyBytes, Buffer.from('\r\n0\r\n\r\n')]);
        break;
      case 'bad chunk':
        header('Transfer-Encoding', Buffer.from('chunked'));
        payload = Buffer.concat([Buffer.from(`${framing.chunk}\r\n`), bodyBytes, Buffer.from('\r\n0\r\n\r\n')]);
        break;
    }
    return { label: `${method} ${path} ${JSON.stringify(framing)}`, bytes: Buffer.concat([...head, Buffer.from('\r\n'), payload]), halfClose };
  });

const rawOutcomes = new Map<string, number>();

// ---- the properties ------------------------------------------------------------------------

function openDescriptors(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined; // not Linux: the descriptor check is skipped
  }
}

describe('hostile input against the app', () => {
  it(`answers ${RUNS} fuzzed requests (seed ${SEED}) with documented 2xx or 4xx JSON errors only, in time, without secrets`, async () => {
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(fuzzRequest, async (request) => {
        checkAnswer(request, await send(request));
      }),
      { seed: SEED, numRuns: RUNS },
    );
    printSummary('fuzz over fetch', {
      seed: SEED,
      runs: RUNS,
      answers5xx: 0,
      hung: 0,
      seconds: ((Date.now() - started) / 1000).toFixed(1),
      byStatus: [...statusCounts.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([key, n]) => `${key.replace(/ /g, ':')}x${n}`)
        .join(','),
    });
  }, 240_000);

  it(`answers ${RAW_RUNS} raw-socket requests with Content-Length lies and raw header bytes (seed ${SEED}) with a 4xx or a closed connection, never a 5xx or a hang`, async () => {
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(rawCase, async (request) => {
        const exchange = await rawExchange(t.host.port, request.bytes, { deadlineMs: RAW_DEADLINE_MS, halfClose: request.halfClose });
        const where = `${request.label}: ${exchange.outcome} ${exchange.statuses.join(',')} ${exchange.body.slice(0, 300)}`;
        expect(exchange.outcome, where).not.toBe('timeout');
        for (const status of exchange.statuses) expect(status, where).toBeLessThan(500);
        const key = exchange.outcome === 'response' ? String(exchange.status) : 'closed without an answer';
        rawOutcomes.set(key, (rawOutcomes.get(key) ?? 0) + 1);
        // A response with a body comes from the app or the host's router, and then has the error shape;
        // framing errors are refused by Node's HTTP parser with a bare 400 before any code of ours runs.
        if (exchange.status !== undefined && exchange.status >= 400 && exchange.body !== '') {
          expect(isErrorBody(parseJson(exchange.body)), where).toBe(true);
        }
        for (const secret of SECRETS) expect(exchange.body.includes(secret), `${where}: the answer contains a secret`).toBe(false);
      }),
      { seed: SEED, numRuns: RAW_RUNS },
    );
    printSummary('fuzz over raw sockets', {
      seed: SEED,
      runs: RAW_RUNS,
      answers5xx: 0,
      hung: 0,
      seconds: ((Date.now() - started) / 1000).toFixed(1),
      outcomes: [...rawOutcomes.entries()].map(([key, n]) => `${key.replace(/ /g, '_')}x${n}`).join(','),
    });
  }, 240_000);

  it('lets go of requests whose clients stopped sending mid-body (no connection or invocation left waiting)', async () => {
    const before = openDescriptors(t.host.pid);
    const truncated = Buffer.from(`POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nx-functions-key: ${FUNCTION_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt":"hi"}`);
    for (let i = 0; i < 40; i++) {
      const exchange = await rawExchange(t.host.port, truncated, { deadlineMs: 5_000, halfClose: true });
      expect(exchange.outcome).not.toBe('timeout');
    }
    const healthy = await fetch(t.url('/api/ask'), { method: 'POST', body: '{"prompt":"still there?"}' });
    expect(await healthy.text()).toBe('re: still there?');
    if (before === undefined) return;
    // Each abandoned request that is still being waited on holds a socket pair inside the host.
    const settled = await (async () => {
      const deadline = Date.now() + 5_000;
      for (;;) {
        const now = openDescriptors(t.host.pid) ?? 0;
        if (now - before < 10 || Date.now() > deadline) return now;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    expect(settled - before).toBeLessThan(10);
  });

  it('keeps serving afterwards: health, a chat round trip, no handler failure or secret in the log, no polluted prototype', async () => {
    expect((await fetch(t.url('/api/chats/after-fuzz'), { method: 'PUT', body: '{}' })).status).toBe(201);
    const posted = await fetch(t.url('/api/chats/after-fuzz'), { method: 'POST', body: '{"message":"hello after the fuzz"}' });
    expect(posted.status).toBe(200);
    expect(await posted.text()).toBe('re: hello after the fuzz');
    // If a body had polluted Object.prototype.message, an empty body would pass as a message.
    const empty = await fetch(t.url('/api/chats/after-fuzz'), { method: 'POST', body: '{}' });
    expect(empty.status).toBe(400);
    const state = (await (await fetch(t.url('/api/chats/after-fuzz'))).json()) as Record<string, unknown>;
    expect(Object.keys(state).sort()).toEqual(['createdAt', 'exists', 'id', 'instructions', 'lastUpdatedAt', 'pendingMessages', 'recentMessages', 'tools', 'totalMessages', 'totalTokens']);

    const logLines = t.host.logs().split('\n');
    // A failed invocation counts unless the host failed it because the client abandoned its upload
    // (the Functions host logs those as failed: its proxy to the worker, or its binding of the
    // request, lost the request body).
    const failures = logLines.flatMap((line, i) => {
      if (!/\(Failed, Id=|Unhandled error|Uncaught|Unhandled promise rejection| -> 5\d\d /.test(line)) return [];
      const detail = logLines.slice(i, i + 4).join('\n');
      return /ForwarderError: Request(Body)?(Canceled|Client)|BadHttpRequestException: Unexpected end of request content/.test(detail) ? [] : [detail];
    });
    expect(failures).toEqual([]);
    const linesWithSecrets = logLines.filter((line) => SECRETS.some((secret) => line.includes(secret)));
    expect(linesWithSecrets).toEqual([]);
  });
});
