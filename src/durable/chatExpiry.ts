/**
 * Expiry of idle chats: one orchestration per chat (`expiry~<chat key>`), started when the chat is
 * created, that sleeps on a durable timer until the chat is due (CHAT_TTL_DAYS after its last
 * change), asks the chat whether it is still idle, and if so has it delete itself with everything it
 * owns, then purges the chat's own rows (no entity can purge itself) and has the owner's chat
 * index purge this orchestration once it has finished. A chat used in the meantime answers a later
 * due time, and the orchestration sleeps again. Neither the JS SDK nor the Durable HTTP API can
 * schedule an entity signal, hence the orchestration.
 */
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { parseChatKey } from '../chat/chatKey';
import { chatEntityId } from './chatEntityStore';
import { chatIndexEntityId } from './chatIndex';

export const CHAT_EXPIRY_ORCHESTRATION = 'chatExpiry';
export const PURGE_CHAT_ACTIVITY = 'chatPurge';

export function chatExpiryInstanceId(chatKey: string): string {
  return `expiry~${chatKey}`;
}

export const chatExpiryOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const key = String(context.df.getInput());
  const chat = chatEntityId(key);
  for (;;) {
    // The chat's due time, or null once it is gone (deleted) or never expires (CHAT_TTL_DAYS=0).
    const due: unknown = yield context.df.callEntity(chat, 'expiryDue');
    if (typeof due !== 'string') return 'not due';
    if (context.df.currentUtcDateTime.getTime() < Date.parse(due)) {
      yield context.df.createTimer(new Date(due));
      continue;
    }
    if ((yield context.df.callEntity(chat, 'expire')) === true) {
      yield context.df.callActivity(PURGE_CHAT_ACTIVITY, key);
      // This orchestration cannot purge itself: the owner's chat index does, once it has finished.
      context.df.signalEntity(chatIndexEntityId(parseChatKey(key).owner), 'sweep', { instanceId: context.df.instanceId });
      return 'expired';
    }
  }
};
