/** The chat as clients see it (the seed's field names). */
import type { ApprovalDecision, ChatMessage, ChatState } from './state';

/** A message as clients see it: without the internal token count, error code, stream attempt and answer id. */
export type ChatMessageView = Omit<ChatMessage, 'tokens' | 'errorCode' | 'streamAttempt' | 'approval'> & { approval?: Omit<ApprovalDecision, 'answerId'> };

/** A tool call of the running turn that waits for a person's answer (POST .../approvals/{toolCallId}). */
export interface PendingApprovalView {
  toolCallId: string;
  name: string;
  arguments: string;
  requestedAt: string;
  expiresAt: string;
}

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
  /** The turn running now (its user message is in the history); `waiting_for_approval` while a call waits for an answer. */
  runningTurn?: { messageId: string; startedAt: string; status: 'running' | 'waiting_for_approval'; pendingApprovals?: PendingApprovalView[] };
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
  if (state.turn !== undefined) {
    const pending = (state.turn.approvals ?? []).filter((a) => a.decision === undefined);
    view.runningTurn = { messageId: state.turn.messageId, startedAt: state.turn.startedAt, status: pending.length > 0 ? 'waiting_for_approval' : 'running' };
    if (pending.length > 0) {
      view.runningTurn.pendingApprovals = pending.map((a) => ({ toolCallId: a.toolCallId, name: a.name, arguments: a.arguments, requestedAt: a.requestedAt, expiresAt: a.expiresAt }));
    }
  }
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
  if (m.approval !== undefined) {
    const { answerId: _internal, ...decision } = m.approval;
    view.approval = decision;
  }
  return view;
}
