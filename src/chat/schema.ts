/**
 * Stored chat states and history pages cross a storage boundary, so they are validated when read,
 * like inputs. A state carries a schema version; a state without one is the layout before history
 * pages (one entity with every message, schema 1), migrated here to the current layout with all its
 * messages still recent — the entity then pages them out over its next operations. Schema 2 (turns
 * inside the entity) gains an empty queue.
 */
import { z } from 'zod';
import { ChatStateInvalidError } from '../errors';
import { CHAT_SCHEMA_VERSION, REMEMBERED_MESSAGE_IDS, type ChatMessage, type ChatState } from './state';
import { HISTORY_PAGE_SCHEMA_VERSION, type HistoryPage } from './history';

const timestamp = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'must be an ISO-8601 timestamp');
const count = z.number().int().nonnegative();

const toolCallSchema = z.object({ id: z.string(), name: z.string(), arguments: z.string() });
const approvalDecisionSchema = z.object({ approved: z.boolean(), by: z.enum(['user', 'timeout', 'cancel']), reason: z.string().optional(), answerId: z.string().optional() });

const messageSchema = z.object({
  id: z.string().min(1),
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string(),
  createdAt: timestamp,
  replyTo: z.string().optional(),
  status: z.enum(['failed', 'cancelled', 'denied']).optional(),
  error: z.string().optional(),
  errorCode: z.string().optional(),
  tokens: count,
  streamAttempt: z.string().optional(),
  toolCalls: z.array(toolCallSchema).optional(),
  toolCallId: z.string().optional(),
  name: z.string().optional(),
  approval: approvalDecisionSchema.optional(),
});

const chatV1Schema = z.object({
  instructions: z.string(),
  createdAt: timestamp,
  lastUpdatedAt: timestamp,
  totalTokens: count,
  messages: z.array(messageSchema),
});

const chatV2Fields = {
    schemaVersion: z.literal(2),
    instructions: z.string(),
    createdAt: timestamp,
    lastUpdatedAt: timestamp,
    totalTokens: count,
    totalMessages: count,
    systemMessages: count,
    recent: z.array(messageSchema),
    pageCount: count,
    pagedMessages: count,
    unconfirmedPages: z.array(z.object({ page: count, firstIndex: count })),
    recentMessageIds: z.array(z.string()),
    streamedTurn: z.string().optional(),
};
const partOfHistory = (s: { recent: unknown[]; totalMessages: number; pagedMessages: number }): boolean => s.recent.length <= s.totalMessages && s.pagedMessages <= s.totalMessages;
const HISTORY_RULE = 'recent and paged messages must be part of the history';

/** Schema 2: bounded history, one turn at a time inside the entity (no queue, no tools). */
const chatV2Schema = z.object(chatV2Fields).refine(partOfHistory, HISTORY_RULE);

const chatV3Schema = z
  .object({
    ...chatV2Fields,
    schemaVersion: z.literal(CHAT_SCHEMA_VERSION),
    queue: z.array(z.object({ id: z.string().min(1), content: z.string(), acceptedAt: timestamp, stream: z.boolean().optional() })),
    turn: z
      .object({
        messageId: z.string().min(1),
        instanceId: z.string().min(1),
        startedAt: timestamp,
        stream: z.boolean().optional(),
        approvals: z
          .array(
            z.object({
              toolCallId: z.string(),
              name: z.string(),
              arguments: z.string(),
              round: z.number().int().positive(),
              event: z.string().min(1),
              requestedAt: timestamp,
              expiresAt: timestamp,
              decision: approvalDecisionSchema.optional(),
            }),
          )
          .optional(),
      })
      .optional(),
    tools: z.array(z.string()).optional(),
    unpurgedTurns: z.array(z.string()),
    title: z.string().optional(),
    expiryArmed: z.boolean().optional(),
  })
  .refine(partOfHistory, HISTORY_RULE);

const pageSchema = z.object({
  schemaVersion: z.literal(HISTORY_PAGE_SCHEMA_VERSION),
  page: count,
  firstIndex: count,
  messages: z.array(messageSchema).min(1),
});

/**
 * Zod's output types differ from ours only in optional fields typed `T | undefined`; zod never adds
 * an absent key, so the parsed value is ours as it is.
 */
const asStored = <T>(parsed: unknown): T => parsed as T;

/** False for a state in an older layout, which the entity rewrites on its next operation. */
export function isCurrentSchema(stored: unknown): boolean {
  return typeof stored === 'object' && stored !== null && (stored as { schemaVersion?: unknown }).schemaVersion === CHAT_SCHEMA_VERSION;
}

export function parseChatState(stored: unknown, chatId: string): ChatState {
  if (typeof stored === 'object' && stored !== null && !('schemaVersion' in stored)) {
    const v1 = chatV1Schema.safeParse(stored);
    if (!v1.success) throw new ChatStateInvalidError(`chat '${chatId}' (schema 1)`, v1.error);
    return migrateFromV1(asStored<ChatStateV1>(v1.data));
  }
  if (typeof stored === 'object' && stored !== null && (stored as { schemaVersion?: unknown }).schemaVersion === 2) {
    const v2 = chatV2Schema.safeParse(stored);
    if (!v2.success) throw new ChatStateInvalidError(`chat '${chatId}' (schema 2)`, v2.error);
    return migrateFromV2(asStored<ChatStateV2>(v2.data));
  }
  const v3 = chatV3Schema.safeParse(stored);
  if (!v3.success) throw new ChatStateInvalidError(`chat '${chatId}'`, v3.error);
  return asStored<ChatState>(v3.data);
}

export function parseHistoryPage(stored: unknown, chatId: string, page: number): HistoryPage {
  const parsed = pageSchema.safeParse(stored);
  if (!parsed.success || parsed.data.page !== page) throw new ChatStateInvalidError(`page ${page} of chat '${chatId}'`, parsed.error);
  return asStored<HistoryPage>(parsed.data);
}

/** The layout before history pages: one entity with every message. */
interface ChatStateV1 {
  instructions: string;
  createdAt: string;
  lastUpdatedAt: string;
  totalTokens: number;
  messages: ChatMessage[];
}

/** Schema 2 lacks only what turns as orchestrations added; its turns ran inside the entity, so none is running. */
type ChatStateV2 = Omit<ChatState, 'schemaVersion' | 'queue' | 'turn' | 'tools' | 'unpurgedTurns'> & { schemaVersion: 2 };

function migrateFromV2(v2: ChatStateV2): ChatState {
  return { ...v2, schemaVersion: CHAT_SCHEMA_VERSION, queue: [], unpurgedTurns: [] };
}

function migrateFromV1(v1: ChatStateV1): ChatState {
  return {
    schemaVersion: CHAT_SCHEMA_VERSION,
    queue: [],
    unpurgedTurns: [],
    instructions: v1.instructions,
    createdAt: v1.createdAt,
    lastUpdatedAt: v1.lastUpdatedAt,
    totalTokens: v1.totalTokens,
    totalMessages: v1.messages.length,
    systemMessages: v1.messages.filter((m) => m.role === 'system').length,
    recent: v1.messages,
    pageCount: 0,
    pagedMessages: 0,
    unconfirmedPages: [],
    recentMessageIds: v1.messages.filter((m) => m.role === 'user').map((m) => m.id).slice(-REMEMBERED_MESSAGE_IDS),
  };
}
