/**
 * A chat grown past many history pages on the runtime under test: every message reads back in
 * order (all, and since timestamps that fall in pages or in the chat's recent messages), the stored
 * entity states stay bounded, and DELETE removes every page. Small pages (CHAT_HISTORY_PAGE_BYTES)
 * make "many pages" a few dozen turns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { lastUserContent } from '../support/model-server';
import { pollUntil } from '../support/poll';
import { readStoredEntity } from '../support/stored';

interface ChatView {
  totalMessages: number;
  recentMessages: { id: string; role: string; content: string; createdAt: string }[];
}
interface StoredChat {
  schemaVersion: number;
  pageCount: number;
  recent: unknown[];
}

const PAGE_BYTES = 2048;
const BUDGET = 300;
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ CHAT_HISTORY_PAGE_BYTES: String(PAGE_BYTES), CHAT_HISTORY_TOKEN_BUDGET: String(BUDGET) });
  t.model.setDefault({ reply: (r) => `re: ${lastUserContent(r)}` });
});
afterAll(() => t?.stop());

const json = { 'Content-Type': 'application/json' };
const chatUrl = (id: string, query = '') => t.url(`/api/chats/${id}${query}`);
const get = async (id: string, query = '') => {
  const response = await fetch(chatUrl(id, query));
  expect(response.status).toBe(200);
  return (await response.json()) as ChatView;
};
const storedEntity = <T>(name: string, key: string) => readStoredEntity<T>(t, name, key);

const message = (i: number) => `message ${i}: ${'the quick brown fox jumps over the lazy dog '.repeat(6)}`;

describe('a chat past many history pages', () => {
  const chatId = 'paged-chat';
  const turns = 45;

  it('reads back complete and in order, with bounded entity states', { timeout: 120_000 }, async () => {
    expect((await fetch(chatUrl(chatId), { method: 'PUT', headers: json, body: JSON.stringify({ instructions: 'Be brief.' }) })).status).toBe(201);
    // Most turns waited for, some sent back to back without waiting (queued in the entity).
    for (let i = 0; i < turns; i++) {
      const pipelined = i % 5 === 4;
      const response = await fetch(chatUrl(chatId, pipelined ? '?wait=0' : ''), { method: 'POST', headers: { ...json, 'Idempotency-Key': `k${i}` }, body: JSON.stringify({ message: message(i) }) });
      expect(response.status).toBe(pipelined ? 202 : 200);
      await response.arrayBuffer();
    }
    const expectedIds = ['s-0001', ...Array.from({ length: turns }, (_, i) => [`k${i}`, `k${i}.reply`]).flat()];
    const full = await pollUntil('every turn to be stored', async () => {
      const view = await get(chatId);
      return view.totalMessages === expectedIds.length ? view : undefined;
    }, 60_000, 50);
    expect(full.recentMessages.map((m) => m.id)).toEqual(expectedIds);
    expect(full.recentMessages.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(Array.from({ length: turns }, (_, i) => message(i)));
    const times = full.recentMessages.map((m) => Date.parse(m.createdAt));
    expect(times.every((time, i) => i === 0 || time > (times[i - 1] as number))).toBe(true);

    // Since a timestamp: from the first pages, the middle, and the newest messages.
    for (const index of [0, 7, 40, expectedIds.length - 4, expectedIds.length - 1]) {
      const since = full.recentMessages[index]?.createdAt as string;
      expect((await get(chatId, `?timestampUTC=${encodeURIComponent(since)}`)).recentMessages).toEqual(full.recentMessages.slice(index + 1));
    }

    const chat = await storedEntity<StoredChat>('chat', chatId);
    expect(chat?.state.schemaVersion).toBe(3);
    const pageCount = chat?.state.pageCount ?? 0;
    expect(pageCount).toBeGreaterThanOrEqual(8);
    const fullBytes = Buffer.byteLength(JSON.stringify(full.recentMessages));
    // The chat holds its window and at most about two pages of messages, whatever the history's size.
    expect(chat?.bytes).toBeLessThan(3 * PAGE_BYTES + BUDGET * 5);
    expect(chat?.bytes).toBeLessThan(fullBytes / 3);
    for (let n = 0; n < pageCount; n++) {
      const page = await pollUntil(`page ${n} to be stored`, () => storedEntity<{ messages: unknown[] }>('chatHistoryPage', `${chatId}~${n}`), 30_000, 50);
      expect(page.state.messages.length).toBeGreaterThan(0);
      expect(page.bytes).toBeLessThan(PAGE_BYTES + 1024);
    }
  });

  it('deletes every page with the chat', async () => {
    const pageCount = (await storedEntity<StoredChat>('chat', chatId))?.state.pageCount ?? 0;
    expect(pageCount).toBeGreaterThan(0);
    const deleted = await fetch(chatUrl(chatId), { method: 'DELETE' });
    expect([202, 204]).toContain(deleted.status);
    expect((await fetch(chatUrl(chatId))).status).toBe(404);
    for (let n = 0; n < pageCount; n++) {
      await pollUntil(`page ${n} to be deleted`, async () => ((await storedEntity('chatHistoryPage', `${chatId}~${n}`)) === undefined ? true : undefined), 30_000, 50);
    }
  });
});
