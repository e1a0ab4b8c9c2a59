/**
 * Model faults (DESIGN.md section 6, "order and loss"): every fault the scripted model server can
 * inject — 429 with and without Retry-After, 500, 503, no answer (timeout), connection reset,
 * invalid JSON, no choices — once (the retry answers) and on every attempt (the turn fails), for
 * chats and for ask. A chat turn ends in a reply or a failed-turn record,
 * the user message is always kept, and the chat takes the next message. The retry budget settings
 * are honoured: a turn makes exactly 1 + MODEL_MAX_RETRIES model requests, waits the backoff or the
 * model's Retry-After between them, gives up on an attempt after MODEL_TIMEOUT_MS, and passes a
 * Retry-After longer than MODEL_RETRY_MAX_DELAY_MS on as 429 instead of sleeping it.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { startTestApp, type TestApp } from '../support/app';
import { REPO_ROOT } from '../support/host';
import { lastUserContent, type Behaviour, type ModelServer } from '../support/model-server';
import { isErrorBody, parseJson, pollUntil, printSummary, readChat, turnsOf, type ChatView } from './helpers';

interface Fault {
  name: string;
  behaviour: Behaviour;
  /** What ask answers when every attempt fails. */
  askStatus: number;
  code: 'model_throttled' | 'model_failed' | 'model_timeout';
}

const FAULTS: Fault[] = [
  { name: '429 with Retry-After: 1', behaviour: { status: 429, headers: { 'retry-after': '1' } }, askStatus: 429, code: 'model_throttled' },
  { name: '429 without Retry-After', behaviour: { status: 429 }, askStatus: 429, code: 'model_throttled' },
  { name: '500', behaviour: { status: 500 }, askStatus: 502, code: 'model_failed' },
  { name: '503', behaviour: { status: 503 }, askStatus: 502, code: 'model_failed' },
  { name: 'no answer (timeout)', behaviour: { hang: true }, askStatus: 504, code: 'model_timeout' },
  { name: 'connection reset', behaviour: { reset: true }, askStatus: 502, code: 'model_failed' },
  { name: '200 with invalid JSON', behaviour: { garbage: '{"id":"x","choices":[{"message":' }, askStatus: 502, code: 'model_failed' },
  { name: '200 without choices', behaviour: { emptyChoices: true }, askStatus: 502, code: 'model_failed' },
];

const MAX_RETRIES = 2;
const ATTEMPTS = 1 + MAX_RETRIES;
const echo: Behaviour = { reply: (request) => `re: ${lastUserContent(request)}` };
const json = { 'Content-Type': 'application/json' };

/** Requests the model received whose newest user message is `text` (the turn or ask of `text`). */
const requestsFor = (model: ModelServer, text: string) => model.requests.filter((request) => lastUserContent(request) === text);

async function createChat(t: TestApp, chatId: string): Promise<void> {
  const response = await fetch(t.url(`/api/chats/${chatId}`), { method: 'PUT', headers: json, body: '{}' });
  expect(response.status).toBe(201);
}

function postMessage(t: TestApp, chatId: string, message: string, query = ''): Promise<Response> {
  return fetch(t.url(`/api/chats/${chatId}${query}`), { method: 'POST', headers: json, body: JSON.stringify({ message }) });
}

function ask(t: TestApp, prompt: string): Promise<Response> {
  return fetch(t.url('/api/ask'), { method: 'POST', headers: json, body: JSON.stringify({ prompt }) });
}

function askStreaming(t: TestApp, prompt: string): Promise<Response> {
  return fetch(t.url('/api/ask'), { method: 'POST', headers: { ...json, Accept: 'text/event-stream' }, body: JSON.stringify({ prompt }) });
}

function parseEvents(text: string): { event: string; data: unknown }[] {
  return [...text.matchAll(/event: (\w+)\ndata: (.*)\n\n/g)].map((match) => ({ event: match[1] ?? '', data: parseJson(match[2] ?? '') }));
}

async function expectErrorResponse(response: Response, status: number, code: string): Promise<void> {
  const body = parseJson(await response.text());
  expect({ status: response.status, body }).toMatchObject({ status, body: { error: { code } } });
  expect(isErrorBody(body)).toBe(true);
  expect(response.headers.get('content-type')).toContain('application/json');
}

async function chatState(t: TestApp, chatId: string): Promise<ChatView> {
  const view = await readChat(t, chatId);
  if (view === undefined) throw new Error(`chat ${chatId} is gone`);
  return view;
}

