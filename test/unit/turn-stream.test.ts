import { afterEach, describe, expect, it, vi } from 'vitest';
import { turnEntries } from '../../src/chat/service';
import { createOrUpdate, type ChatMessage, type ChatState, type ToolCallRecord, type ToolResult } from '../../src/chat/state';
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
  const stops = new Set<string>();
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
      stops.delete(`${chatId}/${messageId}`);
    },
    async requestStop(chatId, messageId) {
      stops.add(`${chatId}/${messageId}`);
    },
    async stopRequested(chatId, messageId) {
      return stops.has(`${chatId}/${messageId}`);
    },
  };
  return { store, rows, appends: () => appends };
}

const at = '2026-01-15T22:00:01.000Z';
const user: ChatMessage = { id: 'm1', role: 'user', content: 'hi', createdAt: at, tokens: 5 };

/** The chat with the user message and, once the turn is done, its entries (tool rounds, then the reply). */
function chatWithTurn(entries: ChatMessage[] | undefined): ChatState {
  const base = createOrUpdate(undefined, {}, new Date('2026-01-15T22:00:00.000Z'));
  const recent = [user, ...(entries ?? [])];
  return { ...base, recent, totalMessages: recent.length, recentMessageIds: ['m1'], ...(entries === undefined ? { turn: { messageId: 'm1', instanceId: 'turn~c~m1', startedAt: at } } : {}) };
}
function reply(fields: Partial<ChatMessage>): ChatMessage {
  return { id: 'm1.reply', role: 'assistant', content: '', replyTo: 'm1', createdAt: '2026-01-15T22:00:09.000Z', tokens: 7, ...fields };
}
const chatWithReply = (fields: Partial<ChatMessage> | undefined) => chatWithTurn(fields === undefined ? undefined : [reply(fields)]);

