/**
 * A chat's history beyond its recent messages: fixed-size pages, each written once to its own
 * entity. The chat cuts a page when its unpaged messages reach `pageBytes`, keeps the page's messages
 * until the page confirms it is stored, and then keeps only what the prompt window needs; so what a
 * turn reads and writes stays bounded however long the chat grows. Plain TypeScript: the entity
 * sends the pages, and readers pass in how to read one.
 */
import { ChatStoreUnavailableError } from '../errors';
import { promptWindowStart, recentStart, replyId, type ChatMessage, type ChatState } from './state';

export const HISTORY_PAGE_SCHEMA_VERSION = 1;

export interface HistoryPage {
  schemaVersion: typeof HISTORY_PAGE_SCHEMA_VERSION;
  page: number;
  /** Index in the whole history of `messages[0]`. */
  firstIndex: number;
  messages: ChatMessage[];
}

export interface PagingLimits {
  /** A page holds messages up to this many bytes of JSON (at least one message, however large). */
  pageBytes: number;
  historyTokenBudget: number;
  /** Pages cut in one operation at most; a migrated long chat is paged over several operations. */
  maxPagesPerOperation: number;
}

const messageBytes = (m: ChatMessage): number => Buffer.byteLength(JSON.stringify(m));

/**
 * Cuts full pages from the unpaged messages and drops from `recent` what no reader needs from it any
 * more. `morePages`: pages are still due after this operation's share (the entity continues with
 * another operation).
 */
export function cutPages(state: ChatState, limits: PagingLimits): { state: ChatState; pages: HistoryPage[]; morePages: boolean } {
  const start = recentStart(state);
  const unpaged = state.recent.slice(state.pagedMessages - start);
  const pages: HistoryPage[] = [];
  let offset = 0;
  let bytesLeft = unpaged.reduce((sum, m) => sum + messageBytes(m), 0);
  while (bytesLeft >= limits.pageBytes && pages.length < limits.maxPagesPerOperation) {
    const messages: ChatMessage[] = [];
    let bytes = 0;
    while (offset < unpaged.length) {
      const next = unpaged[offset] as ChatMessage;
      const size = messageBytes(next);
      if (messages.length > 0 && bytes + size > limits.pageBytes) break;
      messages.push(next);
      bytes += size;
      offset++;
    }
    pages.push({ schemaVersion: HISTORY_PAGE_SCHEMA_VERSION, page: state.pageCount + pages.length, firstIndex: state.pagedMessages + offset - messages.length, messages });
    bytesLeft -= bytes;
  }
  const paged: ChatState =
    pages.length === 0
      ? state
      : {
          ...state,
          pageCount: state.pageCount + pages.length,
          pagedMessages: state.pagedMessages + offset,
          unconfirmedPages: [...state.unconfirmedPages, ...pages.map((p) => ({ page: p.page, firstIndex: p.firstIndex }))],
        };
  return { state: trimRecent(paged, limits.historyTokenBudget), pages, morePages: bytesLeft >= limits.pageBytes };
}

/** A page confirmed stored: its messages may leave `recent` (unless the prompt window needs them). */
export function confirmPage(state: ChatState, page: number, historyTokenBudget: number): ChatState {
  if (!state.unconfirmedPages.some((p) => p.page === page)) return state;
  return trimRecent({ ...state, unconfirmedPages: state.unconfirmedPages.filter((p) => p.page !== page) }, historyTokenBudget);
}

/** Keeps from `recent` the unpaged messages, those of unconfirmed pages, and the prompt window. */
function trimRecent(state: ChatState, historyTokenBudget: number): ChatState {
  const keepFrom = Math.min(state.pagedMessages, promptWindowStart(state, historyTokenBudget), ...state.unconfirmedPages.map((p) => p.firstIndex));
  const drop = keepFrom - recentStart(state);
  return drop > 0 ? { ...state, recent: state.recent.slice(drop) } : state;
}

/** Reads one page of a chat; undefined when it does not exist (not yet written, or deleted). */
export type PageReader = (page: number) => Promise<HistoryPage | undefined>;

/** Pages read at once when a reader needs many. */
const PAGE_READS_AT_ONCE = 8;

/**
 * The chat's messages in order — all of them, or only those strictly newer than `newerThanMs`.
 * Reads pages only when `recent` does not reach back far enough: newest first and stopping at the
 * timestamp, so a reader pays for what it gets.
 */
export async function readMessages(state: ChatState, readPage: PageReader, newerThanMs?: number): Promise<ChatMessage[]> {
  const fromRecent = newerThan(state.recent, newerThanMs);
  const start = recentStart(state);
  if (start === 0 || fromRecent.length < state.recent.length) return fromRecent;

  // Pages whose messages all precede `recent`, newest first; stop at the first page that reaches the timestamp.
  const older: ChatMessage[][] = [];
  let next = state.pageCount - 1;
  let reached = false;
  while (next >= 0 && !reached) {
    const batch = Array.from({ length: Math.min(PAGE_READS_AT_ONCE, next + 1) }, (_, i) => next - i);
    next -= batch.length;
    const pages = await Promise.all(batch.map((n) => readPage(n)));
    for (const [i, page] of pages.entries()) {
      const n = batch[i] as number;
      const unconfirmed = state.unconfirmedPages.some((p) => p.page === n);
      if (page === undefined) {
        if (unconfirmed) continue; // its messages are in `recent`
        throw historyIncomplete(`history page ${n} is missing`);
      }
      const below = page.messages.slice(0, Math.max(0, start - page.firstIndex));
      if (below.length > 0) older.push(below);
      const first = page.messages[0];
      if (newerThanMs !== undefined && first !== undefined && Date.parse(first.createdAt) <= newerThanMs) {
        reached = true;
        break;
      }
    }
  }
  const messages = older.reverse().flat();
  if (newerThanMs === undefined && messages.length !== start) throw historyIncomplete(`read ${messages.length} of the ${start} paged messages`);
  return [...newerThan(messages, newerThanMs), ...fromRecent];
}

// Only a chat deleted while it was read loses pages under a reader; the client reads again.
function historyIncomplete(detail: string): ChatStoreUnavailableError {
  return new ChatStoreUnavailableError(`The chat's history could not be read completely (${detail}); try again.`, 1);
}

// Messages are in time order, so the newer ones are a suffix: binary-search its start.
function newerThan(messages: readonly ChatMessage[], newerThanMs: number | undefined): ChatMessage[] {
  if (newerThanMs === undefined) return [...messages];
  let low = 0;
  let high = messages.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (Date.parse((messages[mid] as ChatMessage).createdAt) > newerThanMs) high = mid;
    else low = mid + 1;
  }
  return messages.slice(low);
}

/**
 * The turn of `messageId` (its tool steps and reply, the reply last) when its reply has left
 * `recent`: searched in the pages, newest first. Steps on an earlier page than the reply's are left out.
 */
export async function findPagedTurn(state: ChatState, readPage: PageReader, messageId: string): Promise<ChatMessage[] | undefined> {
  const id = replyId(messageId);
  for (let n = state.pageCount - 1; n >= 0; n--) {
    const page = await readPage(n);
    if (page?.messages.some((m) => m.id === id) === true) {
      const inRecent = state.recent.filter((m) => m.replyTo === messageId);
      const onPage = page.messages.filter((m) => m.replyTo === messageId);
      const entries = [...onPage, ...inRecent.filter((m) => !onPage.some((p) => p.id === m.id))];
      return entries.slice(0, entries.findIndex((m) => m.id === id) + 1);
    }
  }
  return undefined;
}
