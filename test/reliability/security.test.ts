/**
 * Security basics: every HTTP route is registered with authLevel "function" (read from the
 * registrations the app makes, as the Functions host receives them); no secret — the model API key,
 * the storage account key, a client's Authorization header or function key — appears in an answer
 * or in the host's log, even when the model echoes its key in an error; body and text size limits
 * answer 413; chat ids cannot collide or escape their entity (case matters, `.`/`_` matter, `..` and
 * encoded separators are refused), and message ids stay unique within a chat.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../devhost/log';
import { readPackageMain } from '../../devhost/settings/appSettings';
import { WorkerRegistry } from '../../devhost/worker/coreApi';
import { globFiles } from '../../devhost/worker/glob';
import { installCoreModule } from '../../devhost/worker/installCoreModule';
import { startTestApp, type TestApp } from '../support/app';
import { runtimeFromEnv } from '../support/runtimes';
import { AZURITE_ACCOUNT_KEY } from '../support/azurite';
import { REPO_ROOT } from '../support/host';
import { lastUserContent } from '../support/model-server';
import { isErrorBody, parseJson, printSummary, rawExchange, readChat } from './helpers';

const MODEL_KEY = 'sk-test-SECRET-123';
const CLIENT_TOKEN = 'client-SECRET-token-456';
/** Sent as the function key where the runtime does not check keys; where it does, its real key is sent. */
const UNCHECKED_FUNCTION_KEY = 'function-SECRET-key-789';
const MAX_BODY_BYTES = 4_096;
const MAX_MESSAGE_CHARS = 1_000;
const json = { 'Content-Type': 'application/json' };

const tally = { routesChecked: 0, answersScannedForSecrets: 0, limitChecks: 0, chatIdsRefused: 0, distinctChats: 0 };
afterAll(() => printSummary('security basics', tally));

describe('registrations', () => {
  it('gives every HTTP route authLevel "function"', () => {
    // Load the compiled app the way the worker does, with the local host's @azure/functions-core, and
    // read the metadata each app.http(...) sends to the Functions host.
    const registry = new WorkerRegistry(createLogger({ minimumLevel: 'none' }));
    const uninstall = installCoreModule(registry.createCoreModule());
    try {
      const requireFromApp = createRequire(path.join(REPO_ROOT, 'package.json'));
      for (const file of globFiles(readPackageMain(REPO_ROOT), REPO_ROOT)) requireFromApp(path.join(REPO_ROOT, file));
    } finally {
      uninstall();
    }
    const httpTriggers = [...registry.functions.values()].flatMap((fn) =>
      Object.values(fn.metadata.bindings)
        .filter((binding) => binding.type.toLowerCase() === 'httptrigger')
        .map((binding) => ({ name: fn.metadata.name, route: binding['route'], authLevel: binding['authLevel'] })),
    );
    expect(httpTriggers.map((trigger) => trigger.name).sort()).toEqual(['answerApproval', 'ask', 'cancelTurn', 'createChat', 'deleteChat', 'getChat', 'listChats', 'postToChat', 'ui', 'uiChatMessages', 'uiChatPost', 'uiChatResume', 'whois']);
    for (const trigger of httpTriggers) expect(trigger, `${trigger.name} (${String(trigger.route)})`).toMatchObject({ authLevel: 'function' });
    tally.routesChecked = httpTriggers.length;
  });
});

