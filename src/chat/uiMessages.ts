/**
 * The chat in the AI SDK's `UIMessage` shape, for `useChat({ messages })`, and the request its
 * DefaultChatTransport sends (`{id, messages, trigger, messageId}`). Plain TypeScript: the shapes are
 * declared here (the `ai` package is a test dependency), and the suites check them with `ai`'s own
 * validateUIMessages.
 */
import { z } from 'zod';
import type { ChatView, ChatMessageView } from './view';

export type UIPart =
  | { type: 'step-start' }
  | { type: 'text'; text: string; state: 'done' }
  | {
      type: `tool-${string}`;
      toolCallId: string;
      state: 'approval-requested' | 'output-available' | 'output-error' | 'output-denied';
      input: unknown;
      output?: unknown;
      errorText?: string;
      approval?: { id: string; approved?: boolean; reason?: string };
    };

export interface UIMessage {
  id: string;
  role: 'user' | 'assistant';
  parts: UIPart[];
  /** How a turn ended when it did not reply: `failed` (with the error) or `cancelled`. */
  metadata?: { status: 'failed' | 'cancelled'; error?: string };
}

function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The chat's user messages and replies as UIMessages: each turn's tool rounds and reply are one
 * assistant message (id `<messageId>.reply`), a step per model call. System messages (instructions)
 * are left out: they are the server's. A running turn shows the calls it waits to have approved.
 */
export function toUIMessages(view: Pick<ChatView, 'recentMessages' | 'runningTurn'>): UIMessage[] {
  const out: UIMessage[] = [];
  const turns = new Map<string, UIMessage>();
  const tools = new Map<string, Extract<UIPart, { toolCallId: string }>>();
  const assistantFor = (messageId: string): UIMessage => {
    let message = turns.get(messageId);
    if (message === undefined) {
      message = { id: `${messageId}.reply`, role: 'assistant', parts: [] };
      turns.set(messageId, message);
      out.push(message);
    }
    return message;
  };
  for (const m of view.recentMessages) {
    if (m.role === 'system') continue;
    if (m.role === 'user') {
      out.push({ id: m.id, role: 'user', parts: [{ type: 'text', text: m.content, state: 'done' }] });
      continue;
    }
    const message = assistantFor(m.replyTo ?? m.id);
    if (m.role === 'assistant') {
      message.parts.push({ type: 'step-start' });
      if (m.content !== '') message.parts.push({ type: 'text', text: m.content, state: 'done' });
      for (const call of m.toolCalls ?? []) {
        const part: Extract<UIPart, { toolCallId: string }> = { type: `tool-${call.name}`, toolCallId: call.id, state: 'output-error', input: jsonOrText(call.arguments), errorText: 'No result was recorded.' };
        tools.set(call.id, part);
        message.parts.push(part);
      }
      if (m.status === 'failed' || m.status === 'cancelled') message.metadata = m.error === undefined ? { status: m.status } : { status: m.status, error: m.error };
      continue;
    }
    const part = tools.get(m.toolCallId ?? '');
    if (part !== undefined) settle(part, m);
  }
  // A running turn's rounds are stored when it ends; the calls it waits to have approved show now.
  const running = view.runningTurn;
  if (running?.pendingApprovals !== undefined && running.pendingApprovals.length > 0) {
    const message = assistantFor(running.messageId);
    message.parts.push({ type: 'step-start' });
    for (const pending of running.pendingApprovals) {
      message.parts.push({ type: `tool-${pending.name}`, toolCallId: pending.toolCallId, state: 'approval-requested', input: jsonOrText(pending.arguments), approval: { id: pending.toolCallId } });
    }
  }
  return out;
}

/** A call's part once its tool entry is there: its output, its error, or its denial. */
function settle(part: Extract<UIPart, { toolCallId: string }>, result: ChatMessageView): void {
  delete part.errorText;
  const content = jsonOrText(result.content);
  const decision = result.approval;
  if (result.status === 'denied') {
    part.state = 'output-denied';
    part.approval = { id: part.toolCallId, approved: false, ...(decision?.reason === undefined ? {} : { reason: decision.reason }) };
    return;
  }
  if (decision !== undefined) part.approval = { id: part.toolCallId, approved: decision.approved, ...(decision.reason === undefined ? {} : { reason: decision.reason }) };
  if (result.status === 'failed') {
    part.state = 'output-error';
    part.errorText = typeof content === 'object' && content !== null && 'error' in content && typeof content.error === 'string' ? content.error : result.content;
    // An error part may carry only a granted approval; a call stopped by a cancel was never approved.
    if (decision?.approved !== true) delete part.approval;
    return;
  }
  part.state = 'output-available';
  part.output = content;
}

const textPart = z.looseObject({ type: z.literal('text'), text: z.string() });
const toolPart = z.looseObject({
  type: z.string().regex(/^(tool-.+|dynamic-tool)$/),
  toolCallId: z.string().min(1).max(128),
  state: z.string(),
  approval: z.looseObject({ id: z.string(), approved: z.boolean().optional(), reason: z.string().max(1000).optional() }).optional(),
});
const uiMessage = z.looseObject({
  id: z.string().min(1),
  role: z.enum(['system', 'user', 'assistant']),
  parts: z.array(z.looseObject({ type: z.string() })),
});

/** What DefaultChatTransport POSTs; only the last message is read (the chat keeps the history). */
export const uiChatRequestSchema = z.looseObject({
  id: z.string(),
  messages: z.array(uiMessage).min(1, 'messages must hold at least the message to send'),
  trigger: z.enum(['submit-message', 'regenerate-message']).default('submit-message'),
  messageId: z.string().optional(),
});
export type UIChatRequest = z.infer<typeof uiChatRequestSchema>;

export type UIChatAction =
  | { kind: 'send'; messageId: string; text: string }
  | { kind: 'answer'; replyId: string; answers: { toolCallId: string; approved: boolean; reason?: string }[] };

/**
 * What a request asks for: to send its last message (a user message: its text parts), or to answer
 * the approvals its last message (the assistant's) responded to. A string: why neither applies.
 */
export function uiChatAction(request: UIChatRequest): UIChatAction | string {
  const last = request.messages.at(-1);
  if (last === undefined) return 'messages must hold at least the message to send.';
  if (last.role === 'user') {
    const texts = last.parts.map((p) => textPart.safeParse(p)).filter((p) => p.success).map((p) => p.data.text);
    if (last.parts.length !== texts.length) return 'The last message may only have text parts (files and data parts are not supported).';
    return { kind: 'send', messageId: last.id, text: texts.join('') };
  }
  if (last.role === 'assistant') {
    const answers = last.parts
      .map((p) => toolPart.safeParse(p))
      .filter((p) => p.success && p.data.state === 'approval-responded' && p.data.approval?.approved !== undefined)
      .map((p) => {
        const part = p.data as z.infer<typeof toolPart>;
        const approved = part.approval?.approved === true;
        const reason = part.approval?.reason;
        return reason === undefined ? { toolCallId: part.toolCallId, approved } : { toolCallId: part.toolCallId, approved, reason };
      });
    if (answers.length === 0) return 'The last message is the assistant’s but responds to no approval: send a user message, or tool parts in state approval-responded.';
    return { kind: 'answer', replyId: last.id, answers };
  }
  return 'The last message must be a user message, or the assistant’s with approval responses.';
}
