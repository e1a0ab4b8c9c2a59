/**
 * Which messages a turn's prompt carries: the newest ones whose stored token counts, with the
 * instructions, fit the budget. Walks back from the end, so its cost is the window, not the chat.
 * The newest message (the one being answered) is always included, even if it alone is over budget.
 */
import { REPLY_PRIMING_TOKENS } from './tokens';

export function selectHistoryWindow<M extends { tokens: number }>(messages: readonly M[], instructionsTokens: number, budget: number): M[] {
  let used = instructionsTokens + REPLY_PRIMING_TOKENS;
  let start = messages.length;
  while (start > 0) {
    const next = messages[start - 1] as M;
    if (start < messages.length && used + next.tokens > budget) break;
    used += next.tokens;
    start--;
  }
  return messages.slice(start);
}
