/**
 * A process-local hint that a streamed turn's records were just stored, so a request tailing the
 * turn in this process reads them at once instead of sleeping out its pause. The records are stored
 * before the hint, so the read finds them; other instances never see the hint and read on their
 * own schedule. Chat state changes are not hinted: the runtime commits them after the entity
 * operation returns, and on the Functions host a hint at that point did not shorten the wait
 * (measured: docs/performance.md).
 */
import { EventEmitter } from 'node:events';

const turnRecords = new EventEmitter().setMaxListeners(0);

export function announceTurnRecords(chatId: string): void {
  turnRecords.emit(chatId);
}

/** Resolves true on the next hint for the chat, false after `timeoutMs`. */
export function nextTurnRecords(chatId: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const onRecords = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      turnRecords.off(chatId, onRecords);
      resolve(false);
    }, timeoutMs);
    turnRecords.once(chatId, onRecords);
  });
}
