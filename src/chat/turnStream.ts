/**
 * Streamed turns: each model call of a turn (its model step activity, chat/turnSteps.ts) publishes
 * its text as it is generated, and a request (on any instance) tails it. Plain TypeScript over a
 * store port (an Azure Table in production, storage/turnStreamTable.ts). The chat's history stays in
 * the chat entity; stream records are transient: the chat's next turn, or its deletion, removes them.
 *
 * A turn is a sequence of rounds: a model call, and the tool calls it asked for. Each execution of a
 * model call publishes under a new attempt; a round's call that runs again (its instance died) gets a
 * newer attempt, so a reader can tell the round's text it has shown is void (a `reset` event) and
 * start that round again. A round's start record carries the previous round's tool results, its end
 * record the tool calls the model asked for.
 */
import type { Approval, ChatMessage, ChatState, ToolCallRecord, ToolResult } from './state';

export type TurnStreamRecord =
  | { key: string; attempt: string; kind: 'start'; round: number; userMessageId: string; userCreatedAt: string; toolResults?: ToolResult[] }
  | { key: string; attempt: string; kind: 'text'; text: string }
  | { key: string; attempt: string; kind: 'end'; toolCalls?: ToolCallRecord[] };

/** Records of one turn, ordered by `key` (attempts in the order they started, then in publishing order). */
export interface TurnStreamStore {
  append(chatId: string, messageId: string, records: TurnStreamRecord[]): Promise<void>;
  /** The turn's records with a key after `afterKey` (all when undefined), in order. */
  readAfter(chatId: string, messageId: string, afterKey: string | undefined): Promise<TurnStreamRecord[]>;
  deleteTurn(chatId: string, messageId: string): Promise<void>;
  /** Asks the turn's running model call to stop (its turn was cancelled); removed with the turn's records. */
  requestStop(chatId: string, messageId: string): Promise<void>;
  stopRequested(chatId: string, messageId: string): Promise<boolean>;
}

/** Attempt ids sort by start time, so records of a later attempt always sort after an earlier one's. */
export function newAttemptId(nowMs: number, random: () => number = Math.random): string {
  return `${Math.floor(nowMs).toString(36).padStart(9, '0')}${Math.floor(random() * 36 ** 4).toString(36).padStart(4, '0')}`;
}

export interface PublishPolicy {
  /** The first text is published at once; then at most every `firstIntervalMs`, growing by `growth` per write up to `longestIntervalMs`. */
  firstIntervalMs: number;
  growth: number;
  longestIntervalMs: number;
  /** A write carries at most this many characters (a table property holds 32K). */
  maxCharsPerWrite: number;
}

// A 20 s reply costs about 30 writes; the first text is out as soon as the model sends it.
export const DEFAULT_PUBLISH_POLICY: PublishPolicy = { firstIntervalMs: 50, growth: 1.25, longestIntervalMs: 1_000, maxCharsPerWrite: 16_000 };

/**
 * Publishes one attempt of a turn: a start record, the text in batches, an end record. Publishing
 * failures never fail the turn: a reader then finds the reply in the chat state when the turn is done.
 */
export class TurnStreamPublisher {
  private seq = 0;
  private buffered = '';
  private lastWriteAt = -Infinity;
  private intervalMs: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private writing: Promise<void> = Promise.resolve();
  private failed = false;

  constructor(
    private readonly store: TurnStreamStore,
    private readonly chatId: string,
    private readonly messageId: string,
    readonly attempt: string,
    private readonly announce: () => void,
    private readonly policy: PublishPolicy = DEFAULT_PUBLISH_POLICY,
    private readonly now: () => number = Date.now,
  ) {
    this.intervalMs = policy.firstIntervalMs;
  }

  private key(): string {
    return `${this.attempt}~${String(this.seq++).padStart(6, '0')}`;
  }

  /** `toolResults`: what the previous round's calls returned (none in the first round). */
  start(round: number, userCreatedAt: string, toolResults: ToolResult[]): void {
    const record: TurnStreamRecord = { key: this.key(), attempt: this.attempt, kind: 'start', round, userMessageId: this.messageId, userCreatedAt };
    if (toolResults.length > 0) record.toolResults = toolResults;
    this.write([record]);
  }

