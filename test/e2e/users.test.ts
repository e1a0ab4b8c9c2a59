/**
 * Per-user chats behind App Service Authentication (AUTH_MODE=appservice), on the runtime this process
 * drives: each signed-in user (the x-ms-client-principal headers Easy Auth sets) has their own chats,
 * the same chat id for two users is two chats, and one user can never reach another's chat on any
 * route (404, no hint it exists); a request without a user is 401; a user's chats list newest first,
 * in pages. The routes need no function key in this mode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { principalHeaders } from '../support/principals';
import { lastUserContent } from '../support/model-server';
import { pollUntil } from '../support/poll';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ AUTH_MODE: 'appservice', CHAT_TTL_DAYS: '0' });
  t.model.setDefault({ reply: (r) => `echo: ${lastUserContent(r)}` });
});
afterAll(() => t?.stop());

const alice = principalHeaders('alice');
const bob = principalHeaders('bob');
const json = { 'Content-Type': 'application/json' };

/** A request with no function key: this mode's routes are anonymous; the user is the principal. */
function call(user: Record<string, string> | undefined, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${t.host.url}${path}`, { method, headers: { ...json, ...(user ?? {}), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
}

interface ListPage {
  chats: { id: string; title: string; createdAt: string; lastUpdatedAt: string; messageCount: number }[];
  continuationToken?: string;
}

describe('chats per signed-in user', () => {
  it('keeps two users’ chats with the same id apart', async () => {
    expect((await call(alice, 'PUT', '/api/chats/same-id', { instructions: 'Alice’s chat.' })).status).toBe(201);
    expect((await call(bob, 'PUT', '/api/chats/same-id', { instructions: 'Bob’s chat.' })).status).toBe(201);
    expect(await (await call(alice, 'POST', '/api/chats/same-id?wait=60', { message: 'from alice' })).text()).toBe('echo: from alice');
    const bobs = (await (await call(bob, 'GET', '/api/chats/same-id')).json()) as { instructions: string; recentMessages: { content: string }[] };
    expect(bobs.instructions).toBe('Bob’s chat.');
    expect(bobs.recentMessages.map((m) => m.content)).toEqual(['Bob’s chat.']);
  });

  it('answers 404 on every route for another user’s chat, exactly as for one that does not exist, and changes nothing', async () => {
    expect((await call(alice, 'PUT', '/api/chats/alice-only', {})).status).toBe(201);
    t.model.enqueue({ toolCalls: [{ id: 'call_alice_rm', name: 'remove_todo', arguments: { id: 1 } }] });
    expect((await call(alice, 'POST', '/api/chats/alice-only?wait=0', { message: 'remove it' })).status).toBe(202);
    const routes: [string, string, unknown?, Record<string, string>?][] = [
      ['GET', '/api/chats/alice-only'],
      ['POST', '/api/chats/alice-only?wait=0', { message: 'intrusion' }],
      ['POST', '/api/chats/alice-only', { message: 'intrusion' }, { Accept: 'text/event-stream' }],
      ['POST', '/api/chats/alice-only/approvals/call_alice_rm', { approved: true }],
      ['POST', '/api/chats/alice-only/cancel'],
      ['GET', '/api/chats/alice-only/stream'],
      ['GET', '/api/chats/alice-only/messages'],
      ['DELETE', '/api/chats/alice-only'],
    ];
    for (const [method, path, body, headers] of routes) {
      const asBob = await call(bob, method, path, body, headers);
      const missing = await call(bob, method, path.replace('alice-only', 'nobodys-chat'), body, headers);
      const [seen, absent] = [await asBob.text(), await missing.text()];
      expect({ method, path, status: asBob.status, body: seen.replaceAll('alice-only', 'X') }).toEqual({ method, path, status: 404, body: absent.replaceAll('nobodys-chat', 'X') });
    }
    // Bob's AI SDK post to that id makes a chat of his own, and Alice's is as she left it.
    const ui = await call(bob, 'POST', '/api/chats', { id: 'alice-only', messages: [{ id: 'b1', role: 'user', parts: [{ type: 'text', text: 'mine now?' }] }], trigger: 'submit-message' });
    expect(ui.status).toBe(200);
    await ui.text();
    const hers = (await (await call(alice, 'GET', '/api/chats/alice-only')).json()) as { recentMessages: { content: string }[]; runningTurn?: { status: string } };
    expect(hers.recentMessages.map((m) => m.content)).toEqual(['remove it']);
    expect((await call(alice, 'POST', '/api/chats/alice-only/cancel')).status).toBe(200);
  });

  it('refuses a request without a signed-in user with 401 on every chat route', async () => {
    for (const [method, path] of [
      ['GET', '/api/chats'],
      ['PUT', '/api/chats/anon'],
      ['POST', '/api/chats/anon'],
      ['GET', '/api/chats/anon'],
      ['DELETE', '/api/chats/anon'],
      ['POST', '/api/chats/anon/cancel'],
      ['GET', '/api/chats/anon/stream'],
      ['POST', '/api/ask'],
    ] as const) {
      const response = await call(undefined, method, path, method === 'GET' || method === 'DELETE' ? undefined : { message: 'hi', prompt: 'hi' });
      expect({ method, path, status: response.status, body: await response.json() }).toMatchObject({ method, path, status: 401, body: { error: { code: 'unauthenticated' } } });
    }
  });

  it('lists a user’s own chats, newest activity first, in pages, with titles and sizes', async () => {
    const carol = principalHeaders('carol');
    for (const id of ['c1', 'c2', 'c3', 'c4', 'c5']) {
      expect((await call(carol, 'PUT', `/api/chats/${id}`, {})).status).toBe(201);
      expect((await call(carol, 'POST', `/api/chats/${id}?wait=60`, { message: `Plan for ${id}: ${'many words '.repeat(12)}` })).status).toBe(200);
    }
    // c2 is used again: it moves to the front.
    expect((await call(carol, 'POST', '/api/chats/c2?wait=60', { message: 'again' })).status).toBe(200);
    // The list follows its chats by signals, within moments.
    await pollUntil('the list to show every turn', async () => {
      const all = (await (await call(carol, 'GET', '/api/chats?limit=100')).json()) as ListPage;
      return all.chats.map((c) => `${c.id}:${c.messageCount}`).join() === 'c2:4,c5:2,c4:2,c3:2,c1:2' ? true : undefined;
    }, 30_000, 100);
    const seen: ListPage['chats'] = [];
    let token: string | undefined;
    const listed = async (): Promise<ListPage> => {
      const query = `/api/chats?limit=2${token === undefined ? '' : `&continuationToken=${encodeURIComponent(token)}`}`;
      const response = await call(carol, 'GET', query);
      expect(response.status).toBe(200);
      return (await response.json()) as ListPage;
    };
    let pages = 0;
    do {
      const page = await listed();
      pages++;
      seen.push(...page.chats);
      token = page.continuationToken;
    } while (token !== undefined);
    expect(pages).toBe(3);
    expect(seen.map((c) => c.id)).toEqual(['c2', 'c5', 'c4', 'c3', 'c1']);
    expect(seen.find((c) => c.id === 'c2')).toMatchObject({ messageCount: 4, title: expect.stringMatching(/^Plan for c2: many words/) });
    expect(seen.every((c) => c.title.length <= 80)).toBe(true);
    // Nobody else's chats, and a deleted chat leaves the list.
    expect((await call(carol, 'DELETE', '/api/chats/c3')).status).toBe(204);
    // The list follows its chats by signals, within moments.
    await pollUntil('the list to drop the deleted chat', async () => {
      const after = (await (await call(carol, 'GET', '/api/chats?limit=100')).json()) as ListPage;
      return after.chats.map((c) => c.id).join() === 'c2,c5,c4,c1' ? true : undefined;
    }, 30_000, 100);
    const bobs = (await (await call(bob, 'GET', '/api/chats')).json()) as ListPage;
    expect(bobs.chats.map((c) => c.id).sort()).toEqual(['alice-only', 'same-id']);
    expect((await call(carol, 'GET', '/api/chats?continuationToken=forged')).status).toBe(400);
    expect((await call(carol, 'GET', '/api/chats?limit=0')).status).toBe(400);
  });
});
