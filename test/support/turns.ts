/**
 * Chat turns run the way the chat entity and its turn orchestration run them, without either: a post
 * is accepted into the queue, the queue's head is started (its prompt built), and the turn is finished
 * with what a scripted model answers that prompt. For tests of the chat's state rules (chat/state.ts).
 */
import { acceptMessage, finishTurn, startNextTurn, type ChatState, type PostInput, type ToolRound, type TurnEnd, type TurnOptions, type TurnOutcome, type TurnPlan } from '../../src/chat/state';
import type { PromptMessage } from '../../src/model/client';

/** A turn as a scripted model ends it: the reply text, or a whole outcome (tool rounds, a failure). */
export type ScriptedTurn = string | { end: TurnEnd; rounds?: ToolRound[]; totalTokens?: number; streamAttempt?: string };

/** What the scripted model answers a turn's prompt with. */
export type TurnScript = (prompt: readonly PromptMessage[], plan: TurnPlan) => ScriptedTurn;

/** Tokens a scripted reply costs, unless the script says otherwise. */
export const SCRIPTED_TOKENS = 10;

export const echo: TurnScript = (prompt) => `re: ${prompt.at(-1)?.content ?? ''}`;

export function failedTurn(code: string, message: string, partialText = ''): ScriptedTurn {
  return { end: { kind: 'failed', code, message, partialText }, totalTokens: 0 };
}

export interface TurnSettings {
  chatId?: string;
  historyTokenBudget?: number;
  maxToolRounds?: number;
  allTools?: readonly string[];
  approvalTools?: readonly string[];
  approvalTimeoutMs?: number;
}

export const ALL_TOOLS = ['get_current_time', 'add_todo', 'get_todos', 'remove_todo'] as const;
export const APPROVAL_TOOLS = ['remove_todo'] as const;

export function turnOptions(settings: TurnSettings = {}): TurnOptions {
  const chatId = settings.chatId ?? 'c';
  return {
    chatId,
    historyTokenBudget: settings.historyTokenBudget ?? 4_000,
    maxToolRounds: settings.maxToolRounds ?? 8,
    allTools: settings.allTools ?? ALL_TOOLS,
    approvalTools: settings.approvalTools ?? APPROVAL_TOOLS,
    approvalTimeoutMs: settings.approvalTimeoutMs ?? 86_400_000,
    instanceIdOf: (messageId) => `turn~${chatId}~${messageId}`,
  };
}

/** The outcome the entity gets back for `plan` when the model answers `scripted`. */
export function outcomeOf(plan: Pick<TurnPlan, 'messageId'>, scripted: ScriptedTurn): TurnOutcome {
  if (typeof scripted === 'string') return { messageId: plan.messageId, rounds: [], end: { kind: 'replied', text: scripted }, totalTokens: SCRIPTED_TOKENS };
  const outcome: TurnOutcome = { messageId: plan.messageId, rounds: scripted.rounds ?? [], end: scripted.end, totalTokens: scripted.totalTokens ?? SCRIPTED_TOKENS };
  if (scripted.streamAttempt !== undefined) outcome.streamAttempt = scripted.streamAttempt;
  return outcome;
}

/**
 * Posts to an idle chat and runs the turn to its end: accept -> startNextTurn -> finishTurn. `plan`
 * is undefined when nothing started (the message was a retry): then the script is not called. As the
 * entity does when its purges succeed, only the turn just finished stays unpurged.
 */
export function runTurn(state: ChatState, input: PostInput, script: TurnScript, now: () => Date, settings: TurnSettings = {}): { state: ChatState; plan: TurnPlan | undefined } {
  const accepted = acceptMessage(state, input, now());
  const { state: started, plan } = startNextTurn(accepted, turnOptions(settings), now());
  if (plan === undefined) return { state: started, plan };
  const finished = finishTurn(started, outcomeOf(plan, script(plan.prompt, plan)), now());
  return { state: { ...finished, unpurgedTurns: finished.unpurgedTurns.slice(-1) }, plan };
}
