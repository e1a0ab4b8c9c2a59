/**
 * A person in the loop, on the runtime this process drives: a tool that needs approval (`remove_todo`)
 * pauses its turn until POST /api/chats/{id}/approvals/{toolCallId} answers it or TOOL_APPROVAL_TIMEOUT
 * passes; POST /api/chats/{id}/cancel stops the running turn at its next step, keeping partial text,
 * whether it waits for an approval or streams from the model. Messages posted meanwhile stay queued
 * and are answered next.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { lastMessage, lastUserContent, type RecordedRequest } from '../support/model-server';
import { pollUntil } from '../support/poll';
import { sseEvents, type SseEvent } from '../support/sse';
import { listTaskHubRows, readStoredEntity } from '../support/stored';

// Long enough for a test to answer in time on a busy runtime, short enough to wait out once.
const APPROVAL_TIMEOUT_SECONDS = 10;
const json = { 'Content-Type': 'application/json' };

interface Message {
  id: string;
  role: string;
  content: string;
  replyTo?: string;
  status?: string;
  toolCalls?: { id: string; name: string; arguments: string }[];
  toolCallId?: string;
  approval?: { approved: boolean; by: string; reason?: string };
}
interface PendingApproval {
  toolCallId: string;
  name: string;
  arguments: string;
  requestedAt: string;
  expiresAt: string;
}
interface View {
  recentMessages: Message[];
  pendingMessages: { id: string }[];
  runningTurn?: { messageId: string; status: string; pendingApprovals?: PendingApproval[] };
}

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ TOOL_APPROVAL_TIMEOUT: `${APPROVAL_TIMEOUT_SECONDS}s`, MODEL_TIMEOUT_MS: '20000' });
  t.model.setDefault({ reply: (r) => (lastMessage(r)?.role === 'tool' ? `after tools: ${lastMessage(r)?.content ?? ''}` : `echo: ${lastUserContent(r)}`) });
});
afterAll(() => t?.stop());

async function put(chatId: string): Promise<void> {
  expect((await fetch(t.url(`/api/chats/${chatId}`), { method: 'PUT', headers: json, body: '{}' })).status).toBe(201);
}
function post(chatId: string, message: string, messageId: string, wait = 60): Promise<Response> {
  return fetch(t.url(`/api/chats/${chatId}?wait=${wait}`), { method: 'POST', headers: { ...json, 'Idempotency-Key': messageId }, body: JSON.stringify({ message }) });
}
async function view(chatId: string): Promise<View> {
  const response = await fetch(t.url(`/api/chats/${chatId}`));
  expect(response.status).toBe(200);
  return (await response.json()) as View;
}
function answer(chatId: string, toolCallId: string, body: unknown): Promise<Response> {
  return fetch(t.url(`/api/chats/${chatId}/approvals/${toolCallId}`), { method: 'POST', headers: json, body: JSON.stringify(body) });
}
function cancel(chatId: string, body?: unknown): Promise<Response> {
  return fetch(t.url(`/api/chats/${chatId}/cancel`), { method: 'POST', headers: json, body: body === undefined ? undefined : JSON.stringify(body) });
}
const turnOf = (v: View, messageId: string) => v.recentMessages.filter((m) => m.id === messageId || m.replyTo === messageId);
const requestsFor = (text: string): RecordedRequest[] => t.model.requests.filter((r) => r.body.messages.some((m) => m.role === 'user' && m.content === text));

/** A chat with one todo ('buy bread', id 1), whose turn of `messageId` waits for approval of `remove_todo` call `toolCallId`. */
async function waitingForApproval(chatId: string, messageId: string, toolCallId: string): Promise<PendingApproval> {
  await put(chatId);
  t.model.enqueue({ toolCalls: [{ id: `${toolCallId}-add`, name: 'add_todo', arguments: { task: 'buy bread' } }] });
  expect((await post(chatId, 'remember to buy bread', `${messageId}-0`)).status).toBe(200);
  t.model.enqueue({ toolCalls: [{ id: toolCallId, name: 'remove_todo', arguments: { id: 1 } }], reply: 'Removing it.' });
  expect((await post(chatId, 'I bought the bread', messageId, 0)).status).toBe(202);
  const waiting = await pollUntil('the turn to wait for approval', async () => {
    const v = await view(chatId);
    return v.runningTurn?.status === 'waiting_for_approval' ? v.runningTurn : undefined;
  });
  expect(waiting.messageId).toBe(messageId);
  expect(waiting.pendingApprovals).toHaveLength(1);
  return waiting.pendingApprovals?.[0] as PendingApproval;
}

