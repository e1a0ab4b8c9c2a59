/**
 * Chats end to end: the compiled app on the runtime under test over real HTTP, Azurite for storage,
 * and the scripted model server reached through OPENAI_BASE_URL.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { countMessageTokens, REPLY_PRIMING_TOKENS } from '../../src/chat/tokens';
import { startTestApp, type TestApp } from '../support/app';
import { pollUntil } from '../support/poll';
import { lastUserContent } from '../support/model-server';

interface ChatView {
  id: string;
  exists: boolean;
  instructions: string;
  createdAt: string;
  lastUpdatedAt: string;
  totalMessages: number;
  totalTokens: number;
  recentMessages: { id: string; role: string; content: string; createdAt: string; replyTo?: string; status?: string; error?: string }[];
}

const BUDGET = 400;
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ CHAT_HISTORY_TOKEN_BUDGET: String(BUDGET) });
});
afterAll(() => t?.stop());
beforeEach(() => {
  t.model.setDefault({ reply: (r) => `re: ${lastUserContent(r)}` });
});

const json = { 'Content-Type': 'application/json' };
const put = (id: string, body: unknown = {}) => fetch(t.url(`/api/chats/${id}`), { method: 'PUT', headers: json, body: JSON.stringify(body) });
const post = (id: string, message: string, query = '', headers: Record<string, string> = {}) =>
  fetch(t.url(`/api/chats/${id}${query}`), { method: 'POST', headers: { ...json, ...headers }, body: JSON.stringify({ message }) });
const get = async (id: string, query = '') => {
  const response = await fetch(t.url(`/api/chats/${id}${query}`));
  return { status: response.status, body: (await response.json()) as ChatView };
};
/** Polls the chat until `done` holds. */
const until = (id: string, done: (state: ChatView) => boolean, timeoutMs = 30_000) =>
  pollUntil(`chat ${id} to reach the condition`, async () => {
    const { status, body } = await get(id);
    return status === 200 && done(body) ? body : undefined;
  }, timeoutMs, 20);
const requestsFor = (marker: string) => t.model.requests.filter((r) => r.body.messages.some((m) => m.content?.includes(marker)));

