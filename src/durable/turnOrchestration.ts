/**
 * The turn orchestration: one instance per chat turn, with a deterministic id per chat and message,
 * so a turn is started once however often its start is retried. It calls the model and the tools as
 * activities (a completed one is never run again on replay) and signals the outcome to its chat
 * entity, which records it and starts the next turn. All decisions are chat/turn.ts's; this only
 * carries them to activities and back, so it stays deterministic.
 */
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { TurnProgress, modelStepOutputSchema, toolResultSchema, turnPlanSchema } from '../chat/turn';
import type { ToolCallRecord, ToolResult, TurnPlan } from '../chat/state';
import { chatEntityId } from './chatEntityStore';
import { decodeStorable, encodeStorable } from './storableJson';

export const TURN_ORCHESTRATION = 'chatTurn';
export const MODEL_STEP_ACTIVITY = 'chatModelStep';
export const TOOL_STEP_ACTIVITY = 'chatToolStep';

/** `turn~<chatId>~<messageId>`: neither id may contain `~`, so the id names one turn of one chat. */
export function turnInstanceId(chatId: string, messageId: string): string {
  return `turn~${chatId}~${messageId}`;
}

export const turnOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const plan: TurnPlan = turnPlanSchema.parse(decodeStorable(context.df.getInput()));
  const turn = new TurnProgress(plan);
  let calls: ToolCallRecord[] = [];
  try {
    for (;;) {
      const step = turn.nextModelStep();
      const output = modelStepOutputSchema.parse(decodeStorable(yield context.df.callActivity(MODEL_STEP_ACTIVITY, encodeStorable(step))));
      calls = turn.afterModel(output, step.tools);
      if (calls.length === 0) break;
      // Parallel calls of one reply run side by side; their results keep the order of the calls.
      const results: unknown = yield context.df.Task.all(calls.map((call) => context.df.callActivity(TOOL_STEP_ACTIVITY, encodeStorable(turn.toolStep(call)))));
      turn.afterTools((results as unknown[]).map((r): ToolResult => toolResultSchema.parse(decodeStorable(r))));
      calls = [];
    }
  } catch {
    // A failed activity (e.g. one that outlived the function timeout) still ends the turn, as failed
    // (TurnProgress.outcome): its chat must hear of it or its queue waits forever. Calls left without
    // a result get an error result, as the model's API needs one for every call in later prompts.
    if (calls.length > 0) turn.afterTools(calls.map((call): ToolResult => ({ toolCallId: call.id, name: call.name, content: JSON.stringify({ error: 'The tool call failed.' }), failed: true })));
  }
  // Signalled, not called: the orchestration completes in the same commit, so the entity can purge it.
  context.df.signalEntity(chatEntityId(plan.chatId), 'finishTurn', encodeStorable(turn.outcome()));
  return { messageId: plan.messageId, rounds: turn.outcome().rounds.length };
};

