import { describe, expect, it } from 'vitest';
import {
  acceptMessage,
  awaitApprovals,
  buildPrompt,
  createOrUpdate,
  DEFAULT_INSTRUCTIONS,
  finishTurn,
  hasMessage,
  replyTo,
  settleApproval,
  startNextTurn,
  type ChatState,
  type ToolRound,
} from '../../src/chat/state';
import { parseChatState } from '../../src/chat/schema';
import { countMessageTokens } from '../../src/chat/tokens';
import type { PromptMessage } from '../../src/model/client';
import { ALL_TOOLS, echo, failedTurn, outcomeOf, runTurn, turnOptions, type TurnScript } from '../support/turns';

const t0 = new Date('2026-01-15T22:00:00.000Z');
const clock = (start = t0) => {
  let ms = start.getTime();
  return () => new Date((ms += 1000));
};

function chatWith(turns: string[], options: { budget?: number; script?: TurnScript } = {}) {
  let state = createOrUpdate(undefined, { instructions: 'Be brief.' }, t0);
  const now = clock();
  const prompts: PromptMessage[][] = [];
  for (const [i, message] of turns.entries()) {
    const result = runTurn(state, { messageId: `m${i}`, message }, options.script ?? echo, now, { historyTokenBudget: options.budget ?? 4000 });
    state = result.state;
    prompts.push(result.plan?.prompt ?? []);
  }
  return { state, prompts };
}

/** A round in which the model called `get_current_time` and `add_todo`. */
const round: ToolRound = {
  text: 'Let me check.',
  toolCalls: [
    { id: 'call-1', name: 'get_current_time', arguments: '{}' },
    { id: 'call-2', name: 'add_todo', arguments: '{"task":"buy milk"}' },
  ],
  results: [
    { toolCallId: 'call-1', name: 'get_current_time', content: '{"utc":"2026-01-15T22:00:00.000Z"}', failed: false },
    { toolCallId: 'call-2', name: 'add_todo', content: '{"error":"The task could not be added."}', failed: true },
  ],
};