// One tool round: the model says something, calls two tools; then it answers.
const calls: ToolCallRecord[] = [
  { id: 'call-1', name: 'get_current_time', arguments: '{}' },
  { id: 'call-2', name: 'get_todos', arguments: '{}' },
];
const results: ToolResult[] = [
  { toolCallId: 'call-1', name: 'get_current_time', content: '{"utc":"2026-01-15T22:00:05.000Z"}', failed: false },
  { toolCallId: 'call-2', name: 'get_todos', content: '{"error":"down"}', failed: true },
];
/** The finished tool turn as the chat stores it; `attempts` are the rounds' published attempts (none: not streamed). */
function toolTurn(attempts: [string, string] | undefined, answer = 'Done.'): ChatMessage[] {
  const entries: ChatMessage[] = [
    { id: 'm1.reply.1', role: 'assistant', content: 'Let me check. ', replyTo: 'm1', createdAt: '2026-01-15T22:00:02.000Z', toolCalls: calls, tokens: 20 },
    ...results.map((r, k): ChatMessage => ({ id: `m1.reply.1.${k + 1}`, role: 'tool', content: r.content, replyTo: 'm1', createdAt: `2026-01-15T22:00:0${3 + k}.000Z`, toolCallId: r.toolCallId, name: r.name, tokens: 9, ...(r.failed ? { status: 'failed' as const } : {}) })),
    reply({ content: answer }),
  ];
  if (attempts !== undefined) {
    entries[0]!.streamAttempt = attempts[0];
    entries[3]!.streamAttempt = attempts[1];
  }
  return entries;
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
      findTurn: async (state) => turnEntries(state.recent, 'm1'),
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
/** The reply text as a client assembles it: deltas after the last reset. */
const text = (events: TurnEvent[]) => events.reduce((s, e) => (e.event === 'reset' ? '' : e.event === 'delta' ? s + e.data.text : s), '');
/**
 * Each round's text as a round-aware client assembles it: a round starts with its tool results, and a
 * reset voids the text of the round it happens in.
 */
function roundTexts(events: TurnEvent[], round = 1): string[] {
  const texts: string[] = [];
  for (const e of events) {
    if (e.event === 'tool-result') round = e.data.round;
    texts[round - 1] ??= '';
    if (e.event === 'reset') texts[round - 1] = '';
    if (e.event === 'delta') texts[round - 1] += e.data.text;
  }
  return texts;
}
const ids = (events: TurnEvent[]) => events.map((e) => ('id' in e ? `${e.event} ${e.id}` : e.event));
const key = (attempt: string, seq: number) => `${attempt}~${String(seq).padStart(6, '0')}`;
const start = (attempt: string, seq = 0, round = 1, toolResults?: ToolResult[]): TurnStreamRecord => ({ key: key(attempt, seq), attempt, kind: 'start', round, userMessageId: 'm1', userCreatedAt: at, ...(toolResults === undefined ? {} : { toolResults }) });
const piece = (attempt: string, seq: number, t: string): TurnStreamRecord => ({ key: key(attempt, seq), attempt, kind: 'text', text: t });
const end = (attempt: string, seq: number, toolCalls?: ToolCallRecord[]): TurnStreamRecord => ({ key: key(attempt, seq), attempt, kind: 'end', ...(toolCalls === undefined ? {} : { toolCalls }) });
const position = (id: string): StreamPosition => parseStreamPosition(id) as StreamPosition;

/** Round 1 (attempt a1): text, two calls; round 2 (attempt a2): the two results, 'Done.'. */
const toolRecords = {
  round1: [start('a1'), piece('a1', 1, 'Let me check. '), end('a1', 2, calls)],
  round2: [start('a2', 0, 2, results), piece('a2', 1, 'Done.'), end('a2', 2)],
};

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
    expect(ids(events)).toEqual(['message a1:r0', 'delta a1:3', 'delta a1:6', 'delta a1:11', 'done a1:done']);
    expect(text(events)).toBe('Hello there');
    expect(events[0]).toMatchObject({ data: { id: 'm1', role: 'user', createdAt: at } });
    expect(events.at(-1)).toMatchObject({ data: { id: 'm1.reply', replyTo: 'm1', tokens: 7 } });
  });

  it('resumes after an event id with exactly the rest while the records are there', async () => {
    const streams = memoryStreams();
    await streams.store.append('c', 'm1', [start('a1'), piece('a1', 1, 'Hello '), piece('a1', 2, 'world'), end('a1', 3)]);
    const done = chatWithReply({ content: 'Hello world', streamAttempt: 'a1' });
    const live = await tail(streams, () => done, position('a1:6'));
    expect(ids(live)).toEqual(['delta a1:11', 'done a1:done']);
    expect(text(live)).toBe('world');
    expect(ids(await tail(streams, () => done, position('a1:r0')))).toEqual(['delta a1:11', 'done a1:done']);
    expect(await tail(streams, () => done, position('a1:done'))).toEqual([]);
  });

  it('continues a client resuming once the records are gone from the stored reply of its attempt', async () => {
    const streams = memoryStreams(); // the next turn removed the records
    const done = chatWithReply({ content: 'Hello world', streamAttempt: 'a1' });
    const stored = await tail(streams, () => done, position('a1:3'));
    expect(ids(stored)).toEqual(['delta a1:11', 'done a1:done']);
    expect(text(stored)).toBe('lo world');
  });

  it('says reset and starts the round over when its model call runs again under a new attempt', async () => {
    const streams = memoryStreams();
    await streams.store.append('c', 'm1', [start('a1'), piece('a1', 1, 'first try, cut')]);
    let state = chatWithReply(undefined);
    let step = 0;
    const events = await tail(streams, () => state, undefined, async () => {
      step++;
      if (step === 1) await streams.store.append('c', 'm1', [start('a2'), piece('a2', 1, 'second '), piece('a2', 2, 'try'), end('a2', 3)]);
      if (step === 2) state = chatWithReply({ content: 'second try', streamAttempt: 'a2' });
    });
    expect(ids(events)).toEqual(['message a1:r0', 'delta a1:14', 'reset a2:0', 'delta a2:10', 'done a2:done']);
    expect(text(events)).toBe('second try');
    // A client that had the first attempt's text and resumes after the turn is done: reset, then all of it.
    const resumed = await tail(streams, () => state, position('a1:5'));
    expect(ids(resumed)).toEqual(['reset a2:0', 'delta a2:10', 'done a2:done']);
    expect(text(resumed)).toBe('second try');
  });

  it('says reset to a client resuming another attempt after the records are gone', async () => {
    const streams = memoryStreams(); // the next turn removed the records
    const events = await tail(streams, () => chatWithReply({ content: 'second try', streamAttempt: 'a2' }), position('a1:5'));
    expect(events.map((e) => e.event)).toEqual(['reset', 'message', 'delta', 'done']);
    expect(text(events)).toBe('second try');
  });

  it('streams a turn that published nothing from the stored reply, and a failed turn as an error event', async () => {
    const streams = memoryStreams();
    const plain = await tail(streams, () => chatWithReply({ content: 'stored text' }));
    expect(ids(plain)).toEqual(['message stored:r0', 'delta stored:11', 'done stored:done']);
    const failed = await tail(streams, () => chatWithReply({ content: 'partial', status: 'failed', error: 'The model stream ended early.', errorCode: 'model_failed', streamAttempt: 'a9' }));
    expect(ids(failed)).toEqual(['message stored:r0', 'delta a9:7', 'error a9:done']);
    expect(failed.at(-1)).toMatchObject({ data: { id: 'm1.reply', error: { code: 'model_failed', message: 'The model stream ended early.' } } });
    const gone = await tail(streams, () => undefined);
    expect(gone).toEqual([expect.objectContaining({ event: 'error', data: expect.objectContaining({ error: expect.objectContaining({ code: 'chat_not_found' }) }) })]);
  });

  it('follows a turn with a tool round: its text, the calls, their results, the answer', async () => {
    const streams = memoryStreams();
    let state = chatWithTurn(undefined);
    const script = [toolRecords.round1.slice(0, 2), toolRecords.round1.slice(2), toolRecords.round2.slice(0, 1), toolRecords.round2.slice(1)];
    const events = await tail(streams, () => state, undefined, async () => {
      const next = script.shift();
      if (next !== undefined) await streams.store.append('c', 'm1', next);
      else state = chatWithTurn(toolTurn(['a1', 'a2']));
    });
    expect(ids(events)).toEqual([
      'message a1:r0',
      'delta a1:14',
      'tool-call a1:c1',
      'tool-call a1:c2',
      'tool-result a2:r1',
      'tool-result a2:r2',
      'delta a2:5',
      'done a2:done',
    ]);
    expect(events.filter((e) => e.event === 'tool-call').map((e) => e.event === 'tool-call' && e.data)).toEqual([
      { round: 1, toolCallId: 'call-1', name: 'get_current_time', arguments: '{}' },
      { round: 1, toolCallId: 'call-2', name: 'get_todos', arguments: '{}' },
    ]);
    expect(events.filter((e) => e.event === 'tool-result').map((e) => e.event === 'tool-result' && e.data)).toEqual([
      { round: 2, toolCallId: 'call-1', name: 'get_current_time', content: results[0]?.content },
      { round: 2, toolCallId: 'call-2', name: 'get_todos', content: '{"error":"down"}', status: 'failed' },
    ]);
    expect(roundTexts(events)).toEqual(['Let me check. ', 'Done.']);
  });

  it('resumes mid-round after a tool call or a tool result with exactly the rest', async () => {
    const streams = memoryStreams();
    await streams.store.append('c', 'm1', [...toolRecords.round1, ...toolRecords.round2]);
    const done = chatWithTurn(toolTurn(['a1', 'a2']));
    const afterCall = await tail(streams, () => done, position('a1:c1'));
    expect(ids(afterCall)).toEqual(['tool-call a1:c2', 'tool-result a2:r1', 'tool-result a2:r2', 'delta a2:5', 'done a2:done']);
    const afterResult = await tail(streams, () => done, position('a2:r1'));
    expect(ids(afterResult)).toEqual(['tool-result a2:r2', 'delta a2:5', 'done a2:done']);
    const afterText = await tail(streams, () => done, position('a1:14'));
    expect(ids(afterText)).toEqual(['tool-call a1:c1', 'tool-call a1:c2', 'tool-result a2:r1', 'tool-result a2:r2', 'delta a2:5', 'done a2:done']);
    // The same from the stored turn, when the turn ended before the client came back with the records still there.
    const whileRunning = chatWithTurn(undefined);
    let state = whileRunning;
    const live = await tail(streams, () => state, position('a1:c2'), () => {
      state = done;
    });
    expect(ids(live)).toEqual(['tool-result a2:r1', 'tool-result a2:r2', 'delta a2:5', 'done a2:done']);
  });

  it('resets only the round whose model call runs again, keeping the rounds and results before it', async () => {
    const streams = memoryStreams();
    await streams.store.append('c', 'm1', [...toolRecords.round1, start('a2', 0, 2, results), piece('a2', 1, 'Do')]);
    let state = chatWithTurn(undefined);
    let step = 0;
    const events = await tail(streams, () => state, undefined, async () => {
      step++;
      if (step === 1) await streams.store.append('c', 'm1', [start('a3', 0, 2, results), piece('a3', 1, 'Done again.'), end('a3', 2)]);
      if (step === 2) state = chatWithTurn(toolTurn(['a1', 'a3'], 'Done again.'));
    });
    expect(ids(events)).toEqual([
      'message a1:r0',
      'delta a1:14',
      'tool-call a1:c1',
      'tool-call a1:c2',
      'tool-result a2:r1',
      'tool-result a2:r2',
      'delta a2:2',
      'reset a3:0',
      'delta a3:11',
      'done a3:done',
    ]);
    expect(roundTexts(events)).toEqual(['Let me check. ', 'Done again.']);
    // A client that saw the old attempt's text of that round and comes back: that round's reset, nothing before it again.
    const resumed = await tail(streams, () => state, position('a2:2'));
    expect(ids(resumed)).toEqual(['reset a3:0', 'delta a3:11', 'done a3:done']);
    expect(roundTexts(resumed, 2)).toEqual([undefined, 'Done again.']);
  });

  it('gives a client that saw some of a round’s tool results the rest of them when the round runs again', async () => {
    const streams = memoryStreams();
    await streams.store.append('c', 'm1', [...toolRecords.round1, start('a2', 0, 2, results), start('a3', 0, 2, results), piece('a3', 1, 'Done.'), end('a3', 1 + 1)]);
    const done = chatWithTurn(toolTurn(['a1', 'a3']));
    const events = await tail(streams, () => done, position('a2:r1'));
    expect(events.filter((e) => e.event === 'tool-result').map((e) => e.event === 'tool-result' && e.data.toolCallId)).toEqual(['call-2']);
    expect(events.filter((e) => e.event !== 'reset').map((e) => e.event)).toEqual(['tool-result', 'delta', 'done']);
    expect(roundTexts(events, 2)).toEqual([undefined, 'Done.']);
  });

  it('shows a finished tool turn from the chat when its records are gone: every round, stored ids where nothing was published', async () => {
    const streams = memoryStreams(); // the next turn removed the records
    const streamed = await tail(streams, () => chatWithTurn(toolTurn(['a1', 'a2'])));
    expect(ids(streamed)).toEqual([
      'message stored:r0',
      'delta a1:14',
      'tool-call a1:c1',
      'tool-call a1:c2',
      'tool-result a2:r1',
      'tool-result a2:r2',
      'delta a2:5',
      'done a2:done',
    ]);
    expect(roundTexts(streamed)).toEqual(['Let me check. ', 'Done.']);
    const plain = await tail(streams, () => chatWithTurn(toolTurn(undefined)));
    expect(ids(plain)).toEqual([
      'message stored:r0',
      'delta stored:14',
      'tool-call stored:c1',
      'tool-call stored:c2',
      'tool-result stored:r1',
      'tool-result stored:r2',
      'delta stored:5',
      'done stored:done',
    ]);
    // A client that was mid-turn is placed by the stored rounds' attempts: exactly the rest.
    const resumed = await tail(streams, () => chatWithTurn(toolTurn(['a1', 'a2'])), position('a1:c1'));
    expect(ids(resumed)).toEqual(['tool-call a1:c2', 'tool-result a2:r1', 'tool-result a2:r2', 'delta a2:5', 'done a2:done']);
    // One whose attempt is not among them (it was superseded): reset, then everything.
    const superseded = await tail(streams, () => chatWithTurn(toolTurn(['a1', 'a2'])), position('a0:3'));
    expect(superseded.map((e) => e.event)).toEqual(['reset', 'message', 'delta', 'tool-call', 'tool-call', 'tool-result', 'tool-result', 'delta', 'done']);
  });

  it('shows the approvals a round waits for after its calls, and resumes after them with exactly the rest', async () => {
    const streams = memoryStreams();
    const asked = { toolCallId: 'call-2', name: 'get_todos', arguments: '{}', round: 1, event: 'approval-1', requestedAt: at, expiresAt: '2026-01-16T22:00:01.000Z' };
    const waiting: ChatState = { ...chatWithTurn(undefined), turn: { messageId: 'm1', instanceId: 'turn~c~m1', startedAt: at, approvals: [asked] } };
    let state = waiting;
    await streams.store.append('c', 'm1', toolRecords.round1);
    let step = 0;
    const events = await tail(streams, () => state, undefined, async () => {
      step++;
      if (step === 2) state = { ...waiting, turn: { messageId: 'm1', instanceId: 'turn~c~m1', startedAt: at, approvals: [{ ...asked, decision: { approved: true, by: 'user' } }] } };
      if (step === 3) await streams.store.append('c', 'm1', toolRecords.round2);
      if (step === 4) state = chatWithTurn(toolTurn(['a1', 'a2']));
    });
    expect(ids(events)).toEqual(['message a1:r0', 'delta a1:14', 'tool-call a1:c1', 'tool-call a1:c2', 'approval-request a1:a1', 'tool-result a2:r1', 'tool-result a2:r2', 'delta a2:5', 'done a2:done']);
    expect(events[4]).toMatchObject({ data: { round: 1, toolCallId: 'call-2', name: 'get_todos', arguments: '{}', expiresAt: asked.expiresAt } });
    // A client that saw the approval request resumes with the results.
    const resumed = await tail(streams, () => state, position('a1:a1'));
    expect(ids(resumed)).toEqual(['tool-result a2:r1', 'tool-result a2:r2', 'delta a2:5', 'done a2:done']);
  });

  it('ends a cancelled turn with a cancelled event after the text it kept, live and from the chat', async () => {
    const streams = memoryStreams();
    await streams.store.append('c', 'm1', [start('a1'), piece('a1', 1, 'Half an '), piece('a1', 2, 'ans'), end('a1', 3)]);
    const cancelled = chatWithReply({ content: 'Half an ans', status: 'cancelled', errorCode: 'cancelled', error: 'The turn was cancelled.', streamAttempt: 'a1' });
    const live = await tail(streams, () => cancelled);
    expect(ids(live)).toEqual(['message a1:r0', 'delta a1:11', 'cancelled a1:done']);
    expect(live.at(-1)).toMatchObject({ data: { id: 'm1.reply', replyTo: 'm1' } });
    const fromChat = await tail(memoryStreams(), () => cancelled);
    expect(fromChat.map((e) => e.event)).toEqual(['message', 'delta', 'cancelled']);
    expect(text(fromChat)).toBe('Half an ans');
  });

  it('parses event ids it hands out, and nothing else', () => {
    expect(parseStreamPosition('a1b2:120')).toEqual({ attempt: 'a1b2', phase: 'text', count: 120 });
    expect(parseStreamPosition('a1b2:r2')).toEqual({ attempt: 'a1b2', phase: 'results', count: 2 });
    expect(parseStreamPosition('a1b2:c0')).toEqual({ attempt: 'a1b2', phase: 'calls', count: 0 });
    expect(parseStreamPosition('stored:done')).toEqual({ attempt: 'stored', phase: 'done', count: 0 });
    expect(parseStreamPosition(' a1:3 ')).toEqual({ attempt: 'a1', phase: 'text', count: 3 });
    for (const bad of [null, '', 'x', 'a1:-1', 'A1:3', 'a1:3:4', `${'a'.repeat(41)}:1`, 'a1:x3', 'a1:r', 'a1:cdone', 'a1:r-1', 'a1:1234567890']) expect(parseStreamPosition(bad)).toBeUndefined();
  });
});

