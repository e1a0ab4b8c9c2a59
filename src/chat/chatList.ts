/**
 * A user's chats as a list: newest activity first, in pages. The continuation token is the position
 * of the last chat a page showed (its last activity and id), so paging stays in order while chats
 * change: a chat used since moves to the front, and one deleted since is simply not there.
 */
import { z } from 'zod';
import { BadRequestError } from '../errors';
import type { ChatSummary } from './state';

export interface ChatListEntry extends ChatSummary {
  id: string;
}

export interface ChatListPage {
  chats: ChatListEntry[];
  /** Pass as `continuationToken` for the next page; absent on the last page. */
  continuationToken?: string;
}

const tokenSchema = z.object({ t: z.string(), id: z.string() });

/** Newest activity first; ties by id, so the order is total. */
function before(a: { lastUpdatedAt: string; id: string }, b: { lastUpdatedAt: string; id: string }): boolean {
  return a.lastUpdatedAt !== b.lastUpdatedAt ? a.lastUpdatedAt > b.lastUpdatedAt : a.id < b.id;
}

function parseToken(token: string): { lastUpdatedAt: string; id: string } {
  try {
    const parsed = tokenSchema.parse(JSON.parse(Buffer.from(token, 'base64url').toString('utf8')));
    return { lastUpdatedAt: parsed.t, id: parsed.id };
  } catch {
    throw new BadRequestError('invalid_query', 'continuationToken is not one this app handed out.');
  }
}

export function pageChats(entries: readonly ChatListEntry[], limit: number, token: string | undefined): ChatListPage {
  const after = token === undefined ? undefined : parseToken(token);
  const sorted = entries.filter((e) => after === undefined || before(after, e)).sort((a, b) => (before(a, b) ? -1 : 1));
  const chats = sorted.slice(0, limit);
  const last = chats.at(-1);
  if (sorted.length <= limit || last === undefined) return { chats };
  return { chats, continuationToken: Buffer.from(JSON.stringify({ t: last.lastUpdatedAt, id: last.id })).toString('base64url') };
}
