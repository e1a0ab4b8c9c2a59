/** The chat as clients see it (the seed's field names). */
import type { ChatMessage, ChatState } from './state';

/** A message as clients see it: without the internal token count, error code and stream attempt. */
export type ChatMessageView = Omit<ChatMessage, 'tokens' | 'errorCode' | 'streamAttempt'>;

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

/** `messages`: the part of the history the client asked for (chat/history.ts reads it). */
export function toChatView(id: string, state: ChatState, messages: readonly ChatMessage[]): ChatView {
  return {
    id,
    exists: true,
    instructions: state.instructions,
    createdAt: state.createdAt,
    lastUpdatedAt: state.lastUpdatedAt,
    totalMessages: state.totalMessages,
    totalTokens: state.totalTokens,
    recentMessages: messages.map(toMessageView),
  };
}

function toMessageView(m: ChatMessage): ChatMessageView {
  const view: ChatMessageView = { id: m.id, role: m.role, content: m.content, createdAt: m.createdAt };
  if (m.replyTo !== undefined) view.replyTo = m.replyTo;
  if (m.status !== undefined) view.status = m.status;
  if (m.error !== undefined) view.error = m.error;
  return view;
}
