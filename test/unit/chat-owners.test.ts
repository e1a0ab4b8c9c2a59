/**
 * Chats per owner: who the caller is (http/principal.ts), the keys that scope a chat to its owner
 * (chat/chatKey.ts), and the owner's chat list, its index entity (durable/chatIndex.ts) through the
 * SDK's own entity handler and its pages (chat/chatList.ts).
 */
import { HttpRequest, InvocationContext } from '@azure/functions';
import { Entity } from 'durable-functions/lib/src/entities/Entity';
import { describe, expect, it } from 'vitest';
import { chatKey, ownedChatStore, parseChatKey, type KeyedChatStore } from '../../src/chat/chatKey';
import { pageChats, type ChatListEntry } from '../../src/chat/chatList';
import { chatIndexEntity } from '../../src/durable/chatIndex';
import { AuthNotEnabledError, BadRequestError, UnauthenticatedError } from '../../src/errors';
import { chatOwner } from '../../src/http/principal';
import { principalHeaders } from '../support/principals';

const request = (headers: Record<string, string> = {}) => new HttpRequest({ url: 'http://localhost:7071/api/chats/c', method: 'GET', headers });
const appService = { mode: 'appservice' as const, platformAuth: false, inAzure: false };

describe('chatOwner', () => {
  it('is the shared namespace with function keys, whoever asks', () => {
    expect(chatOwner(request(principalHeaders('alice')), { ...appService, mode: 'keys' })).toBeUndefined();
  });

  it('is a stable hash of the identity provider and user id, different per user and per provider', () => {
    const alice = chatOwner(request(principalHeaders('alice')), appService);
    expect(alice).toMatch(/^u[0-9a-f]{32}$/);
    expect(chatOwner(request(principalHeaders('alice')), appService)).toBe(alice);
    expect(chatOwner(request(principalHeaders('bob')), appService)).not.toBe(alice);
    expect(chatOwner(request(principalHeaders('alice', 'github')), appService)).not.toBe(alice);
  });

  it('refuses a request without a user, or with a principal header missing its companions, with 401', () => {
    expect(() => chatOwner(request(), appService)).toThrow(UnauthenticatedError);
    const { 'x-ms-client-principal-id': _id, ...partial } = principalHeaders('alice');
    expect(() => chatOwner(request(partial), appService)).toThrow(UnauthenticatedError);
    expect(() => chatOwner(request({ 'x-ms-client-principal': 'not base64 json' }), appService)).toThrow(UnauthenticatedError);
  });

  it('trusts no principal header in Azure unless App Service Authentication is on (503 saying so)', () => {
    expect(() => chatOwner(request(principalHeaders('alice')), { ...appService, inAzure: true })).toThrow(AuthNotEnabledError);
    expect(chatOwner(request(principalHeaders('alice')), { ...appService, inAzure: true, platformAuth: true })).toMatch(/^u/);
  });
});

describe('chat keys', () => {
  it('scope a chat id to its owner, reversibly, and leave the shared namespace as it was', () => {
    expect(chatKey(undefined, 'abc')).toBe('abc');
    expect(chatKey('u12', 'abc')).toBe('u12:abc');
    expect(parseChatKey('u12:abc')).toEqual({ owner: 'u12', chatId: 'abc' });
    expect(parseChatKey('abc')).toEqual({ owner: undefined, chatId: 'abc' });
  });

  it('let an owner reach only their own chats and list', async () => {
    const reached: string[] = [];
    const store: KeyedChatStore = {
      read: async (key) => void reached.push(`read ${key}`),
      readPage: async (key, page) => void reached.push(`page ${key} ${page}`),
      signal: async (key, op) => void reached.push(`signal ${key} ${op.name}`),
      raiseTurnEvent: async (id) => void reached.push(`raise ${id}`),
      purgeDeleted: async (key) => void reached.push(`purge ${key}`),
      listChats: async (owner) => (reached.push(`list ${owner ?? '-'}`), []),
    };
    const owned = ownedChatStore(store, 'u12');
    await owned.read('c');
    await owned.readPage('c', 2);
    await owned.signal('c', { name: 'delete' });
    await owned.purgeDeleted('c');
    await owned.listChats();
    expect(reached).toEqual(['read u12:c', 'page u12:c 2', 'signal u12:c delete', 'purge u12:c', 'list u12']);
  });
});

