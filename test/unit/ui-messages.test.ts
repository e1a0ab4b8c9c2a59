/**
 * The AI SDK wire shapes (chat/uiMessageStream.ts, chat/uiMessages.ts), read back with the SDK's own
 * readUIMessageStream and validateUIMessages, so the shapes are the SDK's and not our idea of them.
 */
import { readUIMessageStream, validateUIMessages, type UIMessage, type UIMessageChunk } from 'ai';
import { describe, expect, it } from 'vitest';
import type { TurnEvent } from '../../src/chat/turnStream';
import { toUIMessageStream, type UIStreamItem, type UIStreamOptions } from '../../src/chat/uiMessageStream';
import { toUIMessages, uiChatAction, uiChatRequestSchema } from '../../src/chat/uiMessages';
import type { ChatMessageView } from '../../src/chat/view';

const at = '2026-12-05T08:00:00.000Z';
const message: TurnEvent = { event: 'message', id: 'a1:r0', data: { id: 'm1', role: 'user', createdAt: at } };
const delta = (attempt: string, n: number, text: string): TurnEvent => ({ event: 'delta', id: `${attempt}:${n}`, data: { text } });
const call = (attempt: string, n: number, toolCallId: string, name: string, args: string): TurnEvent => ({ event: 'tool-call', id: `${attempt}:c${n}`, data: { round: 1, toolCallId, name, arguments: args } });
const ask = (n: number, toolCallId: string, name: string, args: string): TurnEvent => ({ event: 'approval-request', id: `a1:a${n}`, data: { round: 1, toolCallId, name, arguments: args, expiresAt: at } });
const result = (n: number, toolCallId: string, name: string, content: string, status?: 'failed' | 'denied'): TurnEvent => ({
  event: 'tool-result',
  id: `a2:r${n}`,
  data: { round: 2, toolCallId, name, content, ...(status === undefined ? {} : { status }) },
});
const done: TurnEvent = { event: 'done', id: 'a2:done', data: { id: 'm1.reply', role: 'assistant', replyTo: 'm1', createdAt: at, tokens: 9 } };

async function* replay(events: TurnEvent[]): AsyncGenerator<TurnEvent> {
  yield* events;
}

async function chunksOf(events: TurnEvent[], options: Partial<UIStreamOptions> = {}): Promise<UIMessageChunk[]> {
  const items: UIStreamItem[] = [];
  const all: UIStreamOptions = { replyId: 'm1.reply', needsApproval: (name) => name === 'remove_todo', waitsForAnswer: async () => true, ...options };
  for await (const item of toUIMessageStream(replay(events), all)) items.push(item);
  // Our chunk type is a subset of the SDK's.
  return items.filter((i) => i.type !== 'ping') as unknown as UIMessageChunk[];
}

