/**
 * The chat service (src/chat/service.ts) over in-memory ports, and the durable chat store's retry
 * policy (src/durable/chatEntityStore.ts) over a durable client that fails on demand; the HTTP
 * adapters (functions/chats.ts) over a service whose store is down.
 */
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { ChatService, DEFAULT_WAIT_POLICY, type ChatOperation, type ChatStore } from '../../src/chat/service';
import { confirmPage, cutPages, type HistoryPage } from '../../src/chat/history';
import { createOrUpdate, postMessage, type ChatState, type TurnModel } from '../../src/chat/state';
import { durableChatStore, isTransientDurableFailure, type DurableClient } from '../../src/durable/chatEntityStore';
import { ChatNotFoundError, ChatStoreUnavailableError, ModelFailedError, ModelNotConfiguredError, ModelTimeoutError } from '../../src/errors';
import { chatHandlers } from '../../src/functions/chats';
import { handleErrors } from '../../src/http/respond';
import { decodeStorable, encodeStorable } from '../../src/durable/storableJson';

/**
 * Chats in memory; signals are applied by `run()` (the entity's turn), as a queue would, with the
 * entity's paging (small pages, stored and confirmed at once).
 */
function memoryStore(model: TurnModel) {
  const chats = new Map<string, ChatState>();
  const pages = new Map<string, HistoryPage>();
  const queue: { chatId: string; operation: ChatOperation }[] = [];
  const signals: ChatOperation['name'][] = [];
  const limits = { pageBytes: 1_000, historyTokenBudget: 200, maxPagesPerOperation: 8 };
  const save = (chatId: string, next: ChatState) => {
    const cut = cutPages(next, limits);
    let state = cut.state;
    for (const page of cut.pages) {
      pages.set(`${chatId}~${page.page}`, page);
      state = confirmPage(state, page.page, limits.historyTokenBudget);
    }
    chats.set(chatId, state);
  };
  const store: ChatStore = {
    read: async (chatId) => chats.get(chatId),
    readPage: async (chatId, page) => pages.get(`${chatId}~${page}`),
    signal: async (chatId, operation) => {
      signals.push(operation.name);
      queue.push({ chatId, operation });
    },
  };
  async function run(): Promise<void> {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const { chatId, operation } = next;
      const state = chats.get(chatId);
      if (operation.name === 'create') save(chatId, createOrUpdate(state, operation.input, new Date()));
      else if (operation.name === 'delete') chats.delete(chatId);
      else if (state !== undefined) save(chatId, (await postMessage(state, operation.input, model, { historyTokenBudget: limits.historyTokenBudget, now: () => new Date() })).state);
    }
  }
  return { store, run, signals, chats, pages };
}

/** A service whose change hint runs the entity: each wait lets the queued operations happen. */
function serviceOver(memory: ReturnType<typeof memoryStore>, options: { modelConfigured?: boolean } = {}) {
  return new ChatService(
    {
      store: memory.store,
      changed: async () => {
        await memory.run();
        return true;
      },
      now: Date.now,
      requireModel: () => {
        if (options.modelConfigured === false) throw new ModelNotConfiguredError();
      },
      newMessageId: () => 'generated-id',
    },
    { ...DEFAULT_WAIT_POLICY, createWaitMs: 200, deleteWaitMs: 200 },
  );
}

const echo: TurnModel = async (prompt) => ({ text: `re: ${prompt.at(-1)?.content ?? ''}`, totalTokens: 3 });