const tally = { chatTurns: 0, chatReplies: 0, chatFailedTurns: 0, asks: 0, askAnswers: 0, askErrors: 0, modelRequests: 0 };

describe('model faults (MODEL_MAX_RETRIES=2)', () => {
  let t: TestApp;
  beforeAll(async () => {
    // The timeout must stay well above a healthy local answer on a busy CI machine, or a "once" case
    // would see an extra, timed-out attempt.
    t = await startTestApp({ MODEL_MAX_RETRIES: String(MAX_RETRIES), MODEL_TIMEOUT_MS: '1000', MODEL_RETRY_BASE_DELAY_MS: '5' });
    t.model.setDefault(echo);
  });
  afterAll(async () => {
    await t?.stop();
    printSummary('model faults, one by one (8 fault kinds x once/always; chat, ask, ask as SSE)', tally);
  });

  describe.each(FAULTS.map((fault, index) => ({ ...fault, index })))('$name', (fault) => {
    it('chat: a fault once is retried and the turn gets its reply', async () => {
      const chatId = `once-${fault.index}`;
      await createChat(t, chatId);
      t.model.enqueue(fault.behaviour);
      const text = `transient ${fault.name}`;
      const response = await postMessage(t, chatId, text);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe(`re: ${text}`);
      expect(requestsFor(t.model, text)).toHaveLength(2);
      const state = await chatState(t, chatId);
      expect(state.recentMessages.map((m) => [m.role, m.content, m.status ?? 'ok'])).toEqual([
        ['user', text, 'ok'],
        ['assistant', `re: ${text}`, 'ok'],
      ]);
      tally.chatTurns++;
      tally.chatReplies++;
      tally.modelRequests += 2;
    });

    it(`chat: a fault on all ${ATTEMPTS} attempts leaves a failed-turn record, keeps the message, and the chat goes on`, async () => {
      const chatId = `always-${fault.index}`;
      await createChat(t, chatId);
      t.model.enqueue(...Array.from({ length: ATTEMPTS }, () => fault.behaviour));
      const text = `persistent ${fault.name}`;
      const failed = await postMessage(t, chatId, text);
      // A waiting POST reports the failed turn: 504 for a timeout, 502 for everything else (DESIGN.md section 2).
      await expectErrorResponse(failed, fault.code === 'model_timeout' ? 504 : 502, fault.code === 'model_timeout' ? 'model_timeout' : 'model_failed');
      expect(requestsFor(t.model, text)).toHaveLength(ATTEMPTS);

      const next = `after ${fault.name}`;
      const ok = await postMessage(t, chatId, next);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toBe(`re: ${next}`);
      // The failed record is not sent to the model; the unanswered user message is.
      expect(requestsFor(t.model, next)[0]?.body.messages.map((m) => [m.role, m.content])).toEqual([
        ['system', 'You are a helpful assistant.'],
        ['user', text],
        ['user', next],
      ]);

      const state = await chatState(t, chatId);
      const turns = turnsOf(state);
      expect(turns.map((turn) => turn.user.content)).toEqual([text, next]);
      expect(turns[0]?.answer).toMatchObject({ role: 'assistant', status: 'failed', replyTo: turns[0]?.user.id });
      expect(turns[0]?.answer?.error).toMatch(new RegExp(`after ${ATTEMPTS} attempts`));
      expect(turns[1]?.answer).toMatchObject({ content: `re: ${next}` });
      expect(turns[1]?.answer?.status).toBeUndefined();
      tally.chatTurns += 2;
      tally.chatFailedTurns++;
      tally.chatReplies++;
      tally.modelRequests += ATTEMPTS + 1;
    });

    it('ask: a fault once is retried and answered', async () => {
      t.model.enqueue(fault.behaviour);
      const prompt = `ask transient ${fault.name}`;
      const response = await ask(t, prompt);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe(`re: ${prompt}`);
      expect(requestsFor(t.model, prompt)).toHaveLength(2);
      tally.asks++;
      tally.askAnswers++;
      tally.modelRequests += 2;
    });

    it('ask with Accept: text/event-stream: a fault once is retried before the first event', async () => {
      t.model.enqueue(fault.behaviour, { stream: ['A ', 'streamed ', 'answer'] });
      const prompt = `sse transient ${fault.name}`;
      const response = await askStreaming(t, prompt);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('text/event-stream');
      const events = parseEvents(await response.text());
      expect(events.filter((e) => e.event === 'delta').map((e) => (e.data as { text: string }).text).join('')).toBe('A streamed answer');
      expect(events.at(-1)?.event).toBe('done');
      expect(requestsFor(t.model, prompt)).toHaveLength(2);
      tally.asks++;
      tally.askAnswers++;
      tally.modelRequests += 2;
    });

    it(`ask with Accept: text/event-stream: a fault on all ${ATTEMPTS} attempts answers ${fault.askStatus} before any event`, async () => {
      t.model.enqueue(...Array.from({ length: ATTEMPTS }, () => fault.behaviour));
      const prompt = `sse persistent ${fault.name}`;
      await expectErrorResponse(await askStreaming(t, prompt), fault.askStatus, fault.code);
      expect(requestsFor(t.model, prompt)).toHaveLength(ATTEMPTS);
      tally.asks++;
      tally.askErrors++;
      tally.modelRequests += ATTEMPTS;
    });

    it(`ask: a fault on all ${ATTEMPTS} attempts answers ${fault.askStatus} ${fault.code}`, async () => {
      t.model.enqueue(...Array.from({ length: ATTEMPTS }, () => fault.behaviour));
      const prompt = `ask persistent ${fault.name}`;
      const response = await ask(t, prompt);
      await expectErrorResponse(response, fault.askStatus, fault.code);
      if (fault.askStatus === 429) expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(requestsFor(t.model, prompt)).toHaveLength(ATTEMPTS);
      tally.asks++;
      tally.askErrors++;
      tally.modelRequests += ATTEMPTS;
    });
  });
});

