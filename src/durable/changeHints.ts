/**
 * A process-local hint that a chat entity has just computed a new state. The entity often runs in
 * the same process as the HTTP handler waiting on it; the hint lets the waiter re-read at once
 * instead of sleeping out its pause. Only a hint: the state is committed after the operation
 * returns, and other instances never see it, so waiters still poll and read committed state.
 */
import { EventEmitter } from 'node:events';

const chatChanges = new EventEmitter().setMaxListeners(0);

export function announceChatChange(chatId: string): void {
  chatChanges.emit(chatId);
}

/** Resolves true on the next hint for the chat, false after `timeoutMs`. */
export function nextChatChange(chatId: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const onChange = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      chatChanges.off(chatId, onChange);
      resolve(false);
    }, timeoutMs);
    chatChanges.once(chatId, onChange);
  });
}
