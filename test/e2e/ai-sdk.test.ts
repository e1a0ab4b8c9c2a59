/**
 * The app as a backend of the AI SDK's `useChat`, driven by the SDK itself (`ai`'s DefaultChatTransport
 * and readUIMessageStream, as useChat uses them) on the runtime this process drives: a plain turn, a
 * tool round, an approval round trip, a resume after a cut mid-turn, 204 when idle, and the chat as
 * UIMessage[] that the SDK's own validator accepts.
 */
import { DefaultChatTransport, lastAssistantMessageIsCompleteWithApprovalResponses, readUIMessageStream, validateUIMessages, type UIMessage, type UIMessageChunk } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { lastMessage, lastUserContent } from '../support/model-server';
import { readStoredEntity } from '../support/stored';

let t: TestApp;
let transport: DefaultChatTransport<UIMessage>;
beforeAll(async () => {
  t = await startTestApp({ MODEL_TIMEOUT_MS: '20000' });
  t.model.setDefault({ reply: (r) => (lastMessage(r)?.role === 'tool' ? `after tools: ${lastMessage(r)?.content ?? ''}` : `echo: ${lastUserContent(r)}`) });
  // Unchanged but for where the app is and its function key (where keys are enforced).
  transport = new DefaultChatTransport({ api: `${t.host.url}/api/chats`, headers: t.keyHeaders() });
});
afterAll(() => t?.stop());

const userMessage = (id: string, text: string): UIMessage => ({ id, role: 'user', parts: [{ type: 'text', text }] });

function send(chatId: string, messages: UIMessage[], abortSignal?: AbortSignal): Promise<ReadableStream<UIMessageChunk>> {
  return transport.sendMessages({ chatId, messages, trigger: 'submit-message', messageId: undefined, abortSignal });
}

/** The assistant message as useChat builds it from a stream (continuing `message` if given). */
async function finalMessage(stream: ReadableStream<UIMessageChunk>, message?: UIMessage): Promise<UIMessage> {
  let last: UIMessage | undefined;
  for await (const snapshot of readUIMessageStream({ stream, message, terminateOnError: true })) last = snapshot;
  if (last === undefined) throw new Error('The stream produced no message.');
  return last;
}

const textOf = (m: UIMessage) => m.parts.flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('');
const toolParts = (m: UIMessage) => m.parts.filter((p): p is Extract<typeof p, { toolCallId: string }> => 'toolCallId' in p);

async function history(chatId: string): Promise<UIMessage[]> {
  const response = await fetch(t.url(`/api/chats/${chatId}/messages`));
  expect(response.status).toBe(200);
  return validateUIMessages({ messages: await response.json() });
}

