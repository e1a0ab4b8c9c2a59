/**
 * The chat index: one `chatindex` entity per owner (per signed-in user; `_shared` in function-key
 * mode) holding a summary of each of their chats, so a list is one read however many chats exist.
 * The chat entities keep it current by signals (entity-to-entity signals are ordered per sender):
 * `upsert` when a chat's summary changes, `remove` when it is deleted. Its state is validated on read.
 *
 * It also purges what an expired chat leaves: the chat's expiry orchestration cannot purge itself,
 * so its last act is to signal `sweep` here, and the index purges it once finished (kept in
 * `expiriesToPurge` and tried again at the next operation while it still runs).
 */
import * as df from 'durable-functions';
import type { EntityContext } from 'durable-functions';
import { z } from 'zod';
import { SHARED_OWNER } from '../chat/chatKey';
import type { ChatListEntry } from '../chat/chatList';
import { ChatStateInvalidError } from '../errors';
import type { ChatInstances } from './chatInstances';

export const CHAT_INDEX_ENTITY_NAME = 'chatindex';
const INDEX_SCHEMA_VERSION = 1;

export function chatIndexEntityId(owner: string | undefined): df.EntityId {
  return new df.EntityId(CHAT_INDEX_ENTITY_NAME, owner ?? SHARED_OWNER);
}

const summarySchema = z.object({ title: z.string(), createdAt: z.string(), lastUpdatedAt: z.string(), messageCount: z.number().int().nonnegative() });
// A list, not an object keyed by chat id: '__proto__' is a valid chat id.
const indexSchema = z.object({
  schemaVersion: z.literal(INDEX_SCHEMA_VERSION),
  chats: z.array(summarySchema.extend({ id: z.string() })),
  expiriesToPurge: z.array(z.string()).optional(),
});
type ChatIndexState = z.infer<typeof indexSchema>;
const operations = {
  upsert: z.object({ chatId: z.string().min(1), summary: summarySchema }),
  remove: z.object({ chatId: z.string().min(1) }),
  sweep: z.object({ instanceId: z.string().min(1) }),
};
/** How long an operation waits for a swept expiry orchestration to finish before leaving it for later. */
const SWEEP_WAIT_MS = 2_000;

export interface ChatIndexPorts {
  instances(context: EntityContext<unknown>): Pick<ChatInstances, 'purgeWhenFinished'>;
}

export function parseChatIndex(stored: unknown, owner: string): ChatIndexState {
  if (stored === undefined || stored === null) return { schemaVersion: INDEX_SCHEMA_VERSION, chats: [] };
  const parsed = indexSchema.safeParse(stored);
  if (!parsed.success) throw new ChatStateInvalidError(`the chat index of '${owner}'`, parsed.error);
  return parsed.data;
}

export function chatIndexEntries(index: ChatIndexState): ChatListEntry[] {
  return index.chats;
}

export function chatIndexEntity(ports: ChatIndexPorts) {
  return async function chatIndex(context: EntityContext<unknown>): Promise<void> {
    const index = parseChatIndex(context.df.getState(), context.df.entityKey);
    let chats = index.chats;
    let expiries = index.expiriesToPurge ?? [];
    switch (context.df.operationName) {
      case 'upsert': {
        const { chatId, summary } = operations.upsert.parse(context.df.getInput());
        chats = [...chats.filter((c) => c.id !== chatId), { id: chatId, ...summary }];
        break;
      }
      case 'remove': {
        const { chatId } = operations.remove.parse(context.df.getInput());
        chats = chats.filter((c) => c.id !== chatId);
        break;
      }
      case 'sweep': {
        const { instanceId } = operations.sweep.parse(context.df.getInput());
        if (!expiries.includes(instanceId)) expiries = [...expiries, instanceId];
        break;
      }
      default:
        context.warn(`chat index entity: unknown operation '${context.df.operationName ?? ''}' ignored`);
        return;
    }
    if (expiries.length > 0) {
      const instances = ports.instances(context);
      const purged = await Promise.all(expiries.map((id) => instances.purgeWhenFinished(id, SWEEP_WAIT_MS).catch(() => false)));
      expiries = expiries.filter((_, i) => !purged[i]);
    }
    if (chats.length === 0 && expiries.length === 0) context.df.destructOnExit();
    else context.df.setState({ schemaVersion: INDEX_SCHEMA_VERSION, chats, ...(expiries.length > 0 && { expiriesToPurge: expiries }) });
  };
}