describe('createOrUpdate', () => {
  it('creates a chat with default instructions, an empty queue and every tool', () => {
    expect(createOrUpdate(undefined, {}, t0)).toEqual({
      schemaVersion: 3,
      instructions: DEFAULT_INSTRUCTIONS,
      createdAt: '2026-01-15T22:00:00.000Z',
      lastUpdatedAt: '2026-01-15T22:00:00.000Z',
      totalTokens: 0,
      totalMessages: 0,
      systemMessages: 0,
      recent: [],
      pageCount: 0,
      pagedMessages: 0,
      unconfirmedPages: [],
      recentMessageIds: [],
      queue: [],
      unpurgedTurns: [],
    });
  });

  it('puts instructions given at create at the head of the history as a system message', () => {
    const created = createOrUpdate(undefined, { instructions: 'Be brief.' }, t0);
    expect(created.recent).toEqual([{ id: 's-0001', role: 'system', content: 'Be brief.', createdAt: t0.toISOString(), tokens: countMessageTokens('Be brief.') }]);
    expect(created.instructions).toBe('Be brief.');
  });

  it('updates instructions keeping the history, and appends the change as a system message (re-creating never wipes a chat)', () => {
    const { state } = chatWith(['hi']);
    const updated = createOrUpdate(state, { instructions: 'Be verbose.' }, new Date('2026-01-15T23:00:00Z'));
    expect(updated.instructions).toBe('Be verbose.');
    expect(updated.recent.slice(0, -1)).toEqual(state.recent);
    expect(updated.recent.at(-1)).toMatchObject({ id: 's-0002', role: 'system', content: 'Be verbose.', createdAt: '2026-01-15T23:00:00.000Z' });
    expect(updated.lastUpdatedAt).toBe('2026-01-15T23:00:00.000Z');
    expect(updated.createdAt).toBe(state.createdAt);
    // The same instructions again, or none, change nothing.
    expect(createOrUpdate(state, {}, t0)).toBe(state);
    expect(createOrUpdate(updated, { instructions: 'Be verbose.' }, t0)).toBe(updated);
  });

  it("keeps the chat's choice of tools, and changes it only when a different list is given", () => {
    const created = createOrUpdate(undefined, { tools: ['get_current_time'] }, t0);
    expect(created.tools).toEqual(['get_current_time']);
    expect(createOrUpdate(created, { tools: ['get_current_time'] }, t0)).toBe(created);
    expect(createOrUpdate(created, { instructions: 'x' }, t0).tools).toEqual(['get_current_time']);
    expect(createOrUpdate(created, { tools: [] }, t0).tools).toEqual([]);
    expect(createOrUpdate(undefined, {}, t0).tools).toBeUndefined();
  });

  it('keeps a chat stored before instructions were history working: no system message for its old instructions, a change appends s-0001', () => {
    const stored: ChatState = parseChatState(
      {
        instructions: 'Old instructions.',
        createdAt: t0.toISOString(),
        lastUpdatedAt: '2026-01-15T22:00:02.000Z',
        totalTokens: 7,
        messages: [
          { id: 'a', role: 'user', content: 'hi', createdAt: '2026-01-15T22:00:01.000Z', tokens: 5 },
          { id: 'a.reply', role: 'assistant', content: 'hello', replyTo: 'a', createdAt: '2026-01-15T22:00:02.000Z', tokens: 5 },
        ],
      },
      'old',
    );
    expect(buildPrompt(stored, 4000).map((m) => m.content)).toEqual(['Old instructions.', 'hi', 'hello']);
    const changed = createOrUpdate(stored, { instructions: 'New.' }, new Date('2026-01-15T22:00:01.500Z'));
    expect(changed.recent.map((m) => [m.id, m.role])).toEqual([['a', 'user'], ['a.reply', 'assistant'], ['s-0001', 'system']]);
    // Stamped after the newest message, so timestampUTC polling sees it.
    expect(changed.recent.at(-1)?.createdAt).toBe('2026-01-15T22:00:02.001Z');
  });

  it('sends only the current instructions to the model, never earlier ones from the history', () => {
    const { state } = chatWith(['one']);
    const changed = createOrUpdate(state, { instructions: 'Answer in French.' }, new Date('2026-01-16T00:00:00Z'));
    const { plan } = runTurn(changed, { messageId: 'm9', message: 'two' }, echo, clock(new Date('2026-01-16T01:00:00Z')));
    expect(plan?.prompt.map((m) => [m.role, m.content])).toEqual([
      ['system', 'Answer in French.'],
      ['user', 'one'],
      ['assistant', 're: one'],
      ['user', 'two'],
    ]);
  });
});

