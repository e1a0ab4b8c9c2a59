/** The chat as clients see it (the seed's field names), optionally only messages newer than a timestamp. */
import type { ChatMessage, ChatState } from './state';

/** A message as clients see it: without the internal token count and error code. */
export type ChatMessageView = Omit<ChatMessage, 'tokens' | 'errorCode'>;

export interface ChatView {
  id: string;
  exists: true;
  instructions: string;
  createdAt: string;
  lastUpdatedAt: string;
  totalMessages: number;
  totalTokens: number;
  recentMessages: ChatMessageView[];
}

export function toChatView(id: string, state: ChatState, newerThanMs?: number): ChatView {
  return {
    id,
    exists: true,
    instructions: state.instructions,
    createdAt: state.createdAt,
    lastUpdatedAt: state.lastUpdatedAt,
    totalMessages: state.messages.length,
    totalTokens: state.totalTokens,
    recentMessages: newerMessages(state.messages, newerThanMs).map(toMessageView),
  };
}

// Messages are stored in time order, so the newer ones are a suffix: binary-search its start.
function newerMessages(messages: readonly ChatMessage[], newerThanMs: number | undefined): readonly ChatMessage[] {
  if (newerThanMs === undefined) return messages;
  let low = 0;
  let high = messages.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (Date.parse((messages[mid] as ChatMessage).createdAt) > newerThanMs) high = mid;
    else low = mid + 1;
  }
  return messages.slice(low);
}

function toMessageView(m: ChatMessage): ChatMessageView {
  const view: ChatMessageView = { id: m.id, role: m.role, content: m.content, createdAt: m.createdAt };
  if (m.replyTo !== undefined) view.replyTo = m.replyTo;
  if (m.status !== undefined) view.status = m.status;
  if (m.error !== undefined) view.error = m.error;
  return view;
}