async function replyOf(chatId: string, messageId: string): Promise<Message[]> {
  return pollUntil(`the reply to ${messageId}`, async () => {
    const turn = turnOf(await view(chatId), messageId);
    return turn.some((m) => m.id === `${messageId}.reply`) ? turn : undefined;
  }, 60_000);
}

/**
 * Resolves once the task hub holds no rows of the turn of `messageId`: its orchestration completed
 * (a timer left pending would keep it running) and was purged, which happens as its chat's next turn runs.
 */
async function turnPurged(chatId: string, messageId: string): Promise<void> {
  await pollUntil(`the turn of ${messageId} to be purged`, async () => ((await listTaskHubRows(t)).some((row) => row.includes(`turn~${chatId}~${messageId}`)) ? undefined : true), 30_000, 250);
}

async function todos(chatId: string): Promise<string[]> {
  return (await readStoredEntity<{ items: { task: string }[] }>(t, 'todolist', chatId))?.state.items.map((i) => i.task) ?? [];
}

describe('approvals', () => {
  it('pauses a turn before remove_todo runs, shows it waiting, queues later posts, and runs the tool once approved', async () => {
    const pending = await waitingForApproval('ap-yes', 'ay-1', 'call_ay_rm');
    expect(pending).toEqual({ toolCallId: 'call_ay_rm', name: 'remove_todo', arguments: '{"id":1}', requestedAt: expect.any(String), expiresAt: expect.any(String) });
    expect(Date.parse(pending.expiresAt) - Date.parse(pending.requestedAt)).toBe(APPROVAL_TIMEOUT_SECONDS * 1000);
    // Nothing ran yet, and the model was called once for this turn.
    expect(await todos('ap-yes')).toEqual(['buy bread']);
    expect(requestsFor('I bought the bread')).toHaveLength(1);
    // A message posted meanwhile is accepted and queued.
    expect((await post('ap-yes', 'and now?', 'ay-2', 0)).status).toBe(202);
    expect((await view('ap-yes')).pendingMessages.map((m) => m.id)).toEqual(['ay-2']);

    const approved = await answer('ap-yes', 'call_ay_rm', { approved: true });
    expect(approved.status).toBe(200);
    expect(await approved.json()).toEqual({ chatId: 'ap-yes', toolCallId: 'call_ay_rm', approved: true });

    const turn = await replyOf('ap-yes', 'ay-1');
    expect(turn.map((m) => [m.id, m.role, m.status])).toEqual([
      ['ay-1', 'user', undefined],
      ['ay-1.reply.1', 'assistant', undefined],
      ['ay-1.reply.1.1', 'tool', undefined],
      ['ay-1.reply', 'assistant', undefined],
    ]);
    expect(turn[2]?.approval).toEqual({ approved: true, by: 'user' });
    expect(JSON.parse(turn[2]?.content ?? '{}')).toMatchObject({ removed: { id: 1, task: 'buy bread' } });
    expect(await todos('ap-yes')).toEqual([]);
    // The queued message is answered after it.
    const next = await replyOf('ap-yes', 'ay-2');
    expect(next.at(-1)?.content).toBe('echo: and now?');
    await turnPurged('ap-yes', 'ay-1');

    // Answering again, whichever way, is refused and changes nothing.
    const again = await answer('ap-yes', 'call_ay_rm', { approved: false });
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({ error: { code: 'approval_settled' }, decision: { approved: true, by: 'user' } });
  });

  it('tells the model a denied call was denied, with the reason, and records it in the history', async () => {
    await waitingForApproval('ap-no', 'an-1', 'call_an_rm');
    const denied = await answer('ap-no', 'call_an_rm', { approved: false, reason: 'I still need bread' });
    expect(denied.status).toBe(200);
    expect(await denied.json()).toEqual({ chatId: 'ap-no', toolCallId: 'call_an_rm', approved: false, reason: 'I still need bread' });

    const turn = await replyOf('ap-no', 'an-1');
    const step = turn.find((m) => m.toolCallId === 'call_an_rm');
    expect(step).toMatchObject({ role: 'tool', status: 'denied', approval: { approved: false, by: 'user', reason: 'I still need bread' } });
    expect(JSON.parse(step?.content ?? '{}')).toEqual({ error: 'The user denied this tool call; it did not run.', reason: 'I still need bread' });
    // The model was told, in the call's result.
    const told = t.model.requests.map(lastMessage).find((m) => m?.role === 'tool' && m.tool_call_id === 'call_an_rm');
    expect(JSON.parse(told?.content ?? '{}')).toEqual({ error: 'The user denied this tool call; it did not run.', reason: 'I still need bread' });
    expect(await todos('ap-no')).toEqual(['buy bread']);
  });

  it(`counts a call nobody answers within TOOL_APPROVAL_TIMEOUT (${APPROVAL_TIMEOUT_SECONDS}s here) as denied`, async () => {
    await waitingForApproval('ap-late', 'al-1', 'call_al_rm');
    const turn = await replyOf('ap-late', 'al-1');
    expect(turn.find((m) => m.toolCallId === 'call_al_rm')).toMatchObject({ status: 'denied', approval: { approved: false, by: 'timeout' } });
    expect(await todos('ap-late')).toEqual(['buy bread']);
    const tooLate = await answer('ap-late', 'call_al_rm', { approved: true });
    expect(tooLate.status).toBe(409);
    expect(await tooLate.json()).toMatchObject({ error: { code: 'approval_settled', message: expect.stringMatching(/expired/) }, decision: { approved: false, by: 'timeout' } });
  });

  it('answers 404 for an unknown call, another chat’s call or an unknown chat, 400 for a bad answer, and changes nothing', async () => {
    await waitingForApproval('ap-who', 'aw-1', 'call_aw_rm');
    await put('ap-other');
    for (const [chatId, toolCallId, status, code] of [
      ['ap-who', 'call_nobody', 404, 'approval_not_found'],
      ['ap-other', 'call_aw_rm', 404, 'approval_not_found'],
      ['ap-nowhere', 'call_aw_rm', 404, 'chat_not_found'],
    ] as const) {
      const response = await answer(chatId, toolCallId, { approved: true });
      expect({ chatId, status: response.status, body: await response.json() }).toMatchObject({ chatId, status, body: { error: { code } } });
    }
    for (const body of [{}, { approved: 'yes' }, { approved: true, reason: 7 }]) {
      const response = await answer('ap-who', 'call_aw_rm', body);
      expect({ body, status: response.status }).toEqual({ body, status: 400 });
    }
    expect((await view('ap-who')).runningTurn?.pendingApprovals?.map((a) => a.toolCallId)).toEqual(['call_aw_rm']);
    expect((await answer('ap-who', 'call_aw_rm', { approved: false })).status).toBe(200);
    await replyOf('ap-who', 'aw-1');
  });
});

