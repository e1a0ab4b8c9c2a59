/**
 * Streamed turns: the entity publishes a turn's reply as it is generated, and a request (on any
 * instance) tails it. Plain TypeScript over a store port (an Azure Table in production,
 * storage/turnStreamTable.ts). The chat's history stays in the chat entity; stream records are
 * transient: the chat's next turn, or its deletion, removes them.
 *
 * A turn that runs again (its instance died mid-turn) publishes under a new attempt, so a reader
 * can tell the text it has shown is void (a `reset` event) and start again.
 */
import type { CompletionChunk, PromptMessage } from '../model/client';
import { StreamedTurnError, type ChatMessage, type ChatState, type TurnModel, type TurnReply, type TurnStart } from './state';

export type TurnStreamRecord =
  | { key: string; attempt: string; kind: 'start'; userMessageId: string; userCreatedAt: string }
  | { key: string; attempt: string; kind: 'text'; text: string }
  | { key: string; attempt: string; kind: 'end' };

/** Records of one turn, ordered by `key` (attempts in the order they started, then in publishing order). */
export interface TurnStreamStore {
  append(chatId: string, messageId: string, records: TurnStreamRecord[]): Promise<void>;
  /** The turn's records with a key after `afterKey` (all when undefined), in order. */
  readAfter(chatId: string, messageId: string, afterKey: string | undefined): Promise<TurnStreamRecord[]>;
  deleteTurn(chatId: string, messageId: string): Promise<void>;
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

  start(userCreatedAt: string): void {
    this.write([{ key: this.key(), attempt: this.attempt, kind: 'start', userMessageId: this.messageId, userCreatedAt }]);
  }