describe('chats', () => {
  it("runs the seed's flow: create, two posts answered inline, state since a timestamp", async () => {
    const created = await put('seed-flow', { instructions: 'You are a helpful chatbot.' });
    expect(created.status).toBe(201);
    expect(await created.json()).toEqual({ chatId: 'seed-flow' });
    expect(created.headers.get('location')).toBe(`${t.host.url}/api/chats/seed-flow`);

    const first = await post('seed-flow', 'Hello, how can I assist you today?');
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toContain('text/plain');
    expect(await first.text()).toBe('re: Hello, how can I assist you today?');
    const second = await post('seed-flow', 'Need help with directions from Redmond to SeaTac?', '', { 'content-type': 'text/json' });
    expect(await second.text()).toBe('re: Need help with directions from Redmond to SeaTac?');

    const { status, body } = await get('seed-flow', '?timestampUTC=2024-01-15T22:00:00');
    expect(status).toBe(200);
    // The instructions given at create are the first message, a system one (as in the seed's extension).
    expect(body).toMatchObject({ id: 'seed-flow', exists: true, instructions: 'You are a helpful chatbot.', totalMessages: 5 });
    expect(body.totalTokens).toBeGreaterThan(0);
    expect(body.recentMessages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant']);
    for (const m of body.recentMessages) expect(m.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  it('carries the first two turns in the third prompt', async () => {
    await put('three-turns', { instructions: 'Be brief.' });
    for (const m of ['alpha-1', 'alpha-2', 'alpha-3']) expect((await post('three-turns', m)).status).toBe(200);
    const third = requestsFor('alpha-3')[0];
    expect(third?.body.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'alpha-1' },
      { role: 'assistant', content: 're: alpha-1' },
      { role: 'user', content: 'alpha-2' },
      { role: 'assistant', content: 're: alpha-2' },
      { role: 'user', content: 'alpha-3' },
    ]);
  });

  it('answers 202 with Location and Retry-After when not waiting, and the Location polls to the reply', async () => {
    await put('polling');
    t.model.enqueue({ reply: 'slow answer', latencyMs: 300 });
    const accepted = await post('polling', 'take your time', '?wait=0');
    expect(accepted.status).toBe(202);
    const body = (await accepted.json()) as { chatId: string; messageId: string; status: string };
    expect(body).toMatchObject({ chatId: 'polling', status: 'pending' });
    expect(accepted.headers.get('retry-after')).toBe('1');
    const location = accepted.headers.get('location') ?? '';
    expect(location).toMatch(/\/api\/chats\/polling\?timestampUTC=/);

    let messages: ChatView['recentMessages'] = [];
    const deadline = Date.now() + 10_000;
    while (!messages.some((m) => m.replyTo === body.messageId) && Date.now() < deadline) {
      const polled = (await (await fetch(t.withKey(location))).json()) as ChatView;
      messages = polled.recentMessages;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'take your time'],
      ['assistant', 'slow answer'],
    ]);
    const later = await get('polling', `?timestampUTC=${encodeURIComponent(messages[1]!.createdAt)}`);
    expect(later.body.recentMessages).toEqual([]);
    expect(later.body.totalMessages).toBe(2);
  });

  it('stores a message posted twice with one Idempotency-Key once, and answers both with the same reply', async () => {
    await put('idempotent');
    const headers = { 'Idempotency-Key': 'same-key-1' };
    const [a, b] = await Promise.all([post('idempotent', 'only once', '', headers), post('idempotent', 'only once', '', headers)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(await a.text()).toBe(await b.text());
    const retried = await post('idempotent', 'only once', '', headers);
    expect(await retried.text()).toBe('re: only once');
    const state = (await get('idempotent')).body;
    expect(state.recentMessages.map((m) => m.id)).toEqual(['same-key-1', 'same-key-1.reply']);
    expect(requestsFor('only once')).toHaveLength(1);
  });

  it('takes 50 concurrent posts to one chat: each stored once, in one order, each reply made after the previous turn', async () => {
    await put('busy');
    const texts = Array.from({ length: 50 }, (_, i) => `busy-${i}`);
    const responses = await Promise.all(texts.map((m) => post('busy', m, '?wait=0')));
    expect(responses.every((r) => r.status === 202)).toBe(true);
    const state = await until('busy', (s) => s.totalMessages >= 100);
    expect(state.totalMessages).toBe(100);
    const users = state.recentMessages.filter((m) => m.role === 'user');
    expect(new Set(users.map((m) => m.content))).toEqual(new Set(texts));
    // strictly alternating user/assistant, each reply answering the message right before it
    state.recentMessages.forEach((m, i) => {
      if (i % 2 === 1) expect(m).toMatchObject({ role: 'assistant', replyTo: state.recentMessages[i - 1]!.id, content: `re: ${state.recentMessages[i - 1]!.content}` });
    });
    // the model saw the turns in the stored order, each prompt ending with the turns before it
    const prompts = requestsFor('busy-').map((r) => r.body.messages);
    expect(prompts.map((p) => p.at(-1)?.content)).toEqual(users.map((m) => m.content));
    prompts.forEach((p, k) => {
      if (k > 0) expect(p.at(-2)).toEqual({ role: 'assistant', content: `re: ${users[k - 1]!.content}` });
    });
  });

  it('runs 100 chats in parallel, each with its own history', async () => {
    const ids = Array.from({ length: 100 }, (_, i) => `many-${i}`);
    // 201 once the chat exists, 202 while its creation is still queued (the contract); a client then
    // polls the Location before posting, as these do.
    const created = await Promise.all(ids.map((id) => put(id)));
    expect(created.map((r) => r.status).filter((s) => s !== 201 && s !== 202)).toEqual([]);
    await Promise.all(ids.map((id) => until(id, () => true)));
    const replies = await Promise.all(ids.map(async (id) => (await post(id, `hello from ${id}`)).text()));
    expect(replies).toEqual(ids.map((id) => `re: hello from ${id}`));
    const states = await Promise.all(ids.map((id) => get(id)));
    for (const [i, s] of states.entries()) expect(s.body.recentMessages.map((m) => m.content)).toEqual([`hello from ${ids[i]}`, `re: hello from ${ids[i]}`]);
  });

  it('retries a throttled model call and answers', async () => {
    await put('throttled');
    t.model.enqueue({ status: 429, headers: { 'retry-after': '0' } }, { reply: 'after the throttle' });
    const response = await post('throttled', 'please');
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('after the throttle');
  });

  it('records a failed turn when the model is down, answers 502, and keeps working afterwards', async () => {
    await put('model-down');
    t.model.setDefault({ status: 503 });
    const failed = await post('model-down', 'anyone there?');
    expect(failed.status).toBe(502);
    expect(((await failed.json()) as { error: { code: string } }).error.code).toBe('model_failed');
    t.model.setDefault({ reply: (r) => `re: ${lastUserContent(r)}` });
    const ok = await post('model-down', 'back now?');
    expect(await ok.text()).toBe('re: back now?');
    const { body } = await get('model-down');
    expect(body.recentMessages.map((m) => [m.role, m.content, m.status ?? 'ok'])).toEqual([
      ['user', 'anyone there?', 'ok'],
      ['assistant', '', 'failed'],
      ['user', 'back now?', 'ok'],
      ['assistant', 're: back now?', 'ok'],
    ]);
    expect(body.recentMessages[1]?.error).toMatch(/503/);
  });

  it('answers 504 when the model keeps timing out', async () => {
    await put('model-slow');
    t.model.setDefault({ hang: true });
    const response = await post('model-slow', 'hello?');
    t.model.setDefault({ reply: 'ok' });
    expect(response.status).toBe(504);
  });

  it('updates instructions on a second PUT and keeps the history', async () => {
    await put('reinstruct', { instructions: 'first' });
    await post('reinstruct', 'keep me');
    expect((await put('reinstruct', { instructions: 'second' })).status).toBe(201);
    const { body } = await get('reinstruct');
    expect(body.instructions).toBe('second');
    expect(body.recentMessages.map((m) => [m.role, m.content])).toEqual([
      ['system', 'first'],
      ['user', 'keep me'],
      ['assistant', 're: keep me'],
      ['system', 'second'],
    ]);
  });

  it('deletes a chat: 204, then 404 for GET, POST and DELETE', async () => {
    await put('doomed');
    await post('doomed', 'bye');
    expect((await fetch(t.url('/api/chats/doomed'), { method: 'DELETE' })).status).toBe(204);
    const gone = await get('doomed');
    expect(gone.status).toBe(404);
    expect(gone.body).toMatchObject({ id: 'doomed', exists: false, error: { code: 'chat_not_found' } });
    expect((await post('doomed', 'hello?')).status).toBe(404);
    expect((await fetch(t.url('/api/chats/doomed'), { method: 'DELETE' })).status).toBe(404);
  });

  it.each([
    ['a bad chatId', () => fetch(t.url('/api/chats/a@b'), { method: 'PUT', headers: json, body: '{}' }), 400, 'invalid_chat_id'],
    ['a bad timestamp', () => fetch(t.url('/api/chats/seed-flow?timestampUTC=yesterday')), 400, 'invalid_timestamp'],
    ['a bad body', () => fetch(t.url('/api/chats/seed-flow'), { method: 'POST', headers: json, body: '{"message": 1}' }), 400, 'invalid_field'],
    ['a bad wait', () => fetch(t.url('/api/chats/seed-flow?wait=soon'), { method: 'POST', headers: json, body: '{"message": "x"}' }), 400, 'invalid_query'],
    ['an unknown chat', () => fetch(t.url('/api/chats/never-made')), 404, 'chat_not_found'],
    ['a post to an unknown chat', () => post('never-made', 'hi'), 404, 'chat_not_found'],
  ])('answers %s with a JSON error', async (_name, send, status, code) => {
    const response = await send();
    expect(response.status).toBe(status);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe(code);
  });

  it('keeps every prompt of a 500-turn chat within the token budget', async () => {
    await put('long-chat', { instructions: 'Answer in one line.' });
    const texts = Array.from({ length: 500 }, (_, i) => `long-chat message ${i}: tell me something about the number ${i}`);
    for (let i = 0; i < texts.length; i += 50) {
      await Promise.all(texts.slice(i, i + 50).map((m, k) => post('long-chat', m, '?wait=0', { 'Idempotency-Key': `lc-${i + k}` })));
    }
    // 500 turns one after another: each an orchestration, about 0.25 s apiece on the Functions host here.
    const state = await until('long-chat', (s) => s.totalMessages >= 1001, 300_000);
    expect(state.totalMessages).toBe(1001); // the instructions, then 500 turns
    const prompts = requestsFor('long-chat message').map((r) => r.body.messages);
    expect(prompts).toHaveLength(500);
    const sizes = prompts.map((p) => p.reduce((sum, m) => sum + countMessageTokens(m.content ?? ''), REPLY_PRIMING_TOKENS));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(BUDGET);
    expect(prompts.at(-1)!.length).toBeGreaterThan(5); // the window holds real history, not just the last message
  }, 420_000);
});