/** The message the SDK builds from the chunks (continuing `from`). */
async function asMessage(chunks: UIMessageChunk[], from?: UIMessage): Promise<UIMessage> {
  const stream = new ReadableStream<UIMessageChunk>({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
  let last: UIMessage | undefined;
  for await (const m of readUIMessageStream({ stream, message: from, terminateOnError: true })) last = m;
  return last as UIMessage;
}

describe('toUIMessageStream', () => {
  it('turns a tool round into steps, a tool part with its input and output, and the answer', async () => {
    const chunks = await chunksOf([message, delta('a1', 9, 'Checking.'), call('a1', 1, 'c1', 'get_todos', '{}'), result(1, 'c1', 'get_todos', '{"todos":[]}'), delta('a2', 5, 'None.'), done]);
    expect(chunks.map((c) => c.type)).toEqual(['start', 'start-step', 'text-start', 'text-delta', 'text-end', 'tool-input-available', 'finish-step', 'tool-output-available', 'start-step', 'text-start', 'text-delta', 'text-end', 'finish-step', 'finish']);
    const m = await asMessage(chunks);
    expect(m.id).toBe('m1.reply');
    expect(m.parts).toMatchObject([
      { type: 'step-start' },
      { type: 'text', text: 'Checking.' },
      { type: 'tool-get_todos', toolCallId: 'c1', state: 'output-available', input: {}, output: { todos: [] } },
      { type: 'step-start' },
      { type: 'text', text: 'None.' },
    ]);
  });

  it('pauses at approvals, showing only the calls that need one, and ends the stream there', async () => {
    const paused = await chunksOf([message, call('a1', 1, 't1', 'get_current_time', '{}'), call('a1', 2, 'r1', 'remove_todo', '{"id":1}'), ask(1, 'r1', 'remove_todo', '{"id":1}'), result(1, 't1', 'get_current_time', '{}')]);
    expect(paused.map((c) => c.type)).toEqual(['start', 'start-step', 'tool-input-available', 'tool-approval-request', 'finish-step', 'finish']);
    expect(paused.at(-1)).toEqual({ type: 'finish', finishReason: 'tool-calls' });
    const m = await asMessage(paused);
    expect(m.parts).toMatchObject([{ type: 'step-start' }, { type: 'tool-remove_todo', toolCallId: 'r1', state: 'approval-requested', approval: { id: 'r1' } }]);

    // The continuation after the answer: the round's results, the deferred call shown with its result.
    const answered = { ...m, parts: m.parts.map((p) => ('toolCallId' in p ? { ...p, state: 'approval-responded', approval: { id: 'r1', approved: true } } : p)) } as UIMessage;
    const rest = await chunksOf(
      [message, call('a1', 1, 't1', 'get_current_time', '{}'), call('a1', 2, 'r1', 'remove_todo', '{"id":1}'), ask(1, 'r1', 'remove_todo', '{"id":1}'), result(1, 't1', 'get_current_time', '{"utc":"x"}'), result(2, 'r1', 'remove_todo', '{"removed":{"id":1}}'), delta('a2', 4, 'Done'), done],
      { continueAfter: new Set(['r1']) },
    );
    expect(rest.map((c) => c.type)).toEqual(['start', 'tool-input-available', 'tool-output-available', 'tool-output-available', 'start-step', 'text-start', 'text-delta', 'text-end', 'finish-step', 'finish']);
    const finished = await asMessage(rest, answered);
    expect(finished.parts).toMatchObject([
      { type: 'step-start' },
      { type: 'tool-remove_todo', toolCallId: 'r1', state: 'output-available', output: { removed: { id: 1 } } },
      { type: 'tool-get_current_time', toolCallId: 't1', state: 'output-available', output: { utc: 'x' } },
      { type: 'step-start' },
      { type: 'text', text: 'Done' },
    ]);
  });

  it('keeps streaming past approvals that were decided before the stream got there', async () => {
    const chunks = await chunksOf([message, call('a1', 1, 'r1', 'remove_todo', '{"id":1}'), ask(1, 'r1', 'remove_todo', '{"id":1}'), result(1, 'r1', 'remove_todo', '{"error":"expired"}', 'denied'), delta('a2', 2, 'Ok'), done], { waitsForAnswer: async () => false });
    expect(chunks.map((c) => c.type)).toContain('tool-output-denied');
    expect(chunks.at(-1)).toEqual({ type: 'finish', finishReason: 'stop' });
  });

  it('voids a step’s text on reset, reports a failed tool as output-error, a failed turn as error, a cancelled one as abort', async () => {
    const reset = await chunksOf([message, delta('a1', 3, 'abc'), { event: 'reset', id: 'a3:0', data: { reason: 'again' } }, delta('a3', 3, 'xyz'), done]);
    expect(reset.map((c) => c.type)).toEqual(['start', 'start-step', 'text-start', 'text-delta', 'text-end', 'reset-step', 'text-start', 'text-delta', 'text-end', 'finish-step', 'finish']);
    expect((await asMessage(reset)).parts).toMatchObject([{ type: 'step-start' }, { type: 'text', text: 'xyz' }]);

    const failedTool = await chunksOf([message, call('a1', 1, 'c1', 'get_todos', '{}'), result(1, 'c1', 'get_todos', '{"error":"down"}', 'failed'), done]);
    expect(failedTool).toContainEqual({ type: 'tool-output-error', toolCallId: 'c1', errorText: 'down' });

    const failed = await chunksOf([message, delta('a1', 2, 'pa'), { event: 'error', id: 'a1:done', data: { id: 'm1.reply', createdAt: at, error: { code: 'model_failed', message: 'The model failed.' } } }]);
    expect(failed.slice(-2)).toEqual([
      { type: 'error', errorText: 'The model failed.' },
      { type: 'finish', finishReason: 'error' },
    ]);
    const cancelled = await chunksOf([message, delta('a1', 2, 'pa'), { event: 'cancelled', id: 'a1:done', data: { id: 'm1.reply', replyTo: 'm1', createdAt: at } }]);
    expect(cancelled.at(-1)).toEqual({ type: 'abort', reason: 'The turn was cancelled.' });
  });
});

describe('toUIMessages', () => {
  const view = (recentMessages: ChatMessageView[], runningTurn?: { messageId: string; startedAt: string; status: 'running' | 'waiting_for_approval'; pendingApprovals?: { toolCallId: string; name: string; arguments: string; requestedAt: string; expiresAt: string }[] }) => ({ recentMessages, runningTurn });
  const m = (fields: Partial<ChatMessageView> & Pick<ChatMessageView, 'id' | 'role'>): ChatMessageView => ({ content: '', createdAt: at, ...fields });

  it('makes each turn one assistant message with a step per model call, valid for the SDK', async () => {
    const messages = toUIMessages(
      view([
        m({ id: 's-0001', role: 'system', content: 'Be brief.' }),
        m({ id: 'u1', role: 'user', content: 'tidy up' }),
        m({ id: 'u1.reply.1', role: 'assistant', replyTo: 'u1', content: 'Looking.', toolCalls: [{ id: 'c1', name: 'get_todos', arguments: '{}' }, { id: 'c2', name: 'remove_todo', arguments: '{"id":1}' }, { id: 'c3', name: 'remove_todo', arguments: '{"id":2}' }] }),
        m({ id: 'u1.reply.1.1', role: 'tool', replyTo: 'u1', toolCallId: 'c1', name: 'get_todos', content: '{"todos":[]}' }),
        m({ id: 'u1.reply.1.2', role: 'tool', replyTo: 'u1', toolCallId: 'c2', name: 'remove_todo', content: '{"error":"denied"}', status: 'denied', approval: { approved: false, by: 'user', reason: 'no' } }),
        m({ id: 'u1.reply.1.3', role: 'tool', replyTo: 'u1', toolCallId: 'c3', name: 'remove_todo', content: '{"error":"cancelled"}', status: 'failed', approval: { approved: false, by: 'cancel' } }),
        m({ id: 'u1.reply', role: 'assistant', replyTo: 'u1', content: 'Stopp', status: 'cancelled', error: 'The turn was cancelled.' }),
        m({ id: 'u2', role: 'user', content: 'again' }),
      ], { messageId: 'u2', startedAt: at, status: 'waiting_for_approval', pendingApprovals: [{ toolCallId: 'c9', name: 'remove_todo', arguments: '{"id":3}', requestedAt: at, expiresAt: at }] }),
    );
    expect(await validateUIMessages({ messages })).toEqual(messages);
    expect(messages.map((x) => [x.id, x.role])).toEqual([
      ['u1', 'user'],
      ['u1.reply', 'assistant'],
      ['u2', 'user'],
      ['u2.reply', 'assistant'],
    ]);
    expect(messages[1]).toMatchObject({
      metadata: { status: 'cancelled' },
      parts: [
        { type: 'step-start' },
        { type: 'text', text: 'Looking.' },
        { type: 'tool-get_todos', state: 'output-available', output: { todos: [] } },
        { type: 'tool-remove_todo', toolCallId: 'c2', state: 'output-denied', approval: { id: 'c2', approved: false, reason: 'no' } },
        { type: 'tool-remove_todo', toolCallId: 'c3', state: 'output-error', errorText: 'cancelled' },
        { type: 'step-start' },
        { type: 'text', text: 'Stopp' },
      ],
    });
    expect(messages[3]?.parts).toEqual([{ type: 'step-start' }, { type: 'tool-remove_todo', toolCallId: 'c9', state: 'approval-requested', input: { id: 3 }, approval: { id: 'c9' } }]);
  });
});

describe('uiChatAction', () => {
  const parse = (body: unknown) => uiChatRequestSchema.parse(body);
  it('sends a last user message’s text, or answers the approvals a last assistant message responded to', () => {
    expect(uiChatAction(parse({ id: 'c', messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }] }))).toEqual({ kind: 'send', messageId: 'u1', text: 'ab' });
    const assistant = {
      id: 'u1.reply',
      role: 'assistant',
      parts: [
        { type: 'step-start' },
        { type: 'tool-remove_todo', toolCallId: 'r1', state: 'approval-responded', input: {}, approval: { id: 'r1', approved: false, reason: 'no' } },
        { type: 'tool-remove_todo', toolCallId: 'r2', state: 'approval-responded', input: {}, approval: { id: 'r2', approved: true } },
      ],
    };
    expect(uiChatAction(parse({ id: 'c', messages: [assistant] }))).toEqual({
      kind: 'answer',
      replyId: 'u1.reply',
      answers: [
        { toolCallId: 'r1', approved: false, reason: 'no' },
        { toolCallId: 'r2', approved: true },
      ],
    });
    expect(parse({ id: 'c', messages: [assistant] }).trigger).toBe('submit-message');
  });

  it('says why a request asks for nothing it can do', () => {
    expect(uiChatAction(parse({ id: 'c', messages: [{ id: 'u1', role: 'user', parts: [{ type: 'file', url: 'data:,x', mediaType: 'text/plain' }] }] }))).toMatch(/only have text parts/);
    expect(uiChatAction(parse({ id: 'c', messages: [{ id: 'a', role: 'assistant', parts: [{ type: 'text', text: 'hi' }] }] }))).toMatch(/responds to no approval/);
    expect(uiChatAction(parse({ id: 'c', messages: [{ id: 's', role: 'system', parts: [] }] }))).toMatch(/must be a user message/);
    expect(uiChatRequestSchema.safeParse({ id: 'c', messages: [] }).success).toBe(false);
  });
});
