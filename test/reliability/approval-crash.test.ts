/**
 * Approvals across a kill -9 of the runtime (the local host, or the Functions host with its Node
 * worker). A turn that waits for approval is kept in its orchestration's history and the chat's
 * state: after a restart the approval still shows and still works. A kill right after an approval
 * was answered does not apply the tool's effect twice or lose the decision: the turn records one
 * removal, the list keeps the other task, and the approval is not asked for again.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { lastMessage } from '../support/model-server';
import { pollUntil } from '../support/poll';
import { readStoredEntity } from '../support/stored';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ MODEL_TIMEOUT_MS: '20000' });
  t.model.setDefault({ reply: (r) => (lastMessage(r)?.role === 'tool' ? 'Done with the list.' : 'No tools needed.') });
});
afterAll(() => t?.stop());

const json = { 'Content-Type': 'application/json' };

interface Message {
  id: string;
  role: string;
  content: string;
  status?: string;
  toolCallId?: string;
  approval?: { approved: boolean; by: string };
}
interface View {
  recentMessages: Message[];
  runningTurn?: { messageId: string; status: string; pendingApprovals?: { toolCallId: string }[] };
}

async function view(chatId: string): Promise<View | undefined> {
  const response = await fetch(t.url(`/api/chats/${chatId}`)).catch(() => undefined);
  return response?.status === 200 ? ((await response.json()) as View) : undefined;
}

/** A chat with two todos whose turn of `messageId` waits for approval of removing todo 1 (call `toolCallId`). */
async function waitingForApproval(chatId: string, messageId: string, toolCallId: string): Promise<void> {
  expect((await fetch(t.url(`/api/chats/${chatId}`), { method: 'PUT', headers: json, body: '{}' })).status).toBe(201);
  // One after the other, so the ids are known (parallel calls reach the list in either order).
  t.model.enqueue({ toolCalls: [{ id: `${toolCallId}-a1`, name: 'add_todo', arguments: { task: 'renew the passport' } }] }, { toolCalls: [{ id: `${toolCallId}-a2`, name: 'add_todo', arguments: { task: 'book the flight' } }] });
  const added = await fetch(t.url(`/api/chats/${chatId}?wait=60`), { method: 'POST', headers: { ...json, 'Idempotency-Key': `${messageId}-0` }, body: JSON.stringify({ message: 'two things to do' }) });
  expect(added.status).toBe(200);
  t.model.enqueue({ toolCalls: [{ id: toolCallId, name: 'remove_todo', arguments: { id: 1 } }] });
  const posted = await fetch(t.url(`/api/chats/${chatId}?wait=0`), { method: 'POST', headers: { ...json, 'Idempotency-Key': messageId }, body: JSON.stringify({ message: 'the passport is done' }) });
  expect(posted.status).toBe(202);
  await pollUntil('the turn to wait for approval', async () => ((await view(chatId))?.runningTurn?.status === 'waiting_for_approval' ? true : undefined), 60_000);
}

async function answered(chatId: string, messageId: string): Promise<Message[]> {
  const chat = await pollUntil(
    'the turn to finish',
    async () => {
      const v = await view(chatId);
      return v?.recentMessages.some((m) => m.id === `${messageId}.reply`) === true ? v : undefined;
    },
    120_000,
    250,
  );
  return chat.recentMessages;
}

async function todos(chatId: string): Promise<string[]> {
  return (await readStoredEntity<{ items: { task: string }[] }>(t, 'todolist', chatId))?.state.items.map((i) => i.task) ?? [];
}

function approve(chatId: string, toolCallId: string): Promise<Response> {
  return fetch(t.url(`/api/chats/${chatId}/approvals/${toolCallId}`), { method: 'POST', headers: json, body: '{"approved":true}' });
}

it('keeps a turn waiting for approval across a kill -9: the approval still shows and still works, and the tool runs once', { timeout: 300_000 }, async () => {
  await waitingForApproval('approve-kill', 'ak-1', 'call_ak_rm');
  await t.restartHost({ kill: true });

  const after = await pollUntil('the chat after the restart', () => view('approve-kill'), 120_000, 250);
  expect(after.runningTurn).toMatchObject({ messageId: 'ak-1', status: 'waiting_for_approval', pendingApprovals: [{ toolCallId: 'call_ak_rm' }] });
  const response = await approve('approve-kill', 'call_ak_rm');
  expect([200, 202]).toContain(response.status);

  const messages = await answered('approve-kill', 'ak-1');
  const step = messages.find((m) => m.toolCallId === 'call_ak_rm');
  expect(step).toMatchObject({ role: 'tool', approval: { approved: true, by: 'user' } });
  expect(step?.status).toBeUndefined();
  expect(JSON.parse(step?.content ?? '{}')).toMatchObject({ removed: { id: 1, task: 'renew the passport' } });
  expect(await todos('approve-kill')).toEqual(['book the flight']);
});

it('never runs an approved tool twice when the runtime is killed right after the approval', { timeout: 300_000 }, async () => {
  await waitingForApproval('approve-then-kill', 'atk-1', 'call_atk_rm');
  const response = await approve('approve-then-kill', 'call_atk_rm');
  expect(response.status).toBe(200);
  await t.restartHost({ kill: true });

  const messages = await answered('approve-then-kill', 'atk-1');
  const steps = messages.filter((m) => m.toolCallId === 'call_atk_rm');
  expect(steps).toHaveLength(1);
  expect(steps[0]?.status).toBeUndefined();
  expect(JSON.parse(steps[0]?.content ?? '{}')).toMatchObject({ removed: { id: 1, task: 'renew the passport' } });
  expect(await todos('approve-then-kill')).toEqual(['book the flight']);
  expect(messages.find((m) => m.id === 'atk-1.reply')?.content).toBe('Done with the list.');
});
