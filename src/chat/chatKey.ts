/**
 * Chats are scoped to their owner: a chat's key in storage (its entity key, and the prefix of its
 * turns, pages, todo list and stream records) is `<owner>:<chatId>`, or the bare chat id in the
 * shared namespace of function-key mode. Chat ids cannot contain `:`, so a key names one chat of one
 * owner, and two owners' chats with the same id are two chats.
 */
import type { ChatListEntry } from './chatList';
import type { ChatStore } from './service';
import type { TurnStreamStore } from './turnStream';

export const SHARED_OWNER = '_shared';

export function chatKey(owner: string | undefined, chatId: string): string {
  return owner === undefined ? chatId : `${owner}:${chatId}`;
}

/** The owner (undefined: shared) and the chat id a key names. */
export function parseChatKey(key: string): { owner: string | undefined; chatId: string } {
  const colon = key.indexOf(':');
  return colon === -1 ? { owner: undefined, chatId: key } : { owner: key.slice(0, colon), chatId: key.slice(colon + 1) };
}

/** A store addressed by chat keys, and the chat list of any owner. */
export type KeyedChatStore = Omit<ChatStore, 'listChats'> & { listChats(owner: string | undefined): Promise<ChatListEntry[]> };

/** The store as one owner sees it: their chat ids, their list. */
export function ownedChatStore(store: KeyedChatStore, owner: string | undefined): ChatStore {
  const key = (chatId: string): string => chatKey(owner, chatId);
  return {
    read: (chatId) => store.read(key(chatId)),
    readPage: (chatId, page) => store.readPage(key(chatId), page),
    signal: (chatId, operation) => store.signal(key(chatId), operation),
    raiseTurnEvent: (instanceId, eventName, data) => store.raiseTurnEvent(instanceId, eventName, data),
    purgeDeleted: (chatId) => store.purgeDeleted(key(chatId)),
    listChats: () => store.listChats(owner),
  };
}

/** Streamed turns' records as one owner reads them. */
export function ownedStreams(streams: TurnStreamStore | undefined, owner: string | undefined): Pick<TurnStreamStore, 'readAfter'> | undefined {
  if (streams === undefined) return undefined;
  return { readAfter: (chatId, messageId, afterKey) => streams.readAfter(chatKey(owner, chatId), messageId, afterKey) };
}