describe('a turn (accepted, started, finished)', () => {
  it('appends the user message and the reply, with usage and ordered timestamps', () => {
    const { state } = chatWith(['Hello']);
    expect(state.recent.map((m) => [m.id, m.role, m.content])).toEqual([
      ['s-0001', 'system', 'Be brief.'],
      ['m0', 'user', 'Hello'],
      ['m0.reply', 'assistant', 're: Hello'],
    ]);
    expect(state.totalTokens).toBe(10);
    expect(state.recent[2]?.replyTo).toBe('m0');
    expect(Date.parse(state.recent[2]!.createdAt)).toBeGreaterThan(Date.parse(state.recent[1]!.createdAt));
    expect(Date.parse(state.recent[1]!.createdAt)).toBeGreaterThan(Date.parse(state.recent[0]!.createdAt));
    expect(state.lastUpdatedAt).toBe(state.recent[2]?.createdAt);
    expect(state.recent[1]?.tokens).toBe(countMessageTokens('Hello'));
    expect(state.totalMessages).toBe(3);
    expect(state.queue).toEqual([]);
    expect(state.turn).toBeUndefined();
    expect(state.unpurgedTurns).toEqual(['turn~c~m0']);
  });

  it('sends the instructions and the earlier turns in the prompt', () => {
    const { prompts } = chatWith(['one', 'two', 'three']);
    expect(prompts[2]).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'one' },
      { role: 'assistant', content: 're: one' },
      { role: 'user', content: 'two' },
      { role: 'assistant', content: 're: two' },
      { role: 'user', content: 'three' },
    ]);
  });

  it('stores a repeated message id once, whether it is queued, running or answered, and starts no turn for it', () => {
    const now = clock();
    const created = createOrUpdate(undefined, {}, t0);
    const queued = acceptMessage(created, { messageId: 'k', message: 'Hello' }, now());
    expect(acceptMessage(queued, { messageId: 'k', message: 'Hello' }, now())).toBe(queued);
    const { state: running } = startNextTurn(queued, turnOptions(), now());
    expect(acceptMessage(running, { messageId: 'k', message: 'Hello' }, now())).toBe(running);
    const { state } = chatWith(['Hello']);
    let calls = 0;
    const again = runTurn(state, { messageId: 'm0', message: 'Hello' }, () => (calls++, 'x'), now);
    expect(again).toEqual({ state, plan: undefined });
    expect(calls).toBe(0);
  });

  it('queues a message posted while a turn runs, and starts it when that turn finishes, in acceptance order', () => {
    const now = clock();
    const created = createOrUpdate(undefined, {}, t0);
    const options = turnOptions();
    const first = startNextTurn(acceptMessage(created, { messageId: 'a', message: 'one' }, now()), options, now());
    expect(first.plan?.messageId).toBe('a');
    expect(first.state.turn).toMatchObject({ messageId: 'a', instanceId: 'turn~c~a' });
    let state = acceptMessage(first.state, { messageId: 'b', message: 'two', stream: true }, now());
    state = acceptMessage(state, { messageId: 'c', message: 'three' }, now());
    expect(state.queue.map((m) => [m.id, m.stream])).toEqual([['b', true], ['c', undefined]]);
    expect(Date.parse(state.queue[1]!.acceptedAt)).toBeGreaterThan(Date.parse(state.queue[0]!.acceptedAt));
    expect(['a', 'b', 'c'].map((id) => hasMessage(state, id))).toEqual([true, true, true]);
    // While a turn runs, nothing else starts.
    expect(startNextTurn(state, options, now())).toEqual({ state, plan: undefined });
    // The queued messages are not in the history yet: a turn's prompt never sees a later message.
    expect(state.recent.map((m) => m.id)).toEqual(['a']);

    state = finishTurn(state, outcomeOf({ messageId: 'a' }, 're: one'), now());
    const second = startNextTurn(state, options, now());
    expect(second.plan).toMatchObject({ chatId: 'c', messageId: 'b', stream: true, tools: [...ALL_TOOLS], maxToolRounds: 8 });
    expect(second.plan?.prompt.map((m) => m.content)).toEqual([DEFAULT_INSTRUCTIONS, 'one', 're: one', 'two']);
    expect(second.state.turn).toMatchObject({ messageId: 'b', instanceId: 'turn~c~b', stream: true });
    expect(second.state.queue.map((m) => m.id)).toEqual(['c']);
    // The user message is stamped when its turn starts, after everything before it.
    const user = second.state.recent.at(-1);
    expect(user).toMatchObject({ id: 'b', role: 'user', content: 'two' });
    expect(second.plan?.userCreatedAt).toBe(user?.createdAt);
    expect(Date.parse(user!.createdAt)).toBeGreaterThan(Date.parse(state.recent.at(-2)!.createdAt));
  });

  it("offers the chat's own choice of tools, or every tool when it made none", () => {
    const now = clock();
    const chosen = acceptMessage(createOrUpdate(undefined, { tools: ['get_current_time'] }, t0), { messageId: 'a', message: 'hi' }, now());
    expect(startNextTurn(chosen, turnOptions({ maxToolRounds: 2 }), now()).plan).toMatchObject({ tools: ['get_current_time'], maxToolRounds: 2 });
    const none = acceptMessage(createOrUpdate(undefined, { tools: [] }, t0), { messageId: 'a', message: 'hi' }, now());
    expect(startNextTurn(none, turnOptions(), now()).plan?.tools).toEqual([]);
  });

  it('records tool rounds before the reply, under ids derived from the message, and frees the chat', () => {
    const { state } = chatWith(['What time is it?'], { script: () => ({ rounds: [round], end: { kind: 'replied', text: 'It is 22:00.' }, totalTokens: 30 }) });
    const entries = state.recent.slice(2);
    expect(entries.map((m) => [m.id, m.role, m.replyTo])).toEqual([
      ['m0.reply.1', 'assistant', 'm0'],
      ['m0.reply.1.1', 'tool', 'm0'],
      ['m0.reply.1.2', 'tool', 'm0'],
      ['m0.reply', 'assistant', 'm0'],
    ]);
    expect(entries[0]).toMatchObject({ content: 'Let me check.', toolCalls: round.toolCalls });
    expect(entries[1]).toMatchObject({ toolCallId: 'call-1', name: 'get_current_time', content: round.results[0]?.content });
    expect(entries[1]?.status).toBeUndefined();
    expect(entries[2]).toMatchObject({ toolCallId: 'call-2', name: 'add_todo', status: 'failed' });
    expect(entries[3]).toMatchObject({ content: 'It is 22:00.' });
    const times = state.recent.map((m) => Date.parse(m.createdAt));
    expect(times.every((t, i) => i === 0 || t > times[i - 1]!)).toBe(true);
    expect(state).toMatchObject({ totalMessages: 6, totalTokens: 30, lastUpdatedAt: entries[3]?.createdAt });
    expect(state.turn).toBeUndefined();
  });

  it('finds the reply to a message by its id, not the tool-round entries that also answer it', () => {
    const { state } = chatWith(['What time is it?'], { script: () => ({ rounds: [round], end: { kind: 'replied', text: 'It is 22:00.' } }) });
    expect(replyTo(state, 'm0')).toMatchObject({ id: 'm0.reply', content: 'It is 22:00.' });
    expect(replyTo(state, 'nope')).toBeUndefined();
    // A running turn has no reply yet.
    const running = startNextTurn(acceptMessage(state, { messageId: 'm1', message: 'again' }, new Date()), turnOptions(), new Date()).state;
    expect(replyTo(running, 'm1')).toBeUndefined();
  });

  it('changes nothing for an outcome that is not the running turn’s (a repeat, or a stranger)', () => {
    const now = clock();
    const { state: started } = startNextTurn(acceptMessage(createOrUpdate(undefined, {}, t0), { messageId: 'a', message: 'one' }, now()), turnOptions(), now());
    expect(finishTurn(started, outcomeOf({ messageId: 'b' }, 'x'), now())).toBe(started);
    const finished = finishTurn(started, outcomeOf({ messageId: 'a' }, 'first'), now());
    expect(finishTurn(finished, outcomeOf({ messageId: 'a' }, 'again'), now())).toBe(finished);
  });

  it('records a failed turn, keeps the user message, and leaves the chat usable', () => {
    let fail = true;
    const flaky: TurnScript = (prompt) => (fail ? failedTurn('model_timeout', 'The model did not answer in time (after 4 attempts).') : `ok ${prompt.length}`);
    let { state } = chatWith(['first'], { script: flaky });
    expect(state.recent[2]).toMatchObject({ role: 'assistant', status: 'failed', errorCode: 'model_timeout', replyTo: 'm0', content: '' });
    expect(state.recent[2]?.error).toContain('did not answer in time');
    expect(state.totalTokens).toBe(0);
    fail = false;
    const next = runTurn(state, { messageId: 'm1', message: 'second' }, flaky, clock(new Date('2026-01-16T00:00:00Z')));
    state = next.state;
    expect(replyTo(state, 'm1')?.content).toBe('ok 3');
    // the failed record is not sent to the model; the user message that failed is
    expect(next.plan?.prompt.map((m) => m.content)).toEqual(['Be brief.', 'first', 'second']);
  });

  it('keeps the text a failed streamed turn had published, and its attempt', () => {
    const { state } = chatWith(['hi'], { script: () => ({ end: { kind: 'failed', code: 'model_failed', message: 'The model stream ended early.', partialText: 'partial' }, totalTokens: 0, streamAttempt: 'a1' }) });
    expect(replyTo(state, 'm0')).toMatchObject({ status: 'failed', content: 'partial', errorCode: 'model_failed', streamAttempt: 'a1', tokens: 0 });
  });

  it('keeps timestamps strictly increasing even when the clock stands still or goes back', () => {
    let state: ChatState = createOrUpdate(undefined, {}, t0);
    for (let i = 0; i < 5; i++) {
      state = runTurn(state, { messageId: `m${i}`, message: 'x' }, echo, () => new Date(t0.getTime() - i)).state;
    }
    const times = state.recent.map((m) => Date.parse(m.createdAt));
    expect(times.every((t, i) => i === 0 || t > times[i - 1]!)).toBe(true);
  });
});

