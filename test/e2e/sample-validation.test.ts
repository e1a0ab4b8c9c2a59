/**
 * The Azure Functions OpenAI extension's own end-to-end check of its chat sample
 * (tests/SampleValidation/Chat.cs in Azure/azure-functions-openai-extension), written as our test:
 * a client built for the seed's API must work unchanged. It creates a chat with instructions, polls
 * with a .NET round-trip timestamp (7 fractional digits) until the instructions show up as the first,
 * `system` message, then posts with `?message=` and no body, and counts the messages.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { lastUserContent } from '../support/model-server';
import { pollUntil } from '../support/poll';

interface ChatState {
  id: string;
  exists: boolean;
  totalMessages: number;
  totalTokens: number;
  recentMessages: { role: string; content: string }[];
}

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  t.model.setDefault({ reply: (request) => `An answer to: ${lastUserContent(request)}`, usage: { prompt: 20, completion: 8 } });
});
afterAll(() => t?.stop());

/** DateTime.UtcNow.ToString("o"): 7 fractional digits and a Z. */
const dotNetNow = () => new Date().toISOString().replace(/\.(\d{3})Z$/, '.$10000Z');

async function stateSince(chatId: string, timestampUTC: string): Promise<ChatState> {
  const response = await fetch(t.url(`/api/chats/${chatId}?timestampUTC=${encodeURIComponent(timestampUTC)}`));
  expect(response.status).toBe(200);
  return (await response.json()) as ChatState;
}

it("runs the extension's chat sample validation: instructions as the first system message, ?message= posts, message counts", async () => {
  const chatId = `sample-validation-${Date.now()}`;
  const instructions = 'You are a helpful chatbot. In all your English responses, speak as if you are Shakespeare.';
  const start = dotNetNow();

  const created = await fetch(t.url(`/api/chats/${chatId}`), { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ instructions }) });
  expect(created.status).toBe(201);
  expect(created.headers.get('content-type')).toMatch(/^application\/json/);
  expect(await created.json()).toEqual({ chatId });

  // The client waits until the chat holds exactly its instructions.
  const first = await pollUntil('the instructions as the first message', async () => {
    const state = await stateSince(chatId, start);
    return state.totalMessages === 1 ? state : undefined;
  });
  expect(first).toMatchObject({ id: chatId, exists: true, totalMessages: 1 });
  expect(first.recentMessages).toEqual([expect.objectContaining({ role: 'system', content: instructions })]);

  let expected = 1;
  for (const question of ['Who won the SuperBowl in 2014?', 'Who performed the halftime show?']) {
    const before = dotNetNow();
    const posted = await fetch(t.url(`/api/chats/${chatId}?message=${encodeURIComponent(question)}`), { method: 'POST' });
    expect(posted.status).toBe(200);
    expect(posted.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await posted.text()).toBe(`An answer to: ${question}`);
    expected += 2;

    const state = await stateSince(chatId, before);
    expect(state.totalMessages).toBe(expected);
    expect(state.recentMessages.length).toBeLessThanOrEqual(2);
    expect(state.recentMessages.map((m) => [m.role, m.content])).toEqual([
      ['user', question],
      ['assistant', `An answer to: ${question}`],
    ]);
    expect(state.totalTokens).toBeGreaterThan(0);
  }
  // Only the current instructions go to the model, as the system prompt; the history follows.
  expect(t.model.requests.at(-1)?.body.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
  expect(t.model.requests.at(-1)?.body.messages[0]?.content).toBe(instructions);
});

it('answers ask with ?prompt= and no body, and takes the body over the query when both have it', async () => {
  const fromQuery = await fetch(t.url(`/api/ask?prompt=${encodeURIComponent('Tell me a joke')}`), { method: 'POST' });
  expect([fromQuery.status, await fromQuery.text()]).toEqual([200, 'An answer to: Tell me a joke']);
  const both = await fetch(t.url('/api/ask?prompt=from-query'), { method: 'POST', body: JSON.stringify({ prompt: 'from-body' }) });
  expect(await both.text()).toBe('An answer to: from-body');
  const neither = await fetch(t.url('/api/ask'), { method: 'POST' });
  expect(neither.status).toBe(400);
  expect(((await neither.json()) as { error: { code: string } }).error.code).toBe('invalid_field');
});

it('shows a change of instructions as a new system message where it happened, so a polling client sees it', async () => {
  const chatId = `instructions-change-${Date.now()}`;
  expect((await fetch(t.url(`/api/chats/${chatId}`), { method: 'PUT', body: '{}' })).status).toBe(201);
  const empty = await stateSince(chatId, '2000-01-01T00:00:00');
  expect(empty.totalMessages).toBe(0); // no instructions given: no system message
  await fetch(t.url(`/api/chats/${chatId}?message=hello`), { method: 'POST' });
  const before = dotNetNow();
  expect((await fetch(t.url(`/api/chats/${chatId}`), { method: 'PUT', body: JSON.stringify({ instructions: 'Be terse.' }) })).status).toBe(201);
  const changed = await stateSince(chatId, before);
  expect(changed.totalMessages).toBe(3);
  expect(changed.recentMessages.map((m) => [m.role, m.content])).toEqual([['system', 'Be terse.']]);
});

it("answers the seed's own test.http requests, sent unchanged", async () => {
  // The seed's test.http, request by request: its PUT sends name/description (ignored: no instructions).
  const json = { 'content-type': 'application/json' };
  const ask = await fetch(t.url('/api/ask'), { method: 'POST', headers: json, body: JSON.stringify({ prompt: 'Tell me two most popular programming features of Azure Functions' }) });
  expect([ask.status, ask.headers.get('content-type')]).toEqual([200, 'text/plain; charset=utf-8']);
  expect((await fetch(t.url('/api/whois/Turing'))).status).toBe(200);
  const created = await fetch(t.url('/api/chats/abc123'), { method: 'PUT', headers: json, body: JSON.stringify({ name: 'Sample ChatBot', description: 'This is a sample chatbot.' }) });
  expect(created.status).toBe(201);
  for (const message of ['Hello, how can I assist you today?', 'Need help with directions from Redmond to SeaTac?']) {
    const posted = await fetch(t.url('/api/chats/abc123'), { method: 'POST', headers: json, body: JSON.stringify({ message }) });
    expect([posted.status, await posted.text()]).toEqual([200, `An answer to: ${message}`]);
  }
  const state = await fetch(t.url('/api/chats/abc123?timestampUTC=2024-01-15T22:00:00'), { headers: json });
  expect(state.status).toBe(200);
  expect(((await state.json()) as ChatState).totalMessages).toBe(4);
});
