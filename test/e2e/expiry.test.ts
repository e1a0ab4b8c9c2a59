/**
 * Expiry of idle chats on the runtime this process drives, with a short CHAT_TTL_DAYS: a chat idle
 * longer than that is deleted with what it owns (its entity, history pages, todo list, turn
 * orchestrations, streamed-turn records, and in the end the expiry orchestration itself) and leaves
 * its owner's list; a chat used again before it is
 * due is not deleted then, and expires once idle long enough.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { lastMessage, lastUserContent } from '../support/model-server';
import { pollUntil } from '../support/poll';
import { countStreamRecords, listTaskHubRows } from '../support/stored';

const TTL_SECONDS = 10;
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ CHAT_TTL_DAYS: String(TTL_SECONDS / 86_400) });
  t.model.setDefault({ reply: (r) => (lastMessage(r)?.role === 'tool' ? 'Added.' : `echo: ${lastUserContent(r)}`) });
});
afterAll(() => t?.stop());

const json = { 'Content-Type': 'application/json' };
const exists = async (chatId: string): Promise<boolean> => (await fetch(t.url(`/api/chats/${chatId}`))).status === 200;
const listed = async (): Promise<string[]> => ((await (await fetch(t.url('/api/chats?limit=100'))).json()) as { chats: { id: string }[] }).chats.map((c) => c.id);
const rowsOf = async (chatId: string): Promise<string[]> => (await listTaskHubRows(t)).filter((row) => new RegExp(`(@${chatId}(~|\\s|$)|turn~${chatId}~|expiry~${chatId}(\\s|$))`).test(row));

it(`deletes a chat idle for CHAT_TTL_DAYS (${TTL_SECONDS} s here) with everything it owns, and not one used since`, { timeout: 180_000 }, async () => {
  for (const id of ['idle', 'busy']) expect((await fetch(t.url(`/api/chats/${id}`), { method: 'PUT', headers: json, body: '{}' })).status).toBe(201);
  // The idle chat gets a todo (a tool round) and a streamed turn, so it owns a todo list and stream records.
  t.model.enqueue({ toolCalls: [{ id: 'call_exp_add', name: 'add_todo', arguments: { task: 'expire' } }] });
  expect((await fetch(t.url('/api/chats/idle?wait=60'), { method: 'POST', headers: json, body: JSON.stringify({ message: 'remember this' }) })).status).toBe(200);
  const streamed = await fetch(t.url('/api/chats/idle'), { method: 'POST', headers: { ...json, Accept: 'text/event-stream' }, body: JSON.stringify({ message: 'stream this' }) });
  await streamed.text();
  expect(await countStreamRecords(t, 'idle')).toBeGreaterThan(0);
  expect(await rowsOf('idle')).not.toEqual([]);
  const start = Date.now();

  // The busy chat is used every few seconds until the idle one is gone.
  let posts = 0;
  const gone = await pollUntil(
    'the idle chat to expire',
    async () => {
      if (Date.now() - start > (posts + 1) * 3_000) {
        posts++;
        expect((await fetch(t.url('/api/chats/busy?wait=60'), { method: 'POST', headers: json, body: JSON.stringify({ message: `still here ${posts}` }) })).status).toBe(200);
      }
      return (await exists('idle')) ? undefined : Date.now() - start;
    },
    120_000,
    250,
  );
  expect(gone).toBeGreaterThanOrEqual(TTL_SECONDS * 1000 - 1_000);
  expect(await exists('busy')).toBe(true);
  // The list follows its chats by signals, within moments.
  await pollUntil('the list to drop the expired chat', async () => ((await listed()).join() === 'busy' ? true : undefined), 30_000, 100);
  // What it owned is gone: entity, pages, todo list, turns, and the orchestration that expired it.
  await pollUntil('the idle chat’s rows to go', async () => ((await rowsOf('idle')).length === 0 ? true : undefined), 30_000, 250);
  expect(await countStreamRecords(t, 'idle')).toBe(0);

  // Left alone, the busy chat expires too.
  await pollUntil('the busy chat to expire once idle', async () => ((await exists('busy')) ? undefined : true), 120_000, 250);
  await pollUntil('the list to be empty', async () => ((await listed()).length === 0 ? true : undefined), 30_000, 100);
  await pollUntil('the busy chat’s rows to go', async () => ((await rowsOf('busy')).length === 0 ? true : undefined), 30_000, 250);
});
