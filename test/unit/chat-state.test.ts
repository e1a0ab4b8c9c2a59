import { describe, expect, it } from 'vitest';
import { buildPrompt, createOrUpdate, DEFAULT_INSTRUCTIONS, postMessage, replyTo, type ChatState, type TurnModel } from '../../src/chat/state';
import { parseChatState } from '../../src/chat/schema';
import { countMessageTokens } from '../../src/chat/tokens';
import { ModelTimeoutError } from '../../src/errors';

const t0 = new Date('2026-01-15T22:00:00.000Z');
const clock = (start = t0) => {
  let ms = start.getTime();
  return () => new Date((ms += 1000));
};
const echo: TurnModel = async (prompt) => ({ text: `re: ${prompt.at(-1)?.content ?? ''}`, totalTokens: 10 });

async function chatWith(turns: string[], options: { budget?: number; model?: TurnModel } = {}) {
  let state = createOrUpdate(undefined, { instructions: 'Be brief.' }, t0);
  const now = clock();
  const prompts = [];
  for (const [i, message] of turns.entries()) {
    const result = await postMessage(state, { messageId: `m${i}`, message }, options.model ?? echo, { historyTokenBudget: options.budget ?? 4000, now });
    state = result.state;
    prompts.push(result.prompt);
  }
  return { state, prompts };
}

describe('createOrUpdate', () => {
  it('creates a chat with default instructions', () => {
    expect(createOrUpdate(undefined, {}, t0)).toEqual({
      schemaVersion: 2,
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
    });
  });

  it('puts instructions given at create at the head of the history as a system message', () => {
    const created = createOrUpdate(undefined, { instructions: 'Be brief.' }, t0);
    expect(created.recent).toEqual([{ id: 's-0001', role: 'system', content: 'Be brief.', createdAt: t0.toISOString(), tokens: countMessageTokens('Be brief.') }]);
    expect(created.instructions).toBe('Be brief.');
  });

  it('updates instructions keeping the history, and appends the change as a system message (re-creating never wipes a chat)', async () => {
    const { state } = await chatWith(['hi']);
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

  it('sends only the current instructions to the model, never earlier ones from the history', async () => {
    const { state } = await chatWith(['one']);
    const changed = createOrUpdate(state, { instructions: 'Answer in French.' }, new Date('2026-01-16T00:00:00Z'));
    const { prompt } = await postMessage(changed, { messageId: 'm9', message: 'two' }, echo, { historyTokenBudget: 4000, now: clock(new Date('2026-01-16T01:00:00Z')) });
    expect(prompt?.map((m) => [m.role, m.content])).toEqual([
      ['system', 'Answer in French.'],
      ['user', 'one'],
      ['assistant', 're: one'],
      ['user', 'two'],
    ]);
  });
});

describe('postMessage', () => {
  it('appends the user message and the reply, with usage and ordered timestamps', async () => {
    const { state } = await chatWith(['Hello']);
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
  });

  it('sends the instructions and the earlier turns in the prompt', async () => {
    const { prompts } = await chatWith(['one', 'two', 'three']);
    expect(prompts[2]).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'one' },
      { role: 'assistant', content: 're: one' },
      { role: 'user', content: 'two' },
      { role: 'assistant', content: 're: two' },
      { role: 'user', content: 'three' },
    ]);
  });

  it('stores a repeated message id once and does not call the model again', async () => {
    const { state } = await chatWith(['Hello']);
    let calls = 0;
    const again = await postMessage(state, { messageId: 'm0', message: 'Hello' }, async () => ({ text: 'x', totalTokens: (calls++, 1) }), {
      historyTokenBudget: 4000,
      now: clock(),
    });
    expect(again.state).toBe(state);
    expect(calls).toBe(0);
  });

  it('records a failed turn, keeps the user message, and leaves the chat usable', async () => {
    let fail = true;
    const flaky: TurnModel = async (prompt) => {
      if (fail) throw new ModelTimeoutError('The model did not answer in time (after 4 attempts).');
      return { text: `ok ${prompt.length}`, totalTokens: 5 };
    };
    let { state } = await chatWith(['first'], { model: flaky });
    expect(state.recent[2]).toMatchObject({ role: 'assistant', status: 'failed', errorCode: 'model_timeout', replyTo: 'm0', content: '' });
    expect(state.recent[2]?.error).toContain('did not answer in time');
    expect(state.totalTokens).toBe(0);
    fail = false;
    const next = await postMessage(state, { messageId: 'm1', message: 'second' }, flaky, { historyTokenBudget: 4000, now: clock(new Date('2026-01-16T00:00:00Z')) });
    state = next.state;
    expect(replyTo(state, 'm1')?.content).toBe('ok 3');
    // the failed record is not sent to the model; the user message that failed is
    expect(next.prompt?.map((m) => m.content)).toEqual(['Be brief.', 'first', 'second']);
  });

  it('keeps timestamps strictly increasing even when the clock stands still or goes back', async () => {
    let state: ChatState = createOrUpdate(undefined, {}, t0);
    for (let i = 0; i < 5; i++) {
      state = (await postMessage(state, { messageId: `m${i}`, message: 'x' }, echo, { historyTokenBudget: 4000, now: () => new Date(t0.getTime() - i) })).state;
    }
    const times = state.recent.map((m) => Date.parse(m.createdAt));
    expect(times.every((t, i) => i === 0 || t > times[i - 1]!)).toBe(true);
  });
});

describe('buildPrompt (history window)', () => {
  it('keeps prompts within the budget however long the chat grows', async () => {
    const budget = 300;
    const { prompts } = await chatWith(
      Array.from({ length: 200 }, (_, i) => `message number ${i} with a few more words to make it longer`),
      { budget },
    );
    for (const prompt of prompts) {
      const tokens = prompt!.reduce((sum, m) => sum + countMessageTokens(m.content), 3);
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
});
