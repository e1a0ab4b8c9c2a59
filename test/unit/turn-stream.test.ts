import { afterEach, describe, expect, it, vi } from 'vitest';
import { createOrUpdate, type ChatMessage, type ChatState } from '../../src/chat/state';
import {
  newAttemptId,
  parseStreamPosition,
  tailTurn,
  TurnStreamPublisher,
  type StreamPosition,
  type TurnEvent,
  type TurnStreamRecord,
  type TurnStreamStore,
} from '../../src/chat/turnStream';

/** Records in memory, in key order, as the table keeps them. */
function memoryStreams() {
  const rows = new Map<string, TurnStreamRecord[]>();
  let appends = 0;
  const store: TurnStreamStore = {
    async append(chatId, messageId, records) {
      appends++;
      const key = `${chatId}/${messageId}`;
      rows.set(key, [...(rows.get(key) ?? []), ...records].sort((a, b) => (a.key < b.key ? -1 : 1)));
    },
    async readAfter(chatId, messageId, afterKey) {
      return (rows.get(`${chatId}/${messageId}`) ?? []).filter((r) => afterKey === undefined || r.key > afterKey);
    },
    async deleteTurn(chatId, messageId) {
      rows.delete(`${chatId}/${messageId}`);
    },
  };
  return { store, rows, appends: () => appends };
}

const at = '2026-01-15T22:00:01.000Z';
function chatWithReply(reply: Partial<ChatMessage> | undefined): ChatState {
  const base = createOrUpdate(undefined, {}, new Date('2026-01-15T22:00:00.000Z'));
  const user: ChatMessage = { id: 'm1', role: 'user', content: 'hi', createdAt: at, tokens: 5 };
  const recent = reply === undefined ? [user] : [user, { id: 'm1.reply', role: 'assistant', content: '', replyTo: 'm1', createdAt: '2026-01-15T22:00:02.000Z', tokens: 7, ...reply } as ChatMessage];
  return { ...base, recent, totalMessages: recent.length, recentMessageIds: reply === undefined ? [] : ['m1'] };
}

/** Runs tailTurn over records and a chat that the test changes between reads. */
async function tail(
  streams: ReturnType<typeof memoryStreams>,
  chat: () => ChatState | undefined,
  from?: StreamPosition,
  onIdle: (events: TurnEvent[]) => Promise<void> | void = () => {},
): Promise<TurnEvent[]> {
  const events: TurnEvent[] = [];
  let clock = 0;
  for await (const e of tailTurn(
    {
      readRecords: (afterKey) => streams.store.readAfter('c', 'm1', afterKey),
      readChat: async () => chat(),
      findReply: async (state) => state.recent.find((m) => m.replyTo === 'm1'),
      changed: async () => {
        clock += 1_000;
        await onIdle(events);
        return false;
      },
      now: () => clock,
    },
    'm1',
    from,
  )) {
    events.push(e);
  }
  return events;
}
const text = (events: TurnEvent[]) => events.reduce((s, e) => (e.event === 'reset' ? '' : e.event === 'delta' ? s + e.data.text : s), '');
const start = (attempt: string, seq = 0): TurnStreamRecord => ({ key: `${attempt}~${String(seq).padStart(6, '0')}`, attempt, kind: 'start', userMessageId: 'm1', userCreatedAt: at });
const piece = (attempt: string, seq: number, t: string): TurnStreamRecord => ({ key: `${attempt}~${String(seq).padStart(6, '0')}`, attempt, kind: 'text', text: t });
const end = (attempt: string, seq: number): TurnStreamRecord => ({ key: `${attempt}~${String(seq).padStart(6, '0')}`, attempt, kind: 'end' });