describe('buildPrompt (history window)', () => {
  it('keeps prompts within the budget however long the chat grows', () => {
    const budget = 300;
    const { prompts } = chatWith(
      Array.from({ length: 200 }, (_, i) => `message number ${i} with a few more words to make it longer`),
      { budget },
    );
    for (const prompt of prompts) {
      const tokens = prompt.reduce((sum, m) => sum + countMessageTokens(m.content), 3);
      expect(tokens).toBeLessThanOrEqual(budget);
    }
    const last = prompts.at(-1)!;
    expect(last[0]).toEqual({ role: 'system', content: 'Be brief.' });
    expect(last.at(-1)?.content).toContain('message number 199');
    expect(last.length).toBeGreaterThan(3);
    expect(last.length).toBeLessThan(40);
  });

  it('always includes the message being answered, even over budget', () => {
    const state: ChatState = {
      ...createOrUpdate(undefined, {}, t0),
      totalMessages: 1,
      recent: [{ id: 'a', role: 'user', content: 'long '.repeat(500), createdAt: t0.toISOString(), tokens: countMessageTokens('long '.repeat(500)) }],
    };
    expect(buildPrompt(state, 100).map((m) => m.role)).toEqual(['system', 'user']);
  });

  it('records a cancelled turn with the text it kept; a call it did not run is failed, a denied one denied, and neither reply is prompted again', () => {
    const denied = { approved: false, by: 'user' as const, reason: 'no' };
    const script: TurnScript = () => ({
      rounds: [{ ...round, results: [{ ...(round.results[0] as ToolRound['results'][number]), failed: true, approval: denied }, { ...(round.results[1] as ToolRound['results'][number]), failed: true, approval: { approved: false, by: 'cancel' } }] }],
      end: { kind: 'cancelled', partialText: 'I was say' },
    });
    const { state } = chatWith(['What time is it?'], { script });
    expect(state.recent.slice(2).map((m) => [m.id, m.status, m.approval?.by])).toEqual([
      ['m0.reply.1', undefined, undefined],
      ['m0.reply.1.1', 'denied', 'user'],
      ['m0.reply.1.2', 'failed', 'cancel'],
      ['m0.reply', 'cancelled', undefined],
    ]);
    expect(replyTo(state, 'm0')).toMatchObject({ content: 'I was say', errorCode: 'cancelled' });
    expect(state.turn).toBeUndefined();
    const { plan } = runTurn(state, { messageId: 'm1', message: 'and now?' }, echo, clock(new Date('2026-01-16T00:00:00Z')));
    expect(plan?.prompt.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'tool', 'user']);
    expect(parseChatState(JSON.parse(JSON.stringify(state)), 'c')).toEqual(state);
  });

  it('keeps the approvals a running turn waits for, the first decision of each, and nothing for another turn', () => {
    const now = clock();
    const { state: started } = startNextTurn(acceptMessage(createOrUpdate(undefined, {}, t0), { messageId: 'a', message: 'one' }, now()), turnOptions(), now());
    const request = { toolCallId: 'call-9', name: 'remove_todo', arguments: '{"id":1}', round: 1, event: 'approval-1', requestedAt: t0.toISOString(), expiresAt: '2026-01-16T22:00:00.000Z' };
    const waiting = awaitApprovals(started, 'a', [request]);
    expect(waiting.turn?.approvals).toEqual([request]);
    expect(awaitApprovals(waiting, 'a', [request])).toBe(waiting);
    expect(awaitApprovals(started, 'b', [request])).toBe(started);
    const decided = settleApproval(waiting, 'a', 'call-9', { approved: true, by: 'user', answerId: 'x' });
    expect(decided.turn?.approvals?.[0]?.decision).toEqual({ approved: true, by: 'user', answerId: 'x' });
    expect(settleApproval(decided, 'a', 'call-9', { approved: false, by: 'timeout' })).toBe(decided);
    expect(settleApproval(waiting, 'b', 'call-9', { approved: false, by: 'timeout' })).toBe(waiting);
    expect(parseChatState(JSON.parse(JSON.stringify(decided)), 'c')).toEqual(decided);
  });

  it('carries earlier tool rounds as assistant tool calls and tool results; a failed reply is left out, its tool steps are not', () => {
    let fail = true;
    const script: TurnScript = () => (fail ? { rounds: [round], end: { kind: 'failed', code: 'model_failed', message: 'down', partialText: '' } } : 'fine');
    const { state } = chatWith(['What time is it?'], { script });
    fail = false;
    const { plan } = runTurn(state, { messageId: 'm1', message: 'and now?' }, script, clock(new Date('2026-01-16T00:00:00Z')));
    expect(plan?.prompt).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'What time is it?' },
      { role: 'assistant', content: 'Let me check.', toolCalls: round.toolCalls },
      { role: 'tool', toolCallId: 'call-1', content: round.results[0]?.content },
      { role: 'tool', toolCallId: 'call-2', content: round.results[1]?.content },
      { role: 'user', content: 'and now?' },
    ]);
  });

  it('never starts a window with tool results cut from the call they answer', () => {
    const big = 'result '.repeat(60);
    const results = [1, 2, 3].map((k) => ({ toolCallId: `call-${k}`, name: 'get_todos', content: big, failed: false }));
    const calls = [1, 2, 3].map((k) => ({ id: `call-${k}`, name: 'get_todos', arguments: '{}' }));
    const { state } = chatWith(['list them'], { script: () => ({ rounds: [{ text: '', toolCalls: calls, results }], end: { kind: 'replied', text: 'done' } }) });
    const next = acceptMessage(state, { messageId: 'm1', message: 'thanks' }, new Date('2026-01-16T00:00:00Z'));
    // A budget that reaches back into the results but not to the call that asked for them.
    const resultTokens = countMessageTokens(big);
    const budget = countMessageTokens('Be brief.') + 3 + countMessageTokens('thanks') + countMessageTokens('done') + 2 * resultTokens + 1;
    const { plan } = startNextTurn(next, turnOptions({ historyTokenBudget: budget }), new Date('2026-01-16T00:00:01Z'));
    expect(plan?.prompt.map((m) => m.role)).toEqual(['system', 'assistant', 'user']);
    expect(plan?.prompt[1]).toEqual({ role: 'assistant', content: 'done' });
  });
});
