// The local host's episode decisions without I/O: how the SDK's actions become numbered history
// events (ids as the SDK numbers its tasks), timer cancellation, callActivityWithRetry, and when a
// return takes effect. The same behaviour end to end, on both runtimes: orchestrations.test.ts.
import { describe, expect, it } from 'vitest';
import { MAX_MESSAGES_PER_EPISODE, planEpisode, retryDelayMs, takeBatch, type OrchestratorOutcome } from '../../devhost/durable/orchestrations/episode';
import { eventRaised, executionStarted, taskCompleted, taskFailed, timerFired, type MessageEvent } from '../../devhost/durable/orchestrations/history';
import { emptyPendingWork, type InboxMessage, type PendingWork } from '../../devhost/durable/orchestrations/instance';
import { ActionType, type Action } from '../../devhost/durable/orchestrations/sdkProtocol';

const now = new Date('2026-01-01T00:00:00.000Z');
const context = { now, instanceId: 'i', executionId: 'e', orchestratorName: 'orch', customStatusJson: null };
const state = (actions: Action[], extra: Partial<{ isDone: boolean; output: unknown; error: string; customStatus: unknown }> = {}): OrchestratorOutcome => ({
  kind: 'state',
  state: { isDone: false, actions, output: undefined, customStatus: undefined, error: undefined, ...extra },
});
const inbox = (...events: MessageEvent[]): InboxMessage[] => events.map((event, i) => ({ key: `m-${i}`, order: i, event }));

describe('planEpisode', () => {
  it('numbers new task actions in order; external-event waits take no number', () => {
    const actions: Action[] = [
      { actionType: ActionType.SignalEntity, instanceId: '@counter@k', operation: 'add', input: 1 },
      { actionType: ActionType.CallActivity, functionName: 'a', input: '"x"' },
      { actionType: ActionType.WaitForExternalEvent },
      { actionType: ActionType.CreateTimer, fireAt: '2026-01-01T00:01:00.000Z', isCanceled: false },
      { actionType: ActionType.CallEntity, instanceId: '@counter@k', operation: 'get' },
    ];
    const plan = planEpisode(emptyPendingWork(), [], state(actions), context);
    expect(plan.decisions.map((event) => [event.EventType, event.EventId])).toEqual([
      [14, 0],
      [4, 1],
      [10, 2],
      [14, 3],
    ]);
    expect(plan.pending).toMatchObject({ nextEventId: 4, knownActions: 5, activities: [1], outbox: [0, 3], timers: [{ id: 2, action: 3 }] });
    expect(plan.pending.entityCalls).toHaveLength(1);

    // The next episode repeats every action; only the one past knownActions is new.
    const next = planEpisode(plan.pending, [], state([...actions, { actionType: ActionType.CallActivity, functionName: 'b' }]), context);
    expect(next.decisions.map((event) => [event.EventType, event.EventId])).toEqual([[4, 4]]);
  });

  it('drops a timer once its action says it is cancelled, and completes once nothing it started is outstanding', () => {
    const timer: Action = { actionType: ActionType.CreateTimer, fireAt: '2026-01-01T00:05:00.000Z', isCanceled: false };
    const first = planEpisode(emptyPendingWork(), [], state([{ actionType: ActionType.WaitForExternalEvent }, timer]), context);
    expect(first.pending.timers).toHaveLength(1);

    const returnedKeepingTimer = planEpisode(first.pending, [eventRaised(now, 'go', '1')], state([{ actionType: ActionType.WaitForExternalEvent }, timer], { isDone: true, output: 'ok' }), context);
    expect(returnedKeepingTimer.completion).toBeUndefined(); // an uncancelled timer holds the return back

    const cancelled = planEpisode(first.pending, [eventRaised(now, 'go', '1')], state([{ actionType: ActionType.WaitForExternalEvent }, { ...timer, isCanceled: true }], { isDone: true, output: 'ok' }), context);
    expect(cancelled.pending.timers).toEqual([]);
    expect(cancelled.completion).toEqual({ status: 'Completed', outputJson: '"ok"' });
  });

  it('retries in the host: a delay timer after each failure (at once after the last), then a new attempt', () => {
    const action: Action = { actionType: ActionType.CallActivityWithRetry, functionName: 'flaky', input: 1, retryOptions: { firstRetryIntervalInMilliseconds: 1000, maxNumberOfAttempts: 2 } };
    const scheduled = planEpisode(emptyPendingWork(), [], state([action]), context);
    expect(scheduled.pending.retries).toMatchObject([{ attempt: 1, scheduledId: 0 }]);

    const failed = planEpisode(scheduled.pending, [taskFailed(now, 0, 'r', 'd')], state([action]), context);
    expect(failed.decisions).toMatchObject([{ EventType: 10, EventId: 1, FireAt: '2026-01-01T00:00:01.000Z' }]);

    const retried = planEpisode(failed.pending, [timerFired(now, 1, '2026-01-01T00:00:01.000Z')], state([action]), context);
    expect(retried.decisions).toMatchObject([{ EventType: 4, EventId: 2, Name: 'flaky', Input: '1' }]);

    const lastFailed = planEpisode(retried.pending, [taskFailed(now, 2, 'r', 'd')], state([action]), context);
    expect(lastFailed.decisions).toMatchObject([{ EventType: 10, EventId: 3, FireAt: now.toISOString() }]);
    const givenUp = planEpisode(lastFailed.pending, [timerFired(now, 3, now.toISOString())], state([action], { error: 'gave up' }), context);
    expect(givenUp.decisions).toEqual([]);
    expect(givenUp.completion).toEqual({ status: 'Failed', outputJson: JSON.stringify("Orchestrator function 'orch' failed: gave up") });
  });

  it('computes retry delays like the Durable Task Framework', () => {
    const options = { firstRetryIntervalInMilliseconds: 100, maxNumberOfAttempts: 4, backoffCoefficient: 2, maxRetryIntervalInMilliseconds: 300 };
    expect([1, 2, 3, 4].map((attempt) => retryDelayMs(options, attempt))).toEqual([100, 200, 300, undefined]);
  });

  it('fails the instance on an action the local host does not run', () => {
    const plan = planEpisode(emptyPendingWork(), [], state([{ actionType: ActionType.CallSubOrchestrator, functionName: 'sub' }]), context);
    expect(plan.completion?.status).toBe('Failed');
    expect(plan.completion?.outputJson).toMatch(/does not support callSubOrchestrator/);
  });
});