describe('cancel', () => {
  it('stops a turn streaming from the model: the stream ends with a cancelled event and the history keeps the partial text', async () => {
    await put('cx-stream');
    const words = Array.from({ length: 200 }, (_, i) => `word${i} `);
    t.model.enqueue({ stream: words, chunkDelayMs: 100 });
    const response = await fetch(t.url('/api/chats/cx-stream'), { method: 'POST', headers: { ...json, Accept: 'text/event-stream', 'Idempotency-Key': 'cs-1' }, body: JSON.stringify({ message: 'talk for a long time' }) });
    expect(response.status).toBe(200);
    const events: SseEvent[] = [];
    let cancelled: Promise<Response> | undefined;
    for await (const e of sseEvents(response)) {
      events.push(e);
      if (cancelled === undefined && events.filter((x) => x.event === 'delta').length >= 3) cancelled = cancel('cx-stream');
    }
    const outcome = await (cancelled as Promise<Response>);
    expect(outcome.status).toBe(200);
    expect(await outcome.json()).toEqual({ chatId: 'cx-stream', messageId: 'cs-1', status: 'cancelled' });
    const last = events.at(-1);
    expect(last?.event).toBe('cancelled');
    expect(last?.data).toMatchObject({ id: 'cs-1.reply', replyTo: 'cs-1' });
    const streamed = events.filter((e) => e.event === 'delta').map((e) => (e.data as { text: string }).text).join('');

    const reply = (await view('cx-stream')).recentMessages.find((m) => m.id === 'cs-1.reply');
    expect(reply).toMatchObject({ role: 'assistant', status: 'cancelled' });
    expect(reply?.content.startsWith('word0 word1 word2 ')).toBe(true);
    expect(streamed.startsWith(reply?.content ?? '-')).toBe(true);
    expect(reply?.content.length).toBeLessThan(words.join('').length);
    // Its post, retried, says the turn was cancelled.
    expect((await post('cx-stream', 'talk for a long time', 'cs-1')).status).toBe(409);
  });

  it('stops a turn waiting for approval without running the call, and the queued message is answered next', async () => {
    await waitingForApproval('cx-wait', 'cw-1', 'call_cw_rm');
    expect((await post('cx-wait', 'what is left?', 'cw-2', 0)).status).toBe(202);
    const stopped = await cancel('cx-wait', { messageId: 'cw-1' });
    expect(stopped.status).toBe(200);
    expect(await stopped.json()).toEqual({ chatId: 'cx-wait', messageId: 'cw-1', status: 'cancelled' });

    const turn = turnOf(await view('cx-wait'), 'cw-1');
    expect(turn.map((m) => [m.id, m.status])).toEqual([
      ['cw-1', undefined],
      ['cw-1.reply.1', undefined],
      ['cw-1.reply.1.1', 'failed'],
      ['cw-1.reply', 'cancelled'],
    ]);
    expect(turn[2]?.approval).toEqual({ approved: false, by: 'cancel' });
    expect(turn[3]?.content).toBe('');
    expect(await todos('cx-wait')).toEqual(['buy bread']);
    // The approval is settled: answering it now is refused.
    expect((await answer('cx-wait', 'call_cw_rm', { approved: true })).status).toBe(409);

    const next = await replyOf('cx-wait', 'cw-2');
    expect(next.at(-1)?.content).toBe('echo: what is left?');
    await turnPurged('cx-wait', 'cw-1');
    // The cancelled reply is not part of later prompts; the tool steps are.
    const prompt = requestsFor('what is left?')[0]?.body.messages ?? [];
    expect(prompt.some((m) => m.role === 'tool' && m.tool_call_id === 'call_cw_rm')).toBe(true);
    expect(prompt.filter((m) => m.role === 'assistant' && m.content === '')).toEqual([]);

    // Nothing runs now: 409 with a clear body; a finished turn is 409 too.
    const idle = await cancel('cx-wait');
    expect(idle.status).toBe(409);
    expect(await idle.json()).toMatchObject({ error: { code: 'no_running_turn', message: expect.stringMatching(/No turn/) } });
    const finished = await cancel('cx-wait', { messageId: 'cw-2' });
    expect(await finished.json()).toMatchObject({ error: { code: 'turn_finished' } });
    expect((await cancel('cx-nowhere')).status).toBe(404);
  });
});