describe('the chat list', () => {
  const entry = (id: string, lastUpdatedAt: string): ChatListEntry => ({ id, title: id, createdAt: lastUpdatedAt, lastUpdatedAt, messageCount: 1 });
  const chats = [entry('a', '2026-12-01T00:00:00.000Z'), entry('b', '2026-12-03T00:00:00.000Z'), entry('c', '2026-12-02T00:00:00.000Z'), entry('d', '2026-12-03T00:00:00.000Z')];

  it('pages newest activity first (ties by id), each page after the last one shown', () => {
    const first = pageChats(chats, 3, undefined);
    expect(first.chats.map((c) => c.id)).toEqual(['b', 'd', 'c']);
    const second = pageChats(chats, 3, first.continuationToken);
    expect(second).toEqual({ chats: [chats[0]] });
    // A chat used after the first page was read moves to the front: the next page neither repeats nor skips the rest.
    const moved = chats.map((c) => (c.id === 'c' ? entry('c', '2026-12-04T00:00:00.000Z') : c));
    expect(pageChats(moved, 3, first.continuationToken).chats.map((c) => c.id)).toEqual(['a']);
  });

  it('refuses a token it did not hand out', () => {
    expect(() => pageChats(chats, 3, 'forged')).toThrow(BadRequestError);
    expect(() => pageChats(chats, 3, Buffer.from('{"x":1}').toString('base64url'))).toThrow(BadRequestError);
  });

  it('is kept by the index entity: upsert replaces a chat’s summary, remove drops it, "__proto__" is just a chat id', async () => {
    const run = new Entity<unknown>(chatIndexEntity({ instances: () => ({ purgeWhenFinished: () => Promise.resolve(true) }) })).listen() as unknown as (trigger: unknown, context: InvocationContext) => Promise<{ entityExists: boolean; entityState?: string }>;
    const batch = (state: unknown, ops: { name: string; input: unknown }[]) =>
      run({ self: { name: 'chatindex', key: 'u12' }, exists: state !== undefined, state: state === undefined ? undefined : JSON.stringify(state), batch: ops.map((op) => ({ name: op.name, input: JSON.stringify(op.input), isSignal: true })) }, new InvocationContext());
    const summary = (title: string) => ({ title, createdAt: '2026-12-01T00:00:00.000Z', lastUpdatedAt: '2026-12-02T00:00:00.000Z', messageCount: 2 });
    const result = await batch(undefined, [
      { name: 'upsert', input: { chatId: '__proto__', summary: summary('one') } },
      { name: 'upsert', input: { chatId: 'x', summary: summary('two') } },
      { name: 'upsert', input: { chatId: '__proto__', summary: summary('three') } },
    ]);
    const state = JSON.parse(result.entityState ?? 'null') as { chats: { id: string; title: string }[] };
    expect(state.chats.map((c) => [c.id, c.title])).toEqual([
      ['x', 'two'],
      ['__proto__', 'three'],
    ]);
    expect(({} as Record<string, unknown>).title).toBeUndefined();
    const emptied = await batch(state, [
      { name: 'remove', input: { chatId: 'x' } },
      { name: 'remove', input: { chatId: '__proto__' } },
    ]);
    expect(emptied.entityExists).toBe(false);
  });

  it('purges an expired chat’s expiry orchestration once it has finished, trying again at later operations while it runs', async () => {
    const finished = new Set<string>();
    const purgeAttempts: string[] = [];
    const run = new Entity<unknown>(
      chatIndexEntity({
        instances: () => ({
          purgeWhenFinished: (id: string) => {
            purgeAttempts.push(id);
            return Promise.resolve(finished.has(id));
          },
        }),
      }),
    ).listen() as unknown as (trigger: unknown, context: InvocationContext) => Promise<{ entityExists: boolean; entityState?: string }>;
    const batch = (state: unknown, ops: { name: string; input: unknown }[]) =>
      run({ self: { name: 'chatindex', key: 'u12' }, exists: state !== undefined, state: state === undefined ? undefined : JSON.stringify(state), batch: ops.map((op) => ({ name: op.name, input: JSON.stringify(op.input), isSignal: true })) }, new InvocationContext());
    // The last chat was removed and the index deleted; the expiry orchestration's sweep arrives while it still runs.
    const waiting = await batch(undefined, [{ name: 'sweep', input: { instanceId: 'expiry~u12:a' } }]);
    const kept = JSON.parse(waiting.entityState ?? 'null') as unknown;
    expect(kept).toEqual({ schemaVersion: 1, chats: [], expiriesToPurge: ['expiry~u12:a'] });
    finished.add('expiry~u12:a');
    const summary = { title: 't', createdAt: '2026-12-01T00:00:00.000Z', lastUpdatedAt: '2026-12-02T00:00:00.000Z', messageCount: 1 };
    const next = await batch(kept, [{ name: 'upsert', input: { chatId: 'b', summary } }]);
    expect(JSON.parse(next.entityState ?? 'null')).toEqual({ schemaVersion: 1, chats: [{ id: 'b', ...summary }] });
    expect(purgeAttempts).toEqual(['expiry~u12:a', 'expiry~u12:a']);
    // Nothing left to keep: the index goes.
    expect((await batch(kept, [{ name: 'sweep', input: { instanceId: 'expiry~u12:a' } }])).entityExists).toBe(false);
  });
});