describe('model faults under load: many chats, sequential posts, random faults', () => {
  const CHATS = 12;
  const POSTS_PER_CHAT = 8;
  const SEED = 20_260_107;
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ MODEL_MAX_RETRIES: '2', MODEL_TIMEOUT_MS: '600', MODEL_RETRY_BASE_DELAY_MS: '5' });
    t.model.setDefault({ ...echo, latencyMs: 5 });
  });
  afterAll(() => t?.stop());

  it('loses, duplicates and reorders nothing; every turn has a reply or a failed-turn record', async () => {
    // The 429-with-Retry-After fault sleeps a second per attempt; it is covered above, so it is left out here.
    const faultsUnderLoad = FAULTS.filter((fault) => fault.behaviour !== FAULTS[0]?.behaviour);
    const script = fc.sample(
      fc.oneof({ arbitrary: fc.constant<Behaviour>({ ...echo, latencyMs: 10 }), weight: 3 }, { arbitrary: fc.constantFrom(...faultsUnderLoad.map((f) => f.behaviour)), weight: 2 }),
      { seed: SEED, numRuns: CHATS * POSTS_PER_CHAT * 2 },
    );
    t.model.enqueue(...script);
    const chatIds = Array.from({ length: CHATS }, (_, i) => `load-${i}`);
    await Promise.all(chatIds.map((chatId) => createChat(t, chatId)));

    const statuses: number[] = [];
    // Each chat's client posts its messages one after the other (each accepted before the next).
    await Promise.all(
      chatIds.map(async (chatId) => {
        for (let i = 0; i < POSTS_PER_CHAT; i++) {
          const response = await postMessage(t, chatId, `${chatId} message ${i}`, '?wait=0');
          statuses.push(response.status);
          await response.arrayBuffer();
        }
      }),
    );
    expect(statuses.filter((status) => status !== 202)).toEqual([]);

    const states = await Promise.all(
      chatIds.map((chatId) =>
        pollUntil(`chat ${chatId} to finish ${POSTS_PER_CHAT} turns`, async () => {
          const state = await chatState(t, chatId);
          return turnsOf(state).filter((turn) => turn.answer !== undefined).length >= POSTS_PER_CHAT ? state : undefined;
        }),
      ),
    );
    let replies = 0;
    let failedTurns = 0;
    for (const [index, state] of states.entries()) {
      const chatId = chatIds[index] ?? '';
      const expected = Array.from({ length: POSTS_PER_CHAT }, (_, i) => `${chatId} message ${i}`);
      const turns = turnsOf(state);
      expect(turns.map((turn) => turn.user.content)).toEqual(expected);
      expect(state.recentMessages).toHaveLength(2 * POSTS_PER_CHAT); // nothing but the turns: no stray or doubled entries
      for (const { user, answer } of turns) {
        if (answer?.status === 'failed') {
          failedTurns++;
          expect(answer.error).toMatch(/attempt/);
        } else {
          replies++;
          expect(answer?.content).toBe(`re: ${user.content}`);
        }
      }
    }
    expect(replies + failedTurns).toBe(CHATS * POSTS_PER_CHAT);
    const faultsInjected = script.filter((behaviour) => !('reply' in behaviour)).length;
    printSummary('model faults under load', {
      seed: SEED,
      chats: CHATS,
      posts: CHATS * POSTS_PER_CHAT,
      accepted: statuses.filter((status) => status === 202).length,
      modelRequests: t.model.requests.length,
      faultsScripted: faultsInjected,
      replies,
      failedTurns,
      lost: 0,
      duplicates: 0,
      reordered: 0,
    });
  }, 90_000);
});

