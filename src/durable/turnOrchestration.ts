/**
 * The turn orchestration: one instance per chat turn, with a deterministic id per chat and message,
 * so a turn is started once however often its start is retried. It calls the model and the tools as
 * activities (a completed one is never run again on replay), waits for approvals of the calls that
 * need them (an external event raced against a durable timer), stops at its next step when a cancel
 * event comes, and signals the outcome to its chat entity, which records it and starts the next turn.
 * All decisions are chat/turn.ts's; this only carries them to activities and back, so it stays
 * deterministic.
 */
import type { OrchestrationContext, OrchestrationHandler, Task, TimerTask } from 'durable-functions';
import { approvalAnswerSchema, CANCEL_EVENT, modelStepOutputSchema, toolResultSchema, turnPlanSchema, TurnProgress, type StopStepInput } from '../chat/turn';
import type { ApprovalDecision, ToolCallRecord, ToolResult, TurnPlan } from '../chat/state';
import { chatEntityId } from './chatEntityStore';
import { decodeStorable, encodeStorable } from './storableJson';

export const TURN_ORCHESTRATION = 'chatTurn';
export const MODEL_STEP_ACTIVITY = 'chatModelStep';
export const TOOL_STEP_ACTIVITY = 'chatToolStep';
export const STOP_STEP_ACTIVITY = 'chatStopStep';

/** `turn~<chatId>~<messageId>`: neither id may contain `~`, so the id names one turn of one chat. */
export function turnInstanceId(chatId: string, messageId: string): string {
  return `turn~${chatId}~${messageId}`;
}

export const turnOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const plan: TurnPlan = turnPlanSchema.parse(decodeStorable(context.df.getInput()));
  const chat = chatEntityId(plan.chatId);
  const turn = new TurnProgress(plan);
  let cancelled = false;

  // Waits for `task` or a cancel, whichever comes first; true if the cancel did. Every wait gets a
  // fresh cancel waiter: a task may not be yielded inside two compound tasks, and the newest waiter
  // is the one a cancel event reaches.
  function* orCancel(task: Task): Generator<Task, boolean, unknown> {
    const cancel = context.df.waitForExternalEvent(CANCEL_EVENT);
    return (yield context.df.Task.any([task, cancel])) === cancel;
  }

  // Asks for the approvals the calls need and waits for each: its answer, its expiry, or a cancel.
  function* decideApprovals(calls: ToolCallRecord[]): Generator<Task, void, unknown> {
    const requests = turn.approvalsFor(calls, context.df.currentUtcDateTime);
    if (requests.length === 0) return;
    context.df.signalEntity(chat, 'awaitApprovals', encodeStorable({ messageId: plan.messageId, approvals: requests }));
    for (const request of requests) {
      let decision: ApprovalDecision = { approved: false, by: 'cancel' };
      if (!cancelled) {
        // Answers that came while an earlier call waited are kept by the runtime for this wait.
        const answer = context.df.waitForExternalEvent(request.event);
        const expiry: TimerTask = context.df.createTimer(new Date(request.expiresAt));
        const cancel = context.df.waitForExternalEvent(CANCEL_EVENT);
        const winner: unknown = yield context.df.Task.any([answer, expiry, cancel]);
        // A pending timer would keep the instance running (and unpurgeable) until it fires.
        if (winner !== expiry) expiry.cancel();
        if (winner === answer) {
          const parsed = approvalAnswerSchema.safeParse(decodeStorable(answer.result));
          decision = parsed.success ? { ...parsed.data, by: 'user' } : { approved: false, by: 'user', reason: 'The answer could not be read.' };
        } else if (winner === expiry) {
          decision = { approved: false, by: 'timeout' };
        } else {
          cancelled = true;
        }
      }
      turn.decide(request.toolCallId, decision);
      context.df.signalEntity(chat, 'settleApproval', encodeStorable({ messageId: plan.messageId, toolCallId: request.toolCallId, decision }));
    }
  }

  let calls: ToolCallRecord[] = [];
  try {
    while (!turn.done) {
      const step = turn.nextModelStep();
      const model = context.df.callActivity(MODEL_STEP_ACTIVITY, encodeStorable(step));
      if (yield* orCancel(model)) {
        cancelled = true;
        // The model call stops at its next chunk and answers with the text it had produced.
        const stop: StopStepInput = { chatId: plan.chatId, messageId: plan.messageId };
        yield context.df.callActivity(STOP_STEP_ACTIVITY, encodeStorable(stop));
      }
      const output = modelStepOutputSchema.parse(decodeStorable(yield model));
      if (cancelled) {
        turn.cancel(output.ok ? output.text : output.partialText, output);
        break;
      }
      calls = turn.afterModel(output, step.tools);
      if (calls.length === 0) break;
      yield* decideApprovals(calls);
      // Parallel calls of one reply run side by side; their results keep the order of the calls.
      const runnable = cancelled ? [] : turn.runnable(calls);
      let ran: ToolResult[] = [];
      if (runnable.length > 0) {
        const tools = context.df.Task.all(runnable.map((call) => context.df.callActivity(TOOL_STEP_ACTIVITY, encodeStorable(turn.toolStep(call)))));
        // Calls that started are let finish: their effects happen once, and their results are kept.
        if (yield* orCancel(tools)) cancelled = true;
        ran = ((yield tools) as unknown[]).map((r): ToolResult => toolResultSchema.parse(decodeStorable(r)));
      }
      turn.afterTools(calls, ran, cancelled);
      calls = [];
      if (cancelled) turn.cancel('');
    }
  } catch {
    // A failed activity (e.g. one that outlived the function timeout) still ends the turn, as failed
    // (TurnProgress.outcome): its chat must hear of it or its queue waits forever. Calls left without
    // a result get an error result, as the model's API needs one for every call in later prompts.
    if (calls.length > 0) turn.afterTools(calls, [], cancelled);
    if (cancelled && !turn.done) turn.cancel('');
  }
  // Signalled, not called: the orchestration completes in the same commit, so the entity can purge it.
  context.df.signalEntity(chat, 'finishTurn', encodeStorable(turn.outcome()));
  return { messageId: plan.messageId, rounds: turn.outcome().rounds.length };
};