  text(delta: string): void {
    this.buffered += delta;
    if (this.timer !== undefined) return;
    const wait = this.lastWriteAt + this.intervalMs - this.now();
    if (wait <= 0) this.flush();
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  /** Publishes what is buffered and the end record (with the calls the model asked for); resolves once every write has settled. */
  async end(toolCalls: ToolCallRecord[] = []): Promise<void> {
    this.flush();
    const record: TurnStreamRecord = { key: this.key(), attempt: this.attempt, kind: 'end' };
    if (toolCalls.length > 0) record.toolCalls = toolCalls;
    this.write([record]);
    await this.writing;
  }

  private flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.buffered === '') return;
    const records: TurnStreamRecord[] = [];
    for (let at = 0; at < this.buffered.length; at += this.policy.maxCharsPerWrite) {
      records.push({ key: this.key(), attempt: this.attempt, kind: 'text', text: this.buffered.slice(at, at + this.policy.maxCharsPerWrite) });
    }
    this.buffered = '';
    this.lastWriteAt = this.now();
    this.intervalMs = Math.min(this.intervalMs * this.policy.growth, this.policy.longestIntervalMs);
    this.write(records);
  }

  // Writes go out one after another, in order.
  private write(records: TurnStreamRecord[]): void {
    this.writing = this.writing.then(async () => {
      if (this.failed) return;
      try {
        await this.store.append(this.chatId, this.messageId, records);
        this.announce();
      } catch {
        this.failed = true;
      }
    });
  }
}


/** What a client of a streamed turn receives (one SSE event each; `ping` is a keep-alive comment). */
export type TurnEvent =
  | { event: 'message'; id: string; data: { id: string; role: 'user'; createdAt: string } }
  | { event: 'delta'; id: string; data: { text: string } }
  | { event: 'tool-call'; id: string; data: { round: number; toolCallId: string; name: string; arguments: string } }
  | { event: 'tool-result'; id: string; data: { round: number; toolCallId: string; name: string; content: string; status?: 'failed' | 'denied' } }
  | { event: 'approval-request'; id: string; data: { round: number; toolCallId: string; name: string; arguments: string; expiresAt: string } }
  | { event: 'reset'; id: string; data: { reason: string } }
  | { event: 'done'; id: string; data: { id: string; role: 'assistant'; replyTo: string; createdAt: string; tokens: number } }
  | { event: 'error'; id: string; data: { id: string; createdAt: string; error: { code: string; message: string } } }
  | { event: 'cancelled'; id: string; data: { id: string; replyTo: string; createdAt: string } }
  | { event: 'ping' };

/**
 * Where a client is within one attempt (one model call): the tool results shown (`results`), the
 * characters of text shown (`text`), the tool calls shown (`calls`), or the approval requests shown
 * (`approvals`); or `done` after the last event. Event ids are `<attempt>:r<n>`, `<attempt>:<n>`,
 * `<attempt>:c<n>`, `<attempt>:a<n>` and `<attempt>:done`; replies read from the chat use attempt `stored`.
 */
export interface StreamPosition {
  attempt: string;
  phase: 'results' | 'text' | 'calls' | 'approvals' | 'done';
  count: number;
}

const PHASES = ['results', 'text', 'calls', 'approvals', 'done'] as const;
const PHASE_PREFIX: Record<StreamPosition['phase'], string> = { results: 'r', text: '', calls: 'c', approvals: 'a', done: '' };
const PHASE_OF_PREFIX: Record<string, StreamPosition['phase']> = { r: 'results', '': 'text', c: 'calls', a: 'approvals' };

export function parseStreamPosition(lastEventId: string | null): StreamPosition | undefined {
  const match = /^([0-9a-z]{1,40}):(?:(done)|([rca]?)(\d{1,9}))$/.exec(lastEventId?.trim() ?? '');
  if (match === null) return undefined;
  const attempt = match[1] as string;
  if (match[2] === 'done') return { attempt, phase: 'done', count: 0 };
  return { attempt, phase: PHASE_OF_PREFIX[match[3] ?? ''] ?? 'text', count: Number(match[4]) };
}

function eventId(p: StreamPosition): string {
  return p.phase === 'done' ? `${p.attempt}:done` : `${p.attempt}:${PHASE_PREFIX[p.phase]}${p.count}`;
}

/** True when `a` is at or after `b` in an attempt. */
function atOrAfter(a: StreamPosition, b: Pick<StreamPosition, 'phase' | 'count'>): boolean {
  const pa = PHASES.indexOf(a.phase);
  const pb = PHASES.indexOf(b.phase);
  return pa > pb || (pa === pb && a.count >= b.count);
}

export const STORED_ATTEMPT = 'stored';