describe('retry and timeout budgets are the settings', () => {
  const TIMEOUT_MS = 500;
  const BASE_DELAY_MS = 100;
  const MAX_DELAY_MS = 1_500;
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      MODEL_MAX_RETRIES: '4',
      MODEL_TIMEOUT_MS: String(TIMEOUT_MS),
      MODEL_RETRY_BASE_DELAY_MS: String(BASE_DELAY_MS),
      MODEL_RETRY_MAX_DELAY_MS: String(MAX_DELAY_MS),
    });
    t.model.setDefault(echo);
  });
  afterAll(() => t?.stop());

  /** Milliseconds between successive model requests for `text`. */
  const gapsFor = (text: string) => {
    const times = requestsFor(t.model, text).map((request) => request.receivedAt);
    return times.slice(1).map((time, i) => time - (times[i] ?? time));
  };

  it('MODEL_MAX_RETRIES=4: a turn makes exactly 5 model requests, with exponential backoff from MODEL_RETRY_BASE_DELAY_MS between them', async () => {
    await createChat(t, 'budget-retries');
    t.model.enqueue(...Array.from({ length: 5 }, () => ({ status: 500 })));
    const response = await postMessage(t, 'budget-retries', 'five attempts');
    await expectErrorResponse(response, 502, 'model_failed');
    expect(requestsFor(t.model, 'five attempts')).toHaveLength(5);
    // Backoff k (k = 0..3) is BASE * 2^k scaled by a jitter in [0.5, 1): at least half of it.
    const gaps = gapsFor('five attempts');
    gaps.forEach((gap, k) => expect(gap).toBeGreaterThanOrEqual((BASE_DELAY_MS * 2 ** k) / 2 - 5));
    expect(gaps.reduce((sum, gap) => sum + gap, 0)).toBeLessThan(BASE_DELAY_MS * (1 + 2 + 4 + 8) + 2_000);
  });

  it(`MODEL_TIMEOUT_MS=${TIMEOUT_MS}: each attempt at a model that never answers is abandoned after the timeout (504)`, async () => {
    t.model.enqueue(...Array.from({ length: 5 }, () => ({ hang: true }) as const));
    const started = Date.now();
    const response = await ask(t, 'never answered');
    const elapsed = Date.now() - started;
    await expectErrorResponse(response, 504, 'model_timeout');
    expect(requestsFor(t.model, 'never answered')).toHaveLength(5);
    for (const gap of gapsFor('never answered')) expect(gap).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
    // Five timeouts plus four backoffs (at most 100+200+400+800 ms), with slack for a busy machine.
    expect(elapsed).toBeLessThan(5 * TIMEOUT_MS + 1_500 + 3_000);
  });

  it("honours the model's Retry-After (1 s) instead of the backoff", async () => {
    t.model.enqueue({ status: 429, headers: { 'retry-after': '1' } });
    const response = await ask(t, 'after a second');
    expect(response.status).toBe(200);
    const [gap] = gapsFor('after a second');
    expect(gap).toBeGreaterThanOrEqual(990);
  });

  it('passes a Retry-After longer than MODEL_RETRY_MAX_DELAY_MS on as 429 at once; a chat turn records it as failed', async () => {
    t.model.enqueue({ status: 429, headers: { 'retry-after': '5' } });
    const started = Date.now();
    const response = await ask(t, 'come back later');
    await expectErrorResponse(response, 429, 'model_throttled');
    expect(response.headers.get('retry-after')).toBe('5');
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(requestsFor(t.model, 'come back later')).toHaveLength(1);

    await createChat(t, 'budget-throttled');
    t.model.enqueue({ status: 429, headers: { 'retry-after': '5' } });
    const posted = await postMessage(t, 'budget-throttled', 'throttled turn');
    await expectErrorResponse(posted, 502, 'model_failed');
    const [turn] = turnsOf(await chatState(t, 'budget-throttled'));
    expect(turn?.user.content).toBe('throttled turn');
    expect(turn?.answer).toMatchObject({ status: 'failed' });
    expect(turn?.answer?.error).toMatch(/429/);
  });
});