describe('ChatService', () => {
  it('creates a chat (created once the entity shows it) and answers a post with its reply', async () => {
    const memory = memoryStore(echo);
    const service = serviceOver(memory);
    expect(await service.create('c', { instructions: 'Be brief.' })).toBe('created');
    expect(await service.post('c', 'hello', 'k1', 5_000)).toEqual({ status: 'replied', messageId: 'k1', reply: 're: hello' });
    // The instructions (a system message), the message and its reply.
    expect((await service.view('c', undefined)).totalMessages).toBe(3);
  });

  it('answers pending without waiting when the wait is 0, with a generated id and a time before the signal', async () => {
    const memory = memoryStore(echo);
    const service = serviceOver(memory);
    await service.create('c', {});
    const before = Date.now();
    const outcome = await service.post('c', 'hello', undefined, 0);
    expect(outcome).toMatchObject({ status: 'pending', messageId: 'generated-id' });
    expect(Date.parse(outcome.status === 'pending' ? outcome.acceptedAt : '')).toBeLessThan(before + 1);
    expect(memory.signals).toEqual(['create', 'post']);
  });

  it.each([
    [new ModelTimeoutError('late'), ModelTimeoutError],
    [new ModelFailedError('down'), ModelFailedError],
  ])('throws a failed turn as the model error it recorded (%s)', async (failure, errorClass) => {
    const memory = memoryStore(async () => {
      throw failure;
    });
    const service = serviceOver(memory);
    await service.create('c', {});
    await expect(service.post('c', 'hello', 'k', 5_000)).rejects.toBeInstanceOf(errorClass);
    // The failed-turn record stays in the chat either way.
    expect(memory.chats.get('c')?.recent.map((m) => m.status)).toEqual([undefined, 'failed']);
  });

  it('refuses a post to an unknown chat, or without a model, before storing anything', async () => {
    const memory = memoryStore(echo);
    await expect(serviceOver(memory).post('nope', 'hi', 'k', 1_000)).rejects.toBeInstanceOf(ChatNotFoundError);
    await serviceOver(memory).create('c', {});
    await expect(serviceOver(memory, { modelConfigured: false }).post('c', 'hi', 'k', 1_000)).rejects.toBeInstanceOf(ModelNotConfiguredError);
    expect(memory.signals).toEqual(['create']);
  });

  it('reads a history that grew over many pages complete and in order, and since a timestamp from the pages it needs', async () => {
    const memory = memoryStore(echo);
    const service = serviceOver(memory);
    await service.create('c', { instructions: 'Be brief.' });
    for (let i = 0; i < 40; i++) expect(await service.post('c', `message ${i} ${'words and more words '.repeat(5)}`, `m${i}`, 5_000)).toMatchObject({ status: 'replied' });
    const chat = memory.chats.get('c') as ChatState;
    expect(chat.pageCount).toBeGreaterThan(5);
    const view = await service.view('c', undefined);
    expect(view.totalMessages).toBe(81);
    expect(view.recentMessages.map((m) => m.id)).toEqual(['s-0001', ...Array.from({ length: 40 }, (_, i) => [`m${i}`, `m${i}.reply`]).flat()]);
    const since = view.recentMessages[10]?.createdAt as string;
    expect((await service.view('c', Date.parse(since))).recentMessages).toEqual(view.recentMessages.slice(11));
    // A retried post of a message whose reply is paged out answers with that reply.
    expect(chat.recent.some((m) => m.id === 'm0.reply')).toBe(false);
    expect(await service.post('c', 'ignored', 'm0', 5_000)).toEqual({ status: 'replied', messageId: 'm0', reply: view.recentMessages[2]?.content });
  });

  it('answers a retry of a stored message from its first read, without signalling again', async () => {
    const memory = memoryStore(echo);
    const service = serviceOver(memory);
    await service.create('c', {});
    expect(await service.post('c', 'hello', 'k', 5_000)).toMatchObject({ status: 'replied', reply: 're: hello' });
    const signals = memory.signals.length;
    expect(await service.post('c', 'hello', 'k', 5_000)).toEqual({ status: 'replied', messageId: 'k', reply: 're: hello' });
    expect(memory.signals).toHaveLength(signals);
  });

  it('reads the chat twice for a post whose entity hints its change: the existence check and the reply', async () => {
    const memory = memoryStore(echo);
    let reads = 0;
    const counted = { ...memory, store: { ...memory.store, read: (chatId: string) => (reads++, memory.store.read(chatId)) } };
    const service = serviceOver(counted);
    await service.create('c', {});
    reads = 0;
    await service.post('c', 'hello', 'k2', 5_000);
    expect(reads).toBe(2);
  });

  it('deletes a chat, and then it is not found', async () => {
    const memory = memoryStore(echo);
    const service = serviceOver(memory);
    await service.create('c', {});
    expect(await service.delete('c')).toBe('deleted');
    await expect(service.view('c', undefined)).rejects.toBeInstanceOf(ChatNotFoundError);
  });
});

/** A durable client whose reads and signals fail with the given errors first, then succeed. */
function flakyClient(failures: unknown[]) {
  const calls = { read: 0, signal: 0 };
  const next = () => {
    const failure = failures.shift();
    if (failure !== undefined) throw failure;
  };
  const client = {
    readEntityState: async () => {
      calls.read++;
      next();
      return { entityExists: true, entityState: createOrUpdate(undefined, {}, new Date()) };
    },
    signalEntity: async () => {
      calls.signal++;
      next();
    },
  } as unknown as DurableClient;
  return { client, calls };
}