describe('takeBatch', () => {
  const pending: PendingWork = { ...emptyPendingWork(), activities: [0, 1], retries: [{ name: 'f', input: null, options: { firstRetryIntervalInMilliseconds: 1, maxNumberOfAttempts: 2 }, attempt: 1, scheduledId: 1 }] };

  it('takes messages in arrival order and ends before one that moves a retry', () => {
    const batch = takeBatch(inbox(taskCompleted(now, 0, '1'), eventRaised(now, 'x', '2'), taskFailed(now, 1, 'r', 'd'), eventRaised(now, 'y', '3')), pending, false);
    expect(batch.taken.map((message) => message.key)).toEqual(['m-0', 'm-1']);
    const next = takeBatch(inbox(taskFailed(now, 1, 'r', 'd'), eventRaised(now, 'y', '3')), pending, false);
    expect(next.taken.map((message) => message.key)).toEqual(['m-0']);
  });

  it('drops results nothing waits for and a start that is not the first', () => {
    const batch = takeBatch(inbox(taskCompleted(now, 7, '1'), executionStarted(now, 'i', 'e', 'o', '1', 0), eventRaised(now, 'x', '2')), pending, false);
    expect(batch.taken).toHaveLength(3);
    expect(batch.events.map((event) => event.EventType)).toEqual([15]);
  });

  it('takes at most a bounded number of messages', () => {
    const many = Array.from({ length: MAX_MESSAGES_PER_EPISODE + 5 }, (_, i) => eventRaised(now, `e${i}`, null));
    expect(takeBatch(inbox(...many), pending, false).taken).toHaveLength(MAX_MESSAGES_PER_EPISODE);
  });
});