describe('MODEL_MAX_RETRIES=0', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ MODEL_MAX_RETRIES: '0', MODEL_TIMEOUT_MS: '600' });
    t.model.setDefault(echo);
  });
  afterAll(() => t?.stop());

  it('makes exactly one model request per turn and per ask', async () => {
    await createChat(t, 'no-retries');
    t.model.enqueue({ status: 503 });
    await expectErrorResponse(await postMessage(t, 'no-retries', 'single attempt'), 502, 'model_failed');
    expect(requestsFor(t.model, 'single attempt')).toHaveLength(1);
    t.model.enqueue({ reset: true });
    await expectErrorResponse(await ask(t, 'single ask'), 502, 'model_failed');
    expect(requestsFor(t.model, 'single ask')).toHaveLength(1);
  });
});

describe('a model that sends its headers, then stalls', () => {
  // The scripted server's `hang` never answers at all; a server (or proxy) can also answer 200 and
  // then stop sending the body. MODEL_TIMEOUT_MS must bound that attempt too.
  const TIMEOUT_MS = 400;
  let stalling: http.Server;
  const stalled = new Set<http.ServerResponse>();
  let t: TestApp;
  beforeAll(async () => {
    stalling = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': req.headers.accept === 'text/event-stream' ? 'text/event-stream' : 'application/json' });
        res.write(req.headers.accept === 'text/event-stream' ? ': still thinking\n\n' : '{"id":"chatcmpl-stall",');
        stalled.add(res);
      });
    });
    await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
    const { port } = stalling.address() as AddressInfo;
    t = await startTestApp({ OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1`, MODEL_MAX_RETRIES: '1', MODEL_TIMEOUT_MS: String(TIMEOUT_MS) });
  });
  afterAll(async () => {
    await t?.stop();
    for (const res of stalled) res.destroy();
    await new Promise((resolve) => stalling?.close(resolve));
  });

  it('ask gives up after the timeout on each attempt (504), for a plain and a streamed answer', async () => {
    for (const headers of [json, { ...json, Accept: 'text/event-stream' }]) {
      const started = Date.now();
      const response = await fetch(t.url('/api/ask'), { method: 'POST', headers, body: '{"prompt":"hello?"}', signal: AbortSignal.timeout(20_000) });
      await expectErrorResponse(response, 504, 'model_timeout');
      expect(Date.now() - started).toBeLessThan(2 * TIMEOUT_MS + 3_000);
    }
  });

  it('a chat turn ends in a failed-turn record instead of blocking the chat', async () => {
    await createChat(t, 'stalled');
    const posted = await fetch(t.url('/api/chats/stalled'), { method: 'POST', headers: json, body: '{"message":"hello?"}', signal: AbortSignal.timeout(20_000) });
    await expectErrorResponse(posted, 504, 'model_timeout');
    const [turn] = turnsOf(await chatState(t, 'stalled'));
    expect(turn?.answer).toMatchObject({ status: 'failed' });
  });
});

describe('default budgets', () => {
  it('are sensible, and the worst batch of turns fits host.json functionTimeout', () => {
    const { model } = loadConfig({});
    expect(model).toMatchObject({ timeoutMs: 60_000, maxRetries: 3, retryBaseDelayMs: 500, retryMaxDelayMs: 30_000 });
    const hostJson = JSON.parse(readFileSync(path.join(REPO_ROOT, 'host.json'), 'utf8')) as {
      functionTimeout: string;
      extensions: { durableTask: { maxEntityOperationBatchSize: number } };
    };
    const [hours, minutes, seconds] = hostJson.functionTimeout.split(':').map(Number) as [number, number, number];
    const functionTimeoutMs = ((hours * 60 + minutes) * 60 + seconds) * 1000;
    // Worst turn: every attempt times out and every wait is the longest one allowed.
    const worstTurnMs = (1 + model.maxRetries) * model.timeoutMs + model.maxRetries * model.retryMaxDelayMs;
    const worstBatchMs = worstTurnMs * hostJson.extensions.durableTask.maxEntityOperationBatchSize;
    expect(worstBatchMs).toBeLessThan(functionTimeoutMs);
  });
});