describe('TurnStreamPublisher', () => {
  afterEach(() => vi.useRealTimers());

  it('publishes the first text at once, then in growing batches, in order, with a bounded number of writes', async () => {
    vi.useFakeTimers();
    const streams = memoryStreams();
    const attempt = newAttemptId(Date.now());
    const publisher = new TurnStreamPublisher(streams.store, 'c', 'm1', attempt, () => {});
    publisher.start(1, at, []);
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
    expect(records.at(-1)).toEqual({ key: expect.any(String), attempt, kind: 'end' });
    expect(records[0]).toEqual({ key: `${attempt}~000000`, attempt, kind: 'start', round: 1, userMessageId: 'm1', userCreatedAt: at });
    expect(streams.appends()).toBeLessThan(45);
  });

  it("carries a round's tool results on its start record and the calls the model asked for on its end record", async () => {
    const streams = memoryStreams();
    const announced: number[] = [];
    const publisher = new TurnStreamPublisher(streams.store, 'c', 'm1', 'a2', () => announced.push(1));
    publisher.start(2, at, results);
    publisher.text('More: ');
    await publisher.end(calls);
    expect(streams.rows.get('c/m1')).toEqual([
      { key: 'a2~000000', attempt: 'a2', kind: 'start', round: 2, userMessageId: 'm1', userCreatedAt: at, toolResults: results },
      { key: 'a2~000001', attempt: 'a2', kind: 'text', text: 'More: ' },
      { key: 'a2~000002', attempt: 'a2', kind: 'end', toolCalls: calls },
    ]);
    expect(announced.length).toBe(3);
  });

  it('never fails the turn when publishing fails: it stops publishing', async () => {
    let appends = 0;
    const failing: TurnStreamStore = {
      append: async () => {
        appends++;
        throw new Error('table down');
      },
      readAfter: async () => [],
      deleteTurn: async () => {},
      requestStop: async () => {},
      stopRequested: async () => false,
    };
    const publisher = new TurnStreamPublisher(failing, 'c', 'm1', 'a1', () => {});
    publisher.start(1, at, []);
    publisher.text('x');
    await expect(publisher.end()).resolves.toBeUndefined();
    expect(appends).toBe(1);
  });

  it('orders a later attempt after an earlier one', () => {
    expect(newAttemptId(1_000, () => 0.99) < newAttemptId(1_001, () => 0)).toBe(true);
  });
});