  text(delta: string): void {
    this.buffered += delta;
    if (this.timer !== undefined) return;
    const wait = this.lastWriteAt + this.intervalMs - this.now();
    if (wait <= 0) this.flush();
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  /** Publishes what is buffered and the end record; resolves once every write has settled. */
  async end(): Promise<void> {
    this.flush();
    this.write([{ key: this.key(), attempt: this.attempt, kind: 'end' }]);
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

/**
 * A turn model that streams: the model's text goes to the publisher as it arrives. A stream that
 * breaks mid-reply fails the turn keeping the text so far (the failed-turn record holds it).
 */
export function streamingTurnModel(
  streamCompletion: (prompt: PromptMessage[]) => Promise<AsyncIterable<CompletionChunk>>,
  publisherFor: (turn: TurnStart) => TurnStreamPublisher,
): TurnModel {
  return async (prompt, turn): Promise<TurnReply> => {
    const publisher = publisherFor(turn);
    publisher.start(turn.userCreatedAt);
    let text = '';
    let totalTokens = 0;
    try {
      for await (const chunk of await streamCompletion(prompt)) {
        if (chunk.type === 'delta') {
          text += chunk.text;
          publisher.text(chunk.text);
        } else {
          totalTokens = chunk.totalTokens;
        }
      }
    } catch (err) {
      await publisher.end();
      throw new StreamedTurnError(err, text, publisher.attempt);
    }
    await publisher.end();
    return { text, totalTokens, streamAttempt: publisher.attempt };
  };
}

/** What a client of a streamed turn receives (one SSE event each; `ping` is a keep-alive comment). */
export type TurnEvent =
  | { event: 'message'; id: string; data: { id: string; role: 'user'; createdAt: string } }
  | { event: 'delta'; id: string; data: { text: string } }
  | { event: 'reset'; id: string; data: { reason: string } }
  | { event: 'done'; id: string; data: { id: string; role: 'assistant'; replyTo: string; createdAt: string; tokens: number } }
  | { event: 'error'; id: string; data: { id: string; createdAt: string; error: { code: string; message: string } } }
  | { event: 'ping' };

/** Where a resuming client was: the attempt and how many characters of its text it has. */
export interface StreamPosition {
  attempt: string;
  /** Characters of the reply shown, or 'done' when the client saw the turn's last event. */
  offset: number | 'done';
}

/** Event ids are `<attempt>:<characters shown>` (or `<attempt>:done`); replies read from the chat use attempt `stored`. */
export function parseStreamPosition(lastEventId: string | null): StreamPosition | undefined {
  const match = /^([0-9a-z]{1,40}):(\d{1,9}|done)$/.exec(lastEventId?.trim() ?? '');
  if (match === null) return undefined;
  return { attempt: match[1] as string, offset: match[2] === 'done' ? 'done' : Number(match[2]) };
}

export const STORED_ATTEMPT = 'stored';

export interface TurnTailPorts {
  /** The turn's published records after `afterKey`; none where nothing is published. */
  readRecords(afterKey: string | undefined): Promise<TurnStreamRecord[]>;
  /** The chat, if it still exists (bounded: the chat entity only). */
  readChat(): Promise<ChatState | undefined>;
  /** The reply to the message once the turn is done (from the chat, or its pages if it left `recent`). */
  findReply(state: ChatState): Promise<ChatMessage | undefined>;
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

/**
 * Tails a turn for a client: its published records while it runs, then the stored reply. Resumes
 * after `from` without repeating or losing text; when the text it had shown is void (the turn ran
 * again, or the stored reply is not the text published), says `reset` and starts over.
 */
export async function* tailTurn(ports: TurnTailPorts, messageId: string, from: StreamPosition | undefined, policy: TailPolicy = DEFAULT_TAIL_POLICY): AsyncGenerator<TurnEvent> {
  if (from?.offset === 'done') return;
  let resume = from;
  let attempt: string | undefined;
  let text = '';
  let shown = 0;
  let announced = false;
  let lastKey: string | undefined;
  const start = ports.now();
  let lastChatRead = -Infinity;
  let lastEvent = start;
  let pauseMs = policy.firstPauseMs;

  // Begins showing an attempt: continues the resumed one, or voids what the client has and starts over.
  function* begin(next: string, user: { id: string; createdAt: string }): Generator<TurnEvent> {
    attempt = next;
    text = '';
    if (resume !== undefined && resume.attempt === next) {
      shown = resume.offset === 'done' ? 0 : resume.offset;
      announced = true;
    } else {
      if (announced || resume !== undefined) yield { event: 'reset', id: `${next}:0`, data: { reason: 'The turn started again; the text so far is void.' } };
      shown = 0;
      announced = true;
      yield { event: 'message', id: `${next}:0`, data: { id: user.id, role: 'user', createdAt: user.createdAt } };
    }
    resume = undefined;
  }

  const failure = (code: string, message: string): TurnEvent => ({
    event: 'error',
    id: `${attempt ?? STORED_ATTEMPT}:done`,
    data: { id: `${messageId}.reply`, createdAt: new Date(ports.now()).toISOString(), error: { code, message } },
  });

  function* finish(state: ChatState, reply: ChatMessage): Generator<TurnEvent> {
    const user = state.recent.find((m) => m.role === 'user' && m.id === messageId) ?? { id: messageId, createdAt: reply.createdAt };
    const published = reply.streamAttempt ?? STORED_ATTEMPT;
    // Unless this reader is already showing the reply's attempt and its text is the reply's beginning,
    // begin it: that continues a resumed client of the same attempt, and resets any other.
    if (attempt !== published || !reply.content.startsWith(text)) yield* begin(published, user);
    if (reply.content.length > shown) yield { event: 'delta', id: `${published}:${reply.content.length}`, data: { text: reply.content.slice(shown) } };
    if (reply.status === 'failed') {
      yield { event: 'error', id: `${published}:done`, data: { id: reply.id, createdAt: reply.createdAt, error: { code: reply.errorCode ?? 'model_failed', message: reply.error ?? 'The model call failed.' } } };
    } else {
      yield { event: 'done', id: `${published}:done`, data: { id: reply.id, role: 'assistant', replyTo: messageId, createdAt: reply.createdAt, tokens: reply.tokens } };
    }
  }

  for (;;) {
    let ended = false;
    let progressed = false;
    // A failed read of the records only delays the text: the chat's stored reply ends the stream.
    const read = await ports.readRecords(lastKey).catch((): TurnStreamRecord[] => []);
    // Only the newest attempt in what was read counts: earlier ones are superseded.
    const newestStart = read.findLastIndex((r) => r.kind === 'start');
    if (read.length > 0) lastKey = (read.at(-1) as TurnStreamRecord).key;
    const records = newestStart > 0 ? read.slice(newestStart) : read;
    for (const record of records) {
      progressed = true;
      if (record.kind === 'start') {
        yield* begin(record.attempt, { id: record.userMessageId, createdAt: record.userCreatedAt });
      } else if (record.attempt !== attempt) {
        continue; // the rest of an attempt whose start this reader did not see: superseded
      } else if (record.kind === 'text') {
        text += record.text;
        if (text.length > shown) {
          yield { event: 'delta', id: `${record.attempt}:${text.length}`, data: { text: text.slice(shown) } };
          shown = text.length;
          lastEvent = ports.now();
        }
      } else {
        ended = true;
      }
    }
    const now = ports.now();
    if (ended || now - lastChatRead >= policy.chatReadEveryMs) {
      lastChatRead = now;
      const state = await ports.readChat();
      if (state === undefined) {
        yield failure('chat_not_found', 'The chat was deleted.');
        return;
      }
      const reply = await ports.findReply(state);
      if (reply !== undefined) {
        yield* finish(state, reply);
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
    // After an end record the commit is near: read the chat again soon.
    if (ended) lastChatRead = -Infinity;
    const hinted = await ports.changed(pauseMs);
    pauseMs = hinted || progressed ? policy.firstPauseMs : Math.min(pauseMs * 2, policy.longestPauseMs);
  }
}
