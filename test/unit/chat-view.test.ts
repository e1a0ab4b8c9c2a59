import { describe, expect, it } from 'vitest';
import type { ChatState } from '../../src/chat/state';
import { toChatView } from '../../src/chat/view';

const state: ChatState = {
  instructions: 'Be kind.',
  createdAt: '2026-01-15T22:00:00.000Z',
  lastUpdatedAt: '2026-01-15T22:00:03.000Z',
  totalTokens: 42,
  messages: [
    { id: 'm1', role: 'user', content: 'Hello', createdAt: '2026-01-15T22:00:01.000Z', tokens: 5 },
    { id: 'm1.reply', role: 'assistant', content: 'Hi', createdAt: '2026-01-15T22:00:02.000Z', replyTo: 'm1', tokens: 5 },
    { id: 'm2', role: 'user', content: 'Again', createdAt: '2026-01-15T22:00:02.500Z', tokens: 5 },
    { id: 'm2.reply', role: 'assistant', content: '', createdAt: '2026-01-15T22:00:03.000Z', replyTo: 'm2', status: 'failed', error: 'model down', errorCode: 'model_failed', tokens: 0 },
  ],
};

describe('toChatView', () => {
  it("uses the seed's field names and hides internal fields", () => {
    const view = toChatView('abc', state);
    expect(view).toMatchObject({ id: 'abc', exists: true, instructions: 'Be kind.', totalMessages: 4, totalTokens: 42, createdAt: state.createdAt, lastUpdatedAt: state.lastUpdatedAt });
    expect(view.recentMessages[0]).toEqual({ id: 'm1', role: 'user', content: 'Hello', createdAt: '2026-01-15T22:00:01.000Z' });
    expect(view.recentMessages[3]).toEqual({ id: 'm2.reply', role: 'assistant', content: '', createdAt: '2026-01-15T22:00:03.000Z', replyTo: 'm2', status: 'failed', error: 'model down' });
  });

  it('returns only messages strictly newer than the timestamp', () => {
    const ids = (ms?: number) => toChatView('abc', state, ms).recentMessages.map((m) => m.id);
    expect(ids()).toEqual(['m1', 'm1.reply', 'm2', 'm2.reply']);
    expect(ids(Date.parse('2026-01-15T22:00:02.000Z'))).toEqual(['m2', 'm2.reply']);
    expect(ids(Date.parse('2026-01-15T22:00:01.999Z'))).toEqual(['m1.reply', 'm2', 'm2.reply']);
    expect(ids(Date.parse('2026-01-15T21:00:00Z'))).toHaveLength(4);
    expect(ids(Date.parse('2026-01-15T22:00:03.000Z'))).toEqual([]);
    expect(toChatView('abc', state, 0).totalMessages).toBe(4);
  });
});