export interface TurnTailPorts {
  /** The turn's published records after `afterKey`; none where nothing is published. */
  readRecords(afterKey: string | undefined): Promise<TurnStreamRecord[]>;
  /** The chat, if it still exists (bounded: the chat entity only). */
  readChat(): Promise<ChatState | undefined>;
  /** The entries of the message's turn once it is done, its reply last (from the chat, or its pages). */
  findTurn(state: ChatState): Promise<ChatMessage[] | undefined>;
  changed(timeoutMs: number): Promise<boolean>;
  now(): number;
}

export interface TailPolicy {
  firstPauseMs: number;
  longestPauseMs: number;
  /** The chat itself is read at most this often while no end record has come (a turn whose records were lost still ends). */
  chatReadEveryMs: number;
  pingEveryMs: number;
  /** A stream ends (with an error event) if the turn has not ended by then. */
  maxDurationMs: number;
}

export const DEFAULT_TAIL_POLICY: TailPolicy = { firstPauseMs: 5, longestPauseMs: 200, chatReadEveryMs: 1_000, pingEveryMs: 15_000, maxDurationMs: 30 * 60_000 };

/** One round as published: its newest attempt only. */
interface PublishedRound {
  attempt: string;
  user: { id: string; createdAt: string };
  results: ToolResult[];
  text: string;
  ended: boolean;
  calls: ToolCallRecord[];
}

/** A round of a finished turn, as the chat stored it. */
interface StoredRound {
  text: string;
  calls: ToolCallRecord[];
  results: ToolResult[];
  attempt: string | undefined;
}

const resultEvent = (round: number, r: ToolResult, id: string): TurnEvent => {
  const data: Extract<TurnEvent, { event: 'tool-result' }>['data'] = { round, toolCallId: r.toolCallId, name: r.name, content: r.content };
  if (r.approval?.approved === false && r.approval.by !== 'cancel') data.status = 'denied';
  else if (r.failed) data.status = 'failed';
  return { event: 'tool-result', id, data };
};
const approvalEvent = (a: Approval, id: string): TurnEvent => ({ event: 'approval-request', id, data: { round: a.round, toolCallId: a.toolCallId, name: a.name, arguments: a.arguments, expiresAt: a.expiresAt } });
const callEvent = (round: number, c: ToolCallRecord, id: string): TurnEvent => ({ event: 'tool-call', id, data: { round, toolCallId: c.id, name: c.name, arguments: c.arguments } });

/** The rounds of a finished turn from its stored entries (tool rounds, then the reply). */
function storedRounds(entries: readonly ChatMessage[]): StoredRound[] {
  const rounds: StoredRound[] = [];
  for (const m of entries) {
    if (m.role === 'assistant') rounds.push({ text: m.content, calls: m.toolCalls ?? [], results: [], attempt: m.streamAttempt });
    else if (m.role === 'tool') {
      const result: ToolResult = { toolCallId: m.toolCallId ?? '', name: m.name ?? '', content: m.content, failed: m.status !== undefined };
      if (m.approval !== undefined) result.approval = m.approval;
      rounds.at(-1)?.results.push(result);
    }
  }
  return rounds;
}

/**
 * Tails a turn for a client: its published rounds while it runs, then the stored reply. Resumes after
 * `from` without repeating or losing anything; when the text it had shown of a round is void (the
 * round's model call ran again, or the stored reply is not the text published), says `reset` and
 * starts that round's text over.
 */