describe('AI SDK useChat transport', () => {
  it('answers a plain turn, creating the chat, and a retried message is stored once', async () => {
    const reply = await finalMessage(await send('sdk-plain', [userMessage('sp-1', 'hello there')]));
    expect(reply).toMatchObject({ id: 'sp-1.reply', role: 'assistant' });
    expect(textOf(reply)).toBe('echo: hello there');
    // The same UI message again (a retry): the same reply, nothing stored twice.
    const again = await finalMessage(await send('sdk-plain', [userMessage('sp-1', 'hello there')]));
    expect(textOf(again)).toBe('echo: hello there');
    const chat = await history('sdk-plain');
    expect(chat.map((m) => [m.id, m.role])).toEqual([
      ['sp-1', 'user'],
      ['sp-1.reply', 'assistant'],
    ]);
    expect(await transport.reconnectToStream({ chatId: 'sdk-plain' })).toBeNull();
  });

  it('streams a tool round as tool parts with their input and output, then the answer', async () => {
    t.model.enqueue({ toolCalls: [{ id: 'call_sdk_add', name: 'add_todo', arguments: { task: 'call mum' } }], reply: 'Adding it.' });
    const reply = await finalMessage(await send('sdk-tools', [userMessage('st-1', 'remind me to call mum')]));
    const [part] = toolParts(reply);
    expect(part).toMatchObject({ type: 'tool-add_todo', toolCallId: 'call_sdk_add', state: 'output-available', input: { task: 'call mum' }, output: { id: 1, task: 'call mum' } });
    expect(textOf(reply)).toMatch(/^Adding it\.after tools: /);
    expect(reply.parts.filter((p) => p.type === 'step-start')).toHaveLength(2);
    // The history says the same.
    const [, stored] = await history('sdk-tools');
    expect(toolParts(stored as UIMessage)).toEqual([expect.objectContaining({ toolCallId: 'call_sdk_add', state: 'output-available', output: expect.objectContaining({ task: 'call mum' }) })]);
  });

  it('pauses at an approval, and the approval response useChat sends resumes the same message to its end', async () => {
    t.model.enqueue({ toolCalls: [{ id: 'call_sdk_seed', name: 'add_todo', arguments: { task: 'old task' } }] });
    await finalMessage(await send('sdk-approve', [userMessage('sa-0', 'add old task')]));
    t.model.enqueue({ toolCalls: [{ id: 'call_sdk_rm', name: 'remove_todo', arguments: { id: 1 } }], reply: 'Removing it.' });
    const user = userMessage('sa-1', 'remove it');
    const paused = await finalMessage(await send('sdk-approve', [user]));
    expect(toolParts(paused)).toEqual([expect.objectContaining({ type: 'tool-remove_todo', toolCallId: 'call_sdk_rm', state: 'approval-requested', input: { id: 1 }, approval: { id: 'call_sdk_rm' } })]);
    expect((await history('sdk-approve')).at(-1)).toMatchObject({ id: 'sa-1.reply', parts: [{ type: 'step-start' }, { toolCallId: 'call_sdk_rm', state: 'approval-requested' }] });

    // What useChat's addToolApprovalResponse does to the part; then sendAutomaticallyWhen decides to send.
    const answered: UIMessage = { ...paused, parts: paused.parts.map((p) => ('toolCallId' in p && p.state === 'approval-requested' ? { ...p, state: 'approval-responded', approval: { id: p.approval.id, approved: true } } : p)) as UIMessage['parts'] };
    expect(lastAssistantMessageIsCompleteWithApprovalResponses({ messages: [user, answered] })).toBe(true);
    const done = await finalMessage(await send('sdk-approve', [user, answered]), answered);
    expect(toolParts(done)).toEqual([expect.objectContaining({ toolCallId: 'call_sdk_rm', state: 'output-available', output: { removed: expect.objectContaining({ id: 1, task: 'old task' }) } })]);
    expect(textOf(done)).toMatch(/^Removing it\.after tools: /);
    expect((await readStoredEntity<{ items: unknown[] }>(t, 'todolist', 'sdk-approve'))?.state.items).toEqual([]);
  });

  it('shows a denial as output-denied, and the model is told', async () => {
    t.model.enqueue({ toolCalls: [{ id: 'call_sdk_no', name: 'remove_todo', arguments: { id: 3 } }] });
    const user = userMessage('sd-1', 'remove task 3');
    const paused = await finalMessage(await send('sdk-deny', [user]));
    const answered: UIMessage = { ...paused, parts: paused.parts.map((p) => ('toolCallId' in p && p.state === 'approval-requested' ? { ...p, state: 'approval-responded', approval: { id: p.approval.id, approved: false, reason: 'not now' } } : p)) as UIMessage['parts'] };
    const done = await finalMessage(await send('sdk-deny', [user, answered]), answered);
    expect(toolParts(done)).toEqual([expect.objectContaining({ toolCallId: 'call_sdk_no', state: 'output-denied' })]);
    expect(textOf(done)).toContain('The user denied this tool call');
  });

  it('resumes a turn cut mid-stream with GET .../stream: the whole message, replayed from its start, then live', async () => {
    const words = Array.from({ length: 40 }, (_, i) => `w${i} `);
    t.model.enqueue({ stream: words, chunkDelayMs: 50 });
    const cut = new AbortController();
    const stream = await send('sdk-resume', [userMessage('sr-1', 'a long answer please')], cut.signal);
    const reader = stream.getReader();
    for (let deltas = 0; deltas < 3; ) if ((await reader.read()).value?.type === 'text-delta') deltas++;
    cut.abort();
    await reader.cancel().catch(() => undefined);

    const resumed = await transport.reconnectToStream({ chatId: 'sdk-resume' });
    expect(resumed).not.toBeNull();
    const message = await finalMessage(resumed as ReadableStream<UIMessageChunk>);
    expect(message.id).toBe('sr-1.reply');
    expect(textOf(message)).toBe(words.join(''));
    expect(await transport.reconnectToStream({ chatId: 'sdk-resume' })).toBeNull();
  });

  it('refuses regenerate, an unknown chat to resume, and bad requests with clear 4xx errors', async () => {
    await expect(transport.sendMessages({ chatId: 'sdk-plain', messages: [userMessage('sp-1', 'hello there')], trigger: 'regenerate-message', messageId: 'sp-1.reply', abortSignal: undefined })).rejects.toThrow(/Regenerating a reply is not supported/);
    await expect(transport.reconnectToStream({ chatId: 'sdk-nowhere' })).rejects.toThrow(/does not exist/);
    for (const body of [{ id: 'x', messages: [] }, { id: 'bad id!', messages: [userMessage('a', 'b')] }, { id: 'x', messages: [{ id: 'a', role: 'user', parts: [{ type: 'file', url: 'data:,x', mediaType: 'text/plain' }] }] }]) {
      const response = await fetch(t.url('/api/chats'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      expect({ body, status: response.status }).toEqual({ body, status: 400 });
    }
  });
});
