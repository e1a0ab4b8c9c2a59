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
  /** Tools the model may call in this chat. */
  tools: string[];
  /** Accepted messages waiting for their turn, in the order they will be answered. */
  pendingMessages: { id: string; content: string; acceptedAt: string }[];
  /** The turn running now (its user message is in the history). */
  runningTurn?: { messageId: string; startedAt: string };
}

/** `messages`: the part of the history the client asked for (chat/history.ts reads it); `allTools`: a chat's tools when it did not choose. */
export function toChatView(id: string, state: ChatState, messages: readonly ChatMessage[], allTools: readonly string[]): ChatView {
  const view: ChatView = {
    id,
    exists: true,
    instructions: state.instructions,
    createdAt: state.createdAt,
    lastUpdatedAt: state.lastUpdatedAt,
    totalMessages: state.totalMessages,
    totalTokens: state.totalTokens,
    recentMessages: messages.map(toMessageView),
    tools: [...(state.tools ?? allTools)],
    pendingMessages: state.queue.map((m) => ({ id: m.id, content: m.content, acceptedAt: m.acceptedAt })),
  };
  if (state.turn !== undefined) view.runningTurn = { messageId: state.turn.messageId, startedAt: state.turn.startedAt };
  return view;
}

function toMessageView(m: ChatMessage): ChatMessageView {
  const view: ChatMessageView = { id: m.id, role: m.role, content: m.content, createdAt: m.createdAt };
  if (m.replyTo !== undefined) view.replyTo = m.replyTo;
  if (m.status !== undefined) view.status = m.status;
  if (m.error !== undefined) view.error = m.error;
  if (m.toolCalls !== undefined) view.toolCalls = m.toolCalls;
  if (m.toolCallId !== undefined) view.toolCallId = m.toolCallId;
  if (m.name !== undefined) view.name = m.name;
  return view;
}