export async function* tailTurn(ports: TurnTailPorts, messageId: string, from: StreamPosition | undefined, policy: TailPolicy = DEFAULT_TAIL_POLICY): AsyncGenerator<TurnEvent> {
  if (from?.phase === 'done') return;
  const rounds: PublishedRound[] = []; // index r-1 holds round r
  const attemptRound = new Map<string, number>();
  // What the client has been shown: the round and the position in that round's attempt.
  let shownRound = 0;
  let shown: StreamPosition | undefined;
  let resume = from;
  let lastKey: string | undefined;
  const start = ports.now();
  let lastChatRead = -Infinity;
  let lastEvent = start;
  let pauseMs = policy.firstPauseMs;
  // The approvals the running turn asked for, from the last read of the chat.
  let approvals: Approval[] = [];

  const ingest = (record: TurnStreamRecord): void => {
    if (record.kind === 'start') {
      attemptRound.set(record.attempt, record.round);
      rounds[record.round - 1] = { attempt: record.attempt, user: { id: record.userMessageId, createdAt: record.userCreatedAt }, results: record.toolResults ?? [], text: '', ended: false, calls: [] };
      return;
    }
    const round = rounds[(attemptRound.get(record.attempt) ?? 0) - 1];
    if (round === undefined || round.attempt !== record.attempt) return; // a superseded attempt
    if (record.kind === 'text') round.text += record.text;
    else {
      round.ended = true;
      round.calls = record.toolCalls ?? [];
    }
  };

  // A resumed client: everything before its attempt's round was shown, and in that round up to its
  // position. An attempt not among the records is placed by the stored turn once it is done (its
  // records may be gone), unless other records show the client's text is void.
  function* placeResume(): Generator<TurnEvent> {
    if (resume === undefined) return;
    const round = attemptRound.get(resume.attempt);
    if (round !== undefined) {
      shownRound = round;
      shown = resume;
    } else if (rounds.length > 0) {
      yield { event: 'reset', id: `${resume.attempt}:0`, data: { reason: 'The text so far is void; the turn is shown again.' } };
    } else {
      return;
    }
    resume = undefined;
  }

  // Everything published the client has not been shown, round by round.
  function* publishedEvents(): Generator<TurnEvent> {
    for (let r = Math.max(1, shownRound); r <= rounds.length; r++) {
      const round = rounds[r - 1];
      if (round === undefined) break;
      if (r === shownRound && shown !== undefined && shown.attempt !== round.attempt) {
        // The round's model call ran again: its text so far is void; its tool results are the same.
        yield { event: 'reset', id: `${round.attempt}:0`, data: { reason: 'The model call started again; the text so far is void.' } };
        // A client still among the results keeps its place there: the rest of them are still to show.
        shown = shown.phase === 'results' ? { ...shown, attempt: round.attempt } : { attempt: round.attempt, phase: 'text', count: 0 };
      }
      if (r > shownRound || shown === undefined) {
        shownRound = r;
        shown = { attempt: round.attempt, phase: 'results', count: 0 };
        if (r === 1) yield { event: 'message', id: eventId(shown), data: { id: round.user.id, role: 'user', createdAt: round.user.createdAt } };
      }
      const at = shown;
      for (let k = 0; k < round.results.length; k++) {
        const p: StreamPosition = { attempt: round.attempt, phase: 'results', count: k + 1 };
        if (!atOrAfter(at, p)) yield resultEvent(r, round.results[k] as ToolResult, eventId((shown = p)));
      }
      const chars = at.phase === 'text' ? at.count : at.phase === 'results' ? 0 : round.text.length;
      if (round.text.length > chars) {
        shown = { attempt: round.attempt, phase: 'text', count: round.text.length };
        yield { event: 'delta', id: eventId(shown), data: { text: round.text.slice(chars) } };
      } else if (!atOrAfter(shown, { phase: 'text', count: round.text.length })) {
        shown = { attempt: round.attempt, phase: 'text', count: round.text.length };
      }
      if (!round.ended) break;
      for (let k = 0; k < round.calls.length; k++) {
        const p: StreamPosition = { attempt: round.attempt, phase: 'calls', count: k + 1 };
        if (!atOrAfter(shown, p)) yield callEvent(r, round.calls[k] as ToolCallRecord, eventId((shown = p)));
      }
      // The round's calls that wait for approval, as the chat shows them (while the round is the last).
      const asked = approvals.filter((a) => a.round === r);
      for (let k = 0; k < asked.length; k++) {
        const p: StreamPosition = { attempt: round.attempt, phase: 'approvals', count: k + 1 };
        if (!atOrAfter(shown, p)) yield approvalEvent(asked[k] as Approval, eventId((shown = p)));
      }
    }
  }

  // The turn is done: what the client has not been shown, from the stored entries, and the last event.
  function* storedEvents(entries: ChatMessage[], reply: ChatMessage): Generator<TurnEvent> {
    const stored = storedRounds(entries);
    const last = stored.length;
    if (resume !== undefined) {
      const from = resume;
      const round = stored.findIndex((r) => r.attempt === from.attempt);
      if (round >= 0) {
        shownRound = round + 1;
        shown = from;
      } else {
        yield { event: 'reset', id: `${from.attempt}:0`, data: { reason: 'The text so far is void; the stored turn follows.' } };
      }
      resume = undefined;
    }
    if (shownRound === 0) {
      const user = { id: messageId, createdAt: rounds[0]?.user.createdAt ?? reply.createdAt };
      shown = { attempt: STORED_ATTEMPT, phase: 'results', count: 0 };
      yield { event: 'message', id: eventId(shown), data: { id: user.id, role: 'user', createdAt: user.createdAt } };
      shownRound = 1;
    }
    for (let r = shownRound; r <= last; r++) {
      const round = stored[r - 1] as StoredRound;
      const attempt = round.attempt ?? STORED_ATTEMPT;
      let at: StreamPosition = r === shownRound && shown !== undefined ? shown : { attempt, phase: 'results', count: 0 };
      // The text shown of this round must be the stored text's beginning, from the same attempt.
      if (r === shownRound && at.attempt !== attempt && at.attempt !== STORED_ATTEMPT) {
        yield { event: 'reset', id: `${attempt}:0`, data: { reason: 'The text so far is void; the stored reply follows.' } };
        at = { attempt, phase: 'text', count: 0 };
      }
      const previous = stored[r - 2];
      if (previous !== undefined) {
        for (let k = 0; k < previous.results.length; k++) {
          const p: StreamPosition = { attempt, phase: 'results', count: k + 1 };
          if (!atOrAfter(at, p)) yield resultEvent(r, previous.results[k] as ToolResult, eventId((at = p)));
        }
      }
      const chars = at.phase === 'text' ? at.count : at.phase === 'results' ? 0 : round.text.length;
      if (round.text.length > chars) yield { event: 'delta', id: eventId((at = { attempt, phase: 'text', count: round.text.length })), data: { text: round.text.slice(chars) } };
      if (r < last) {
        for (let k = 0; k < round.calls.length; k++) {
          const p: StreamPosition = { attempt, phase: 'calls', count: k + 1 };
          if (!atOrAfter(at, p)) yield callEvent(r, round.calls[k] as ToolCallRecord, eventId((at = p)));
        }
      }
      shown = at;
      shownRound = r;
    }
    const id = eventId({ attempt: shown?.attempt ?? STORED_ATTEMPT, phase: 'done', count: 0 });
    if (reply.status === 'cancelled') {
      yield { event: 'cancelled', id, data: { id: reply.id, replyTo: messageId, createdAt: reply.createdAt } };
    } else if (reply.status === 'failed') {
      yield { event: 'error', id, data: { id: reply.id, createdAt: reply.createdAt, error: { code: reply.errorCode ?? 'model_failed', message: reply.error ?? 'The model call failed.' } } };
    } else {
      yield { event: 'done', id, data: { id: reply.id, role: 'assistant', replyTo: messageId, createdAt: reply.createdAt, tokens: reply.tokens } };
    }
  }

  const failure = (code: string, message: string): TurnEvent => ({
    event: 'error',
    id: eventId({ attempt: shown?.attempt ?? STORED_ATTEMPT, phase: 'done', count: 0 }),
    data: { id: `${messageId}.reply`, createdAt: new Date(ports.now()).toISOString(), error: { code, message } },
  });

  for (;;) {
    // A failed read of the records only delays the text: the chat's stored reply ends the stream.
    const read = await ports.readRecords(lastKey).catch((): TurnStreamRecord[] => []);
    if (read.length > 0) lastKey = (read.at(-1) as TurnStreamRecord).key;
    read.forEach(ingest);
    const progressed = read.length > 0;
    for (const e of [...placeResume(), ...publishedEvents()]) {
      lastEvent = ports.now();
      yield e;
    }
    const lastRound = rounds.at(-1);
    const ended = lastRound !== undefined && lastRound.ended && lastRound.calls.length === 0;
    // A round that asked for tools may wait for approvals: the chat shows them soon after its end.
    const mayAsk = lastRound !== undefined && lastRound.ended && lastRound.calls.length > 0 && !approvals.some((a) => a.round === rounds.length);
    const now = ports.now();
    if (ended || mayAsk || now - lastChatRead >= policy.chatReadEveryMs) {
      lastChatRead = now;
      const state = await ports.readChat();
      if (state === undefined) {
        yield failure('chat_not_found', 'The chat was deleted.');
        return;
      }
      const asked = state.turn?.messageId === messageId ? (state.turn.approvals ?? []) : [];
      if (asked.length > approvals.length) {
        approvals = asked;
        for (const e of publishedEvents()) {
          lastEvent = ports.now();
          yield e;
        }
      }
      const entries = await ports.findTurn(state);
      const reply = entries?.at(-1);
      if (entries !== undefined && reply !== undefined) {
        yield* storedEvents(entries, reply);
        return;
      }
    }
    if (now - start >= policy.maxDurationMs) {
      yield failure('stream_timeout', 'The turn did not end in time; read the chat later.');
      return;
    }
    if (now - lastEvent >= policy.pingEveryMs) {
      lastEvent = now;
      yield { event: 'ping' };
    }
    // After the last end record the commit is near: read the chat again soon.
    if (ended) lastChatRead = -Infinity;
    const hinted = await ports.changed(pauseMs);
    pauseMs = hinted || progressed ? policy.firstPauseMs : Math.min(pauseMs * 2, policy.longestPauseMs);
  }
}