const status = (code: number) => new Error(`The operation failed with an unexpected status code: ${code}. Details: "DurableTaskStorageException"`);
const connection = (code: string) => Object.assign(new Error(`connect ${code}`), { code });
const noPause = async () => {};

describe('durableChatStore', () => {
  it('retries 5xx answers and broken connections, then returns the result', async () => {
    const { client, calls } = flakyClient([status(500), connection('ECONNRESET'), status(503)]);
    const store = durableChatStore(client, { attempts: 5, firstDelayMs: 1, retryAfterSeconds: 2 }, noPause);
    expect(await store.read('c')).toBeDefined();
    expect(calls.read).toBe(4);
  });

  it('gives up after the attempts with a 503 that says when to retry and keeps the cause', async () => {
    const last = status(500);
    const { client, calls } = flakyClient([status(500), status(500), last]);
    const store = durableChatStore(client, { attempts: 3, firstDelayMs: 1, retryAfterSeconds: 2 }, noPause);
    const failure = await store.signal('c', { name: 'delete' }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ChatStoreUnavailableError);
    expect(failure).toMatchObject({ status: 503, code: 'store_unavailable', headers: { 'Retry-After': '2' }, cause: last });
    expect(calls.signal).toBe(3);
  });

  it('does not retry what is not transient (a 4xx is a bug, not weather)', async () => {
    const { client, calls } = flakyClient([status(400)]);
    await expect(durableChatStore(client, undefined, noPause).read('c')).rejects.toThrow(/400/);
    expect(calls.read).toBe(1);
    expect([status(429), status(502), connection('ECONNREFUSED')].map(isTransientDurableFailure)).toEqual([true, true, true]);
    expect([status(404), new TypeError('x'), 'text'].map(isTransientDurableFailure)).toEqual([false, false, false]);
  });
});

describe('chat handlers', () => {
  it('answer 503 with Retry-After and the error JSON when the chat store keeps failing, on every route', async () => {
    const down: ChatStore = {
      read: async () => {
        throw new ChatStoreUnavailableError('The chat store did not answer.', 2);
      },
      readPage: async () => {
        throw new ChatStoreUnavailableError('The chat store did not answer.', 2);
      },
      signal: async () => {
        throw new ChatStoreUnavailableError('The chat store did not answer.', 2);
      },
    };
    const service = () => new ChatService({ store: down, changed: async () => false, now: Date.now, requireModel: () => {}, newMessageId: () => 'id' });
    const handlers = chatHandlers(service);
    const url = 'http://localhost:7071/api/chats/c';
    const requests: [keyof typeof handlers, string, string | undefined][] = [
      ['create', 'PUT', '{}'],
      ['post', 'POST', '{"message":"hi"}'],
      ['get', 'GET', undefined],
      ['delete', 'DELETE', undefined],
    ];
    for (const [name, method, body] of requests) {
      const request = new HttpRequest({ url, method, params: { chatId: 'c' }, body: body === undefined ? undefined : { string: body } });
      const response = (await handleErrors(handlers[name])(request, new InvocationContext())) as HttpResponseInit;
      expect({ name, status: response.status, headers: response.headers, body: response.jsonBody }).toMatchObject({
        name,
        status: 503,
        headers: { 'Retry-After': '2' },
        body: { error: { code: 'store_unavailable' } },
      });
    }
  });
});

describe('values crossing the durable storage', () => {
  it('carry U+FFFE/U+FFFF (which queue messages cannot) and lone surrogates (which UTF-8 cannot) escaped, restored exactly', () => {
    for (const message of ['a\uffffb\ufffec', 'lone \ud800 high', 'lone low \udfff', 'both \uffff \udc00', 'literal \\ud800 and \\uffff text']) {
      const input = { messageId: 'm', message };
      const travelled = JSON.stringify(encodeStorable(input));
      // What the other side parses out of it holds no U+FFFE/U+FFFF and no lone surrogate.
      const strings = Object.values(JSON.parse(travelled) as Record<string, unknown>).filter((v): v is string => typeof v === 'string');
      for (const text of strings) expect(text).not.toMatch(/[\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
      expect(decodeStorable(JSON.parse(travelled))).toEqual(input);
    }
  });

  it('leave every other value as it is', () => {
    const plain = { messageId: 'm', message: 'hello \u0000 💬 \u202e' };
    expect(encodeStorable(plain)).toBe(plain);
    expect(decodeStorable(plain)).toBe(plain);
    expect(encodeStorable(undefined)).toBeUndefined();
  });
});
