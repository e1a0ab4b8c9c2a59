import { describe, expect, it } from 'vitest';
import { createOrUpdate, type ChatMessage, type ChatState } from '../../src/chat/state';
import { toChatView } from '../../src/chat/view';

const ALL_TOOLS = ['get_current_time', 'add_todo'];
const messages: ChatMessage[] = [
  { id: 'm1', role: 'user', content: 'Hello', createdAt: '2026-01-15T22:00:01.000Z', tokens: 5 },
  { id: 'm1.reply', role: 'assistant', content: 'Hi', createdAt: '2026-01-15T22:00:02.000Z', replyTo: 'm1', tokens: 5, streamAttempt: 'a1' },
  { id: 'm2', role: 'user', content: 'Again', createdAt: '2026-01-15T22:00:02.500Z', tokens: 5 },
  { id: 'm2.reply', role: 'assistant', content: '', createdAt: '2026-01-15T22:00:03.000Z', replyTo: 'm2', status: 'failed', error: 'model down', errorCode: 'model_failed', tokens: 0 },
];
const state: ChatState = {
  ...createOrUpdate(undefined, { instructions: 'Be kind.' }, new Date('2026-01-15T22:00:00.000Z')),
  lastUpdatedAt: '2026-01-15T22:00:03.000Z',
  totalTokens: 42,
  totalMessages: 1000,
  recent: messages,
};

describe('toChatView', () => {
  it("uses the seed's field names and hides internal fields", () => {
    const view = toChatView('abc', state, messages, ALL_TOOLS);
    expect(view).toMatchObject({ id: 'abc', exists: true, instructions: 'Be kind.', totalMessages: 1000, totalTokens: 42, createdAt: state.createdAt, lastUpdatedAt: state.lastUpdatedAt });
    expect(view.recentMessages[0]).toEqual({ id: 'm1', role: 'user', content: 'Hello', createdAt: '2026-01-15T22:00:01.000Z' });
    expect(view.recentMessages[1]).toEqual({ id: 'm1.reply', role: 'assistant', content: 'Hi', createdAt: '2026-01-15T22:00:02.000Z', replyTo: 'm1' });
    expect(view.recentMessages[3]).toEqual({ id: 'm2.reply', role: 'assistant', content: '', createdAt: '2026-01-15T22:00:03.000Z', replyTo: 'm2', status: 'failed', error: 'model down' });
  });

  it('counts the whole history, not only the messages shown', () => {
    expect(toChatView('abc', state, messages.slice(2), ALL_TOOLS).totalMessages).toBe(1000);
  });

  it('shows tool rounds: the calls the model asked for and each result, with its tool', () => {
    const round: ChatMessage[] = [
      { id: 'm3.reply.1', role: 'assistant', content: '', createdAt: '2026-01-15T22:00:04.000Z', replyTo: 'm3', toolCalls: [{ id: 'c1', name: 'get_current_time', arguments: '{}' }], tokens: 9, streamAttempt: 'a2' },
      { id: 'm3.reply.1.1', role: 'tool', content: '{"error":"no"}', createdAt: '2026-01-15T22:00:05.000Z', replyTo: 'm3', toolCallId: 'c1', name: 'get_current_time', status: 'failed', tokens: 6 },
    ];
    expect(toChatView('abc', state, round, ALL_TOOLS).recentMessages).toEqual([
      { id: 'm3.reply.1', role: 'assistant', content: '', createdAt: '2026-01-15T22:00:04.000Z', replyTo: 'm3', toolCalls: [{ id: 'c1', name: 'get_current_time', arguments: '{}' }] },
      { id: 'm3.reply.1.1', role: 'tool', content: '{"error":"no"}', createdAt: '2026-01-15T22:00:05.000Z', replyTo: 'm3', toolCallId: 'c1', name: 'get_current_time', status: 'failed' },
    ]);
  });

  it("shows the messages waiting for their turn in order, the running turn, and the chat's tools", () => {
    const idle = toChatView('abc', state, messages, ALL_TOOLS);
    expect(idle).toMatchObject({ pendingMessages: [], tools: ALL_TOOLS });
    expect(idle.runningTurn).toBeUndefined();
    expect('runningTurn' in idle).toBe(false);

    const busy: ChatState = {
      ...state,
      tools: ['get_current_time'],
      turn: { messageId: 'm3', instanceId: 'turn~abc~m3', startedAt: '2026-01-15T22:00:04.000Z', stream: true },
      queue: [
        { id: 'm4', content: 'next', acceptedAt: '2026-01-15T22:00:05.000Z', stream: true },
        { id: 'm5', content: 'after', acceptedAt: '2026-01-15T22:00:06.000Z' },
      ],
    };
    const view = toChatView('abc', busy, messages, ALL_TOOLS);
    expect(view.pendingMessages).toEqual([
      { id: 'm4', content: 'next', acceptedAt: '2026-01-15T22:00:05.000Z' },
      { id: 'm5', content: 'after', acceptedAt: '2026-01-15T22:00:06.000Z' },
    ]);
    expect(view.runningTurn).toEqual({ messageId: 'm3', startedAt: '2026-01-15T22:00:04.000Z', status: 'running' });
    expect(view.tools).toEqual(['get_current_time']);
    // A copy: a client changing the view does not change the chat.
    view.tools.push('x');
    expect(busy.tools).toEqual(['get_current_time']);
  });
});
