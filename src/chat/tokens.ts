/**
 * Token counting with a real BPE tokenizer (o200k_base, the encoding of the GPT-4o/4.1/5 and o-series
 * models). Counts are taken once, when a message is stored, and kept with it, so choosing a turn's
 * history window never re-tokenizes the chat.
 */
import { countTokens as countO200k } from 'gpt-tokenizer/encoding/o200k_base';

/** Chat formats add a few tokens per message for the role and separators. */
export const MESSAGE_OVERHEAD_TOKENS = 4;
/** Every reply is primed with a few tokens. */
export const REPLY_PRIMING_TOKENS = 3;

export function countMessageTokens(content: string): number {
  return countO200k(content) + MESSAGE_OVERHEAD_TOKENS;
}
