import { describe, expect, it } from 'vitest';
import { createOrUpdate, type ChatMessage, type ChatState } from '../../src/chat/state';
import { toChatView } from '../../src/chat/view';

const messages: ChatMessage[] = [
  { id: 'm1', role: 'user', content: 'Hello', createdAt: '2026-01-15T22:00:01.000Z', tokens: 5 },
  { id: 'm1.reply', role: 'assistant', content: 'Hi', createdAt: '2026-01-15T22:00:02.000Z', replyTo: 'm1', tokens: 5 },
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
    const view = toChatView('abc', state, messages);
    expect(view).toMatchObject({ id: 'abc', exists: true, instructions: 'Be kind.', totalMessages: 1000, totalTokens: 42, createdAt: state.createdAt, lastUpdatedAt: state.lastUpdatedAt });
    expect(view.recentMessages[0]).toEqual({ id: 'm1', role: 'user', content: 'Hello', createdAt: '2026-01-15T22:00:01.000Z' });
    expect(view.recentMessages[3]).toEqual({ id: 'm2.reply', role: 'assistant', content: '', createdAt: '2026-01-15T22:00:03.000Z', replyTo: 'm2', status: 'failed', error: 'model down' });
  });

  it('counts the whole history, not only the messages shown', () => {
    expect(toChatView('abc', state, messages.slice(2)).totalMessages).toBe(1000);
  });
});