describe('through the app', () => {
  let t: TestApp;
  let functionKey: string;
  let secrets: string[];
  beforeAll(async () => {
    t = await startTestApp({
      OPENAI_API_KEY: MODEL_KEY,
      MODEL_MAX_RETRIES: '1',
      MODEL_TIMEOUT_MS: '2000',
      MAX_BODY_BYTES: String(MAX_BODY_BYTES),
      MAX_MESSAGE_CHARS: String(MAX_MESSAGE_CHARS),
    });
    t.model.setDefault({ reply: (request) => `re: ${lastUserContent(request)}` });
    functionKey = t.runtime.functionKey ?? UNCHECKED_FUNCTION_KEY;
    secrets = [MODEL_KEY, CLIENT_TOKEN, functionKey, AZURITE_ACCOUNT_KEY];
  });
  afterAll(() => t?.stop());

  /**
   * Sends a request with the client's credentials — a bearer token, and the function key both as a
   * header and as ?code=, where Azure clients put it — and fails the test if the answer holds a secret.
   */
  async function call(method: string, pathAndQuery: string, body?: string | Uint8Array, headers: Record<string, string> = {}) {
    const url = new URL(`${t.host.url}${pathAndQuery}`);
    url.searchParams.set('code', functionKey);
    const credentials = { Authorization: `Bearer ${CLIENT_TOKEN}`, 'x-functions-key': functionKey };
    const response = await fetch(url, { method, headers: { ...json, ...credentials, ...headers }, body, signal: AbortSignal.timeout(15_000) });
    const text = await response.text();
    const everything = `${[...response.headers].map(([name, value]) => `${name}: ${value}`).join('\n')}\n${text}`;
    for (const secret of secrets) expect(everything.includes(secret), `${method} ${pathAndQuery} answered with a secret: ${everything.slice(0, 500)}`).toBe(false);
    tally.answersScannedForSecrets++;
    return { status: response.status, text, body: parseJson(text), headers: response.headers };
  }

  const logLinesWithSecrets = () => t.host.logs().split('\n').filter((line) => secrets.some((secret) => line.includes(secret)));

  describe('secrets', () => {
    it('does not pass on a model error that echoes the API key: not in the answer, the chat, or the log', async () => {
      const echoesKey = { error: { message: `Incorrect API key provided: ${MODEL_KEY}. You can find your API key at https://example.invalid.`, type: 'invalid_request_error' } };
      t.model.enqueue({ status: 401, body: JSON.stringify(echoesKey) });
      const asked = await call('POST', '/api/ask', JSON.stringify({ prompt: 'hello' }));
      expect(asked.status).toBe(502);
      expect(isErrorBody(asked.body)).toBe(true);
      expect(asked.text).toMatch(/401/);

      expect((await call('PUT', '/api/chats/secret-chat', '{}')).status).toBe(201);
      t.model.enqueue({ status: 500, body: JSON.stringify(echoesKey) }, { status: 500, body: JSON.stringify(echoesKey) });
      const posted = await call('POST', '/api/chats/secret-chat', JSON.stringify({ message: 'hello' }));
      expect(posted.status).toBe(502);
      const state = await call('GET', '/api/chats/secret-chat');
      expect(state.text).toMatch(/"status":"failed"/);
      expect(logLinesWithSecrets()).toEqual([]);
    });

    it("never reflects a client's Authorization header or function key, on any route or error", async () => {
      // Credentials travel in the headers and the ?code= every call() sends. (Values a client puts in
      // the path or body may be quoted back to it in errors.)
      const requests: [string, string, string?, Record<string, string>?][] = [
        ['GET', `/api/chats/secret-chat`],
        ['GET', `/api/chats/never-made`],
        ['GET', `/api/chats/bad@id`],
        ['GET', `/api/chats/secret-chat?timestampUTC=yesterday`],
        ['POST', `/api/chats/secret-chat?wait=soon`, '{"message":"hi"}'],
        ['POST', `/api/chats/secret-chat`, '{"message":"hi"}', { 'Idempotency-Key': 'not a key' }],
        ['POST', '/api/ask', '{"prompt": 1}'],
        ['POST', '/api/ask', 'not json'],
        ['POST', `/api/ask`, `{"prompt":"${'x'.repeat(MAX_MESSAGE_CHARS + 1)}"}`],
        ['PATCH', '/api/ask'],
        ['GET', `/api/no-such-route`],
        ['GET', `/api/whois/someone`],
        ['GET', '/admin/host/status'],
        ['GET', '/admin/devhost/stats'],
      ];
      for (const [method, target, body, headers] of requests) await call(method, target, body, headers);
      expect(logLinesWithSecrets()).toEqual([]);
    });

    it('keeps the storage account key and model key out of the log across a kill and a restart', async () => {
      await t.restartHost({ kill: true });
      expect((await call('GET', '/api/chats/secret-chat')).status).toBe(200);
      const logs = t.host.logs();
      expect(logs).not.toBe(''); // the restarted host's own log
      expect(logLinesWithSecrets()).toEqual([]);
      expect(logs).not.toMatch(/AccountKey=/i);
    });
  });

  describe('size limits', () => {
    it.each([
      ['POST', '/api/ask', 'prompt'],
      ['PUT', '/api/chats/limits', 'instructions'],
      ['POST', '/api/chats/limits', 'message'],
    ])(`%s %s: a body over MAX_BODY_BYTES (${MAX_BODY_BYTES}) or a %s over MAX_MESSAGE_CHARS (${MAX_MESSAGE_CHARS}) is 413; at the limits it is accepted`, async (method, target, field) => {
      if (target.startsWith('/api/chats/')) await call('PUT', '/api/chats/limits', '{}');
      const bodyOfBytes = (bytes: number) => {
        const shell = JSON.stringify({ [field]: 'x', padding: '' });
        return JSON.stringify({ [field]: 'x', padding: 'p'.repeat(bytes - shell.length) });
      };
      expect(Buffer.byteLength(bodyOfBytes(MAX_BODY_BYTES + 1))).toBe(MAX_BODY_BYTES + 1);
      const overBody = await call(method, target, bodyOfBytes(MAX_BODY_BYTES + 1));
      expect({ status: overBody.status, body: overBody.body }).toMatchObject({ status: 413, body: { error: { code: 'payload_too_large' } } });
      expect((await call(method, target, bodyOfBytes(MAX_BODY_BYTES))).status).toBeLessThan(300);

      const overText = await call(method, target, JSON.stringify({ [field]: 'y'.repeat(MAX_MESSAGE_CHARS + 1) }));
      expect({ status: overText.status, body: overText.body }).toMatchObject({ status: 413, body: { error: { code: 'payload_too_large' } } });
      // Characters, not bytes: 1000 two-byte characters are within both limits.
      expect((await call(method, target, JSON.stringify({ [field]: 'é'.repeat(MAX_MESSAGE_CHARS) }))).status).toBeLessThan(300);
      tally.limitChecks += 4;
    });

    const chunked = (text: string) => Buffer.concat([Buffer.from(`${Buffer.byteLength(text).toString(16)}\r\n`), Buffer.from(text), Buffer.from('\r\n')]);
    const chunkedHead = () => {
      const keyLines = Object.entries(t.keyHeaders()).map(([name, value]) => `${name}: ${value}\r\n`).join('');
      return Buffer.from(`POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n${keyLines}\r\n`);
    };

    it('answers 413 to a chunked upload over MAX_BODY_BYTES (no Content-Length to go by)', async () => {
      const small = Buffer.concat([chunkedHead(), chunked(`{"prompt":"${'a'.repeat(MAX_BODY_BYTES)}"}`), Buffer.from('0\r\n\r\n')]);
      const exchange = await rawExchange(t.host.port, small, { deadlineMs: 10_000 });
      expect({ status: exchange.status, error: isErrorBody(parseJson(exchange.body)) }).toEqual({ status: 413, error: true });
      tally.limitChecks += 1;
    });

    // The Functions host answers only once the upload has ended (README "Runtimes").
    it.runIf(runtimeFromEnv().frontEnd.answersBeforeBodyEnds)('answers 413 to an endless chunked upload once it passes the limit, not after the client stops', async () => {
      const endless = Buffer.concat([chunkedHead(), chunked('{"prompt":"'), ...Array.from({ length: 64 }, () => chunked('a'.repeat(16_384)))]);
      const cutOff = await rawExchange(t.host.port, endless, { deadlineMs: 10_000 });
      expect(cutOff.outcome).toBe('response');
      expect(cutOff.status).toBe(413);
      tally.limitChecks += 1;
    });
  });

  describe('chat ids', () => {
    const distinctIds = ['CaseChat', 'casechat', 'CASECHAT', 'a.b', 'a_b', 'a-b', 'ab', 'a..b', 'x'.repeat(128)];

    it('treats ids differing only in case or in "." / "_" / "-" as different chats', async () => {
      for (const chatId of distinctIds) {
        expect((await call('PUT', `/api/chats/${chatId}`, JSON.stringify({ instructions: `instructions of ${chatId}` }))).status).toBe(201);
        expect((await call('POST', `/api/chats/${chatId}`, JSON.stringify({ message: `hello ${chatId}` }))).text).toBe(`re: hello ${chatId}`);
      }
      for (const chatId of distinctIds) {
        const state = await readChat(t, chatId);
        expect(state?.instructions).toBe(`instructions of ${chatId}`);
        expect(state?.recentMessages.map((m) => m.content)).toEqual([`instructions of ${chatId}`, `hello ${chatId}`, `re: hello ${chatId}`]);
      }
      tally.distinctChats = distinctIds.length;
    });

    it('refuses ids that could escape or alias an entity, and leaves the other chats alone', async () => {
      const hostile = [
        '..',
        '.',
        '..%2F..%2Fcasechat',
        '..%2fCaseChat',
        '%2e%2e%2fcasechat',
        'a%2Fb',
        'a%5Cb',
        '%40chat%40casechat',
        'casechat%00',
        'case%20chat',
        '%EF%BD%83asechat', // fullwidth c
        'x'.repeat(129),
        'CaseChat%3Fop%3Ddelete',
        'CaseChat%23x',
        'a%25b',
      ];
      for (const chatId of hostile) {
        for (const [method, body] of [
          ['PUT', '{"instructions":"hijacked"}'],
          ['POST', '{"message":"hijack"}'],
          ['GET', undefined],
          ['DELETE', undefined],
        ] as const) {
          const answer = await call(method, `/api/chats/${chatId}`, body);
          // Refused as a chat id; or refused by the Functions host's front end itself (an empty 400 for a
          // NUL). '.' and '..' are removed by URL parsing: '/api/chats/.' is '/api/chats/', the chat
          // list (GET) and the AI SDK route (POST, which refuses this body), and '..' no route at all.
          const dotted = chatId === '.' || chatId === '..';
          expect(`${chatId} ${method} ${answer.status} ${answer.text.slice(0, 120)}`).toMatch(dotted ? / (404 $|400 \{.*invalid_field|200 \{"chats")/ : / (400 \{.*invalid_chat_id|400 $|404 $)/);
        }
        tally.chatIdsRefused++;
      }
      for (const chatId of distinctIds) expect((await readChat(t, chatId))?.instructions).toBe(`instructions of ${chatId}`);
      // The entity store holds exactly the chats created through valid ids.
      const listed = await fetch(`${t.host.url}/runtime/webhooks/durabletask/entities/chat?top=1000`, { headers: t.adminHeaders() });
      const keys = ((await listed.json()) as { entityId: { key: string } }[]).map((entity) => entity.entityId.key);
      expect(keys.filter((key) => !/^[A-Za-z0-9._-]{1,128}$/.test(key) || key === '.' || key === '..')).toEqual([]);
      expect(keys).not.toContain('hijacked');
    });

    it('keeps message ids unique within a chat, whatever Idempotency-Key a client picks', async () => {
      await call('PUT', '/api/chats/ids', '{}');
      const keys = ['hello.reply', 'hello', 'other', 'other.reply.reply', 'other.reply'];
      for (const key of keys) await call('POST', '/api/chats/ids', JSON.stringify({ message: `with key ${key}` }), { 'Idempotency-Key': key });
      const ids = (await readChat(t, 'ids'))?.recentMessages.map((m) => m.id) ?? [];
      expect(ids.length).toBeGreaterThan(0);
      expect(ids.filter((id, index) => ids.indexOf(id) !== index)).toEqual([]);
    });
  });
});