describe('tailTurn', () => {
  it('follows a turn as it is published, then ends with the stored reply', async () => {
    const streams = memoryStreams();
    let state = chatWithReply(undefined);
    const script = [[start('a1'), piece('a1', 1, 'Hel')], [piece('a1', 2, 'lo ')], [piece('a1', 3, 'there'), end('a1', 4)]];
    const events = await tail(streams, () => state, undefined, async () => {
      const next = script.shift();
      if (next !== undefined) await streams.store.append('c', 'm1', next);
      else state = chatWithReply({ content: 'Hello there', streamAttempt: 'a1' });
    });
    expect(events.map((e) => e.event)).toEqual(['message', 'delta', 'delta', 'delta', 'done']);
    expect(text(events)).toBe('Hello there');
    expect(events.map((e) => ('id' in e ? e.id : ''))).toEqual(['a1:0', 'a1:3', 'a1:6', 'a1:11', 'a1:done']);
    expect(events[0]).toMatchObject({ data: { id: 'm1', role: 'user', createdAt: at } });
    expect(events.at(-1)).toMatchObject({ data: { id: 'm1.reply', replyTo: 'm1', tokens: 7 } });
  });

  it('resumes after an event id with exactly the rest, live or from the stored reply', async () => {
    const streams = memoryStreams();
    await streams.store.append('c', 'm1', [start('a1'), piece('a1', 1, 'Hello '), piece('a1', 2, 'world'), end('a1', 3)]);
    const done = chatWithReply({ content: 'Hello world', streamAttempt: 'a1' });
    const live = await tail(streams, () => done, { attempt: 'a1', offset: 6 });
    expect(live.map((e) => e.event)).toEqual(['delta', 'done']);
    expect(text(live)).toBe('world');
    streams.rows.clear(); // the next turn removed the records
    const stored = await tail(streams, () => done, { attempt: 'a1', offset: 3 });
    expect(text(stored)).toBe('lo world');
    expect(stored.map((e) => e.event)).toEqual(['delta', 'done']);
    expect(await tail(streams, () => done, { attempt: 'a1', offset: 'done' })).toEqual([]);
  });

  it('says reset and starts over when the turn runs again under a new attempt', async () => {
    const streams = memoryStreams();
    await streams.store.append('c', 'm1', [start('a1'), piece('a1', 1, 'first try, cut')]);
    let state = chatWithReply(undefined);
    let step = 0;
    const events = await tail(streams, () => state, undefined, async () => {
      step++;
      if (step === 1) await streams.store.append('c', 'm1', [start('a2'), piece('a2', 1, 'second '), piece('a2', 2, 'try'), end('a2', 3)]);
      if (step === 2) state = chatWithReply({ content: 'second try', streamAttempt: 'a2' });
    });
    expect(events.map((e) => e.event)).toEqual(['message', 'delta', 'reset', 'message', 'delta', 'delta', 'done']);
    expect(text(events)).toBe('second try');
    // A client that had the first attempt's text and resumes after the turn is done: reset, then all of it.
    const resumed = await tail(streams, () => state, { attempt: 'a1', offset: 5 });
    expect(resumed.map((e) => e.event)).toEqual(['reset', 'message', 'delta', 'delta', 'done']);
    expect(text(resumed)).toBe('second try');
  });

  it('says reset to a client resuming another attempt after the records are gone', async () => {
    const streams = memoryStreams(); // the next turn removed the records
    const events = await tail(streams, () => chatWithReply({ content: 'second try', streamAttempt: 'a2' }), { attempt: 'a1', offset: 5 });
    expect(events.map((e) => e.event)).toEqual(['reset', 'message', 'delta', 'done']);
    expect(text(events)).toBe('second try');
  });

  it('streams a turn that published nothing from the stored reply, and a failed turn as an error event', async () => {
    const streams = memoryStreams();
    const plain = await tail(streams, () => chatWithReply({ content: 'stored text' }));
    expect(plain.map((e) => [e.event, 'id' in e ? e.id : ''])).toEqual([['message', 'stored:0'], ['delta', 'stored:11'], ['done', 'stored:done']]);
    const failed = await tail(streams, () => chatWithReply({ content: 'partial', status: 'failed', error: 'The model stream ended early.', errorCode: 'model_failed', streamAttempt: 'a9' }));
    expect(failed.map((e) => e.event)).toEqual(['message', 'delta', 'error']);
    expect(failed.at(-1)).toMatchObject({ data: { error: { code: 'model_failed', message: 'The model stream ended early.' } } });
    const gone = await tail(streams, () => undefined);
    expect(gone).toEqual([expect.objectContaining({ event: 'error', data: expect.objectContaining({ error: expect.objectContaining({ code: 'chat_not_found' }) }) })]);
  });

  it('parses event ids it hands out, and nothing else', () => {
    expect(parseStreamPosition('a1b2:120')).toEqual({ attempt: 'a1b2', offset: 120 });
    expect(parseStreamPosition('stored:done')).toEqual({ attempt: 'stored', offset: 'done' });
    for (const bad of [null, '', 'x', 'a1:-1', 'A1:3', 'a1:3:4', `${'a'.repeat(41)}:1`]) expect(parseStreamPosition(bad)).toBeUndefined();
  });
});

describe('TurnStreamPublisher', () => {
  afterEach(() => vi.useRealTimers());

  it('publishes the first text at once, then in growing batches, in order, with a bounded number of writes', async () => {
    vi.useFakeTimers();
    const streams = memoryStreams();
    const attempt = newAttemptId(Date.now());
    const publisher = new TurnStreamPublisher(streams.store, 'c', 'm1', attempt, () => {});
    publisher.start(at);
    let expected = '';
    for (let i = 0; i < 2_000; i++) {
      publisher.text(`t${i} `);
      expected += `t${i} `;
      if (i === 0) await vi.advanceTimersByTimeAsync(0);
      if (i === 0) expect(streams.rows.get('c/m1')?.map((r) => r.kind)).toEqual(['start', 'text']);
      await vi.advanceTimersByTimeAsync(10); // 20 s of a model producing 100 pieces a second
    }
    await publisher.end();
    const records = streams.rows.get('c/m1') ?? [];
    expect(records.map((r) => (r.kind === 'text' ? r.text : '')).join('')).toBe(expected);
    expect(records.at(-1)?.kind).toBe('end');
    expect(streams.appends()).toBeLessThan(45);
  });

  it('orders a later attempt after an earlier one', () => {
    expect(newAttemptId(1_000, () => 0.99) < newAttemptId(1_001, () => 0)).toBe(true);
  });
});
