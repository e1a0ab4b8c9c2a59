/**
 * One orchestration episode's decisions, without I/O: which inbox messages it takes, and what the
 * orchestrator's answer means — new history events, work to start, completion. It follows how the
 * Durable extension replays the SDK's actions:
 *
 *   - the action list always holds every action since the start; the ones past `knownActions` are
 *     new, and each task-like action takes the next event id (WaitForExternalEvent takes none), in
 *     list order — the order the SDK numbers its tasks, so TaskScheduledId/TimerId/EventSent ids match;
 *   - a timer is cancelled by its action's `isCanceled` flag, on any later episode;
 *   - callActivityWithRetry retries in the host: after each failed attempt a delay timer (at once
 *     when no attempt is left, which the SDK waits for before failing), then a new attempt;
 *   - a return or a failure takes effect only once no activity, timer or entity call it started is
 *     outstanding (observed on the Functions host: an uncancelled timer or a slower activity in a
 *     Task.any keeps the instance Running until it finishes).
 */
import { randomUUID } from 'node:crypto';
import {
  EventType,
  eventSent,
  taskScheduled,
  timerCreated,
  type HistoryEvent,
  type MessageEvent,
} from './history';
import { awaitsTasks, type InboxMessage, type PendingTimer, type PendingWork, type RetryState } from './instance';
import { ActionType, type Action, type OrchestratorState, type RetryOptions } from './sdkProtocol';

/** Bounds one episode's commit (one table transaction). */
export const MAX_MESSAGES_PER_EPISODE = 50;

export interface MessageBatch {
  /** Every message taken (all leave the inbox). */
  taken: InboxMessage[];
  /** The ones that enter the history (stale results and duplicates do not). */
  events: MessageEvent[];
  terminateReason: string | undefined;
}

function retryOf(pending: PendingWork, event: MessageEvent): RetryState | undefined {
  if (event.EventType === EventType.TaskFailed) return pending.retries.find((retry) => retry.scheduledId === event.TaskScheduledId);
  if (event.EventType === EventType.TimerFired) return pending.retries.find((retry) => retry.timerId === event.TimerId);
  return undefined;
}

function isExpected(pending: PendingWork, event: MessageEvent, taken: MessageEvent[]): boolean {
  switch (event.EventType) {
    case EventType.TaskCompleted:
    case EventType.TaskFailed:
      return pending.activities.includes(event.TaskScheduledId) && !taken.some((other) => 'TaskScheduledId' in other && other.TaskScheduledId === event.TaskScheduledId);
    case EventType.TimerFired:
      return pending.timers.some((timer) => timer.id === event.TimerId);
    case EventType.EventRaised:
      // An entity call's result is expected once; any other name is an external event.
      return !taken.some((other) => other.EventType === EventType.EventRaised && other.Name === event.Name && pending.entityCalls.some((call) => call.requestId === event.Name));
    default:
      return true;
  }
}

/**
 * The messages of the next episode, in arrival order. A message that moves a retry (its attempt's
 * failure, its delay timer) opens an episode of its own: the SDK numbers the retry's next task when it
 * reads that message, so nothing the orchestrator schedules in reply to earlier messages may come first.
 */
export function takeBatch(inbox: InboxMessage[], pending: PendingWork, firstEpisode: boolean): MessageBatch {
  const batch: MessageBatch = { taken: [], events: [], terminateReason: undefined };
  for (const message of [...inbox].sort((a, b) => a.order - b.order)) {
    if (batch.taken.length >= MAX_MESSAGES_PER_EPISODE) break;
    const event = message.event;
    if (batch.taken.length > 0 && retryOf(pending, event) !== undefined) break;
    batch.taken.push(message);
    if (event.EventType === EventType.ExecutionTerminated) {
      batch.terminateReason = event.Input;
      break;
    }
    if (event.EventType === EventType.ExecutionStarted && !firstEpisode) continue;
    if (isExpected(pending, event, batch.events)) batch.events.push(event);
    if (retryOf(pending, event) !== undefined) break;
  }
  return batch;
}

export type OrchestratorOutcome = { kind: 'state'; state: OrchestratorState } | { kind: 'crashed'; message: string };

export interface EpisodePlan {
  /** Events the host records after the messages: what the orchestrator (and retries) scheduled. */
  decisions: HistoryEvent[];
  /** The work the instance now waits for (the host starts what is not yet under way). */
  pending: PendingWork;
  customStatusJson: string | null;
  completion: { status: 'Completed' | 'Failed'; outputJson: string | null } | undefined;
}

export interface EpisodeContext {
  now: Date;
  instanceId: string;
  executionId: string;
  orchestratorName: string;
  customStatusJson: string | null;
}

/** The delay before the next attempt, or undefined when the failed one was the last. */
export function retryDelayMs(options: RetryOptions, failedAttempt: number): number | undefined {
  if (failedAttempt >= options.maxNumberOfAttempts) return undefined;
  const delay = options.firstRetryIntervalInMilliseconds * (options.backoffCoefficient ?? 1) ** (failedAttempt - 1);
  return options.maxRetryIntervalInMilliseconds === undefined ? delay : Math.min(delay, options.maxRetryIntervalInMilliseconds);
}

/** The entity operation's input as the extension sends it: JSON of the value; none for null/undefined. */
function entityInputJson(input: unknown): string | undefined {
  return input === undefined || input === null ? undefined : JSON.stringify(input);
}

/** The extension's RequestMessage for a signal or call (what the entity receives; the SDK reads its `id`). */
function requestMessageJson(action: Action, requestId: string, context: EpisodeContext): string {
  const input = entityInputJson(action.input);
  return JSON.stringify({
    $type: 'Microsoft.Azure.WebJobs.Extensions.DurableTask.RequestMessage, Microsoft.Azure.WebJobs.Extensions.DurableTask',
    op: action.operation,
    ...(action.actionType === ActionType.SignalEntity ? { signal: true } : {}),
    ...(input === undefined ? {} : { input }),
    id: requestId,
    parent: context.instanceId,
    parentExecution: context.executionId,
    Timestamp: context.now.toISOString(),
    requestTime: context.now.toISOString(),
  });
}

const UNSUPPORTED: Record<number, string> = {
  [ActionType.CallSubOrchestrator]: 'callSubOrchestrator',
  [ActionType.CallSubOrchestratorWithRetry]: 'callSubOrchestratorWithRetry',
  [ActionType.ContinueAsNew]: 'continueAsNew',
  [ActionType.CallHttp]: 'callHttp',
  [ActionType.LockEntities]: 'lock (critical sections)',
  [ActionType.ReleaseEntities]: 'lock (critical sections)',
};

export function planEpisode(before: PendingWork, messages: MessageEvent[], outcome: OrchestratorOutcome, context: EpisodeContext): EpisodePlan {
  const pending: PendingWork = structuredClone(before);
  const plan: EpisodePlan = { decisions: [], pending, customStatusJson: context.customStatusJson, completion: undefined };
  const now = context.now;

  const schedule = (name: string, input: string | null): number => {
    const id = pending.nextEventId++;
    plan.decisions.push(taskScheduled(now, id, name, input));
    pending.activities.push(id);
    return id;
  };
  const startTimer = (fireAt: string, action?: number): PendingTimer => {
    const timer: PendingTimer = { id: pending.nextEventId++, fireAt, action };
    plan.decisions.push(timerCreated(now, timer.id, fireAt));
    return timer;
  };

  // 1. What the messages settle (in order, as the SDK reads them).
  for (const event of messages) {
    if (event.EventType === EventType.TaskCompleted || event.EventType === EventType.TaskFailed) {
      pending.activities = pending.activities.filter((id) => id !== event.TaskScheduledId);
      const retry = pending.retries.find((candidate) => candidate.scheduledId === event.TaskScheduledId);
      if (retry === undefined) continue;
      if (event.EventType === EventType.TaskCompleted) {
        pending.retries = pending.retries.filter((candidate) => candidate !== retry);
        continue;
      }
      const delay = retryDelayMs(retry.options, retry.attempt);
      retry.exhausted = delay === undefined;
      const timer = startTimer(new Date(now.getTime() + (delay ?? 0)).toISOString());
      retry.timerId = timer.id;
      pending.timers.push(timer);
    } else if (event.EventType === EventType.TimerFired) {
      pending.timers = pending.timers.filter((timer) => timer.id !== event.TimerId);
      const retry = pending.retries.find((candidate) => candidate.timerId === event.TimerId);
      if (retry === undefined) continue;
      if (retry.exhausted) {
        pending.retries = pending.retries.filter((candidate) => candidate !== retry);
        continue;
      }
      retry.attempt++;
      retry.timerId = undefined;
      retry.scheduledId = schedule(retry.name, retry.input);
    } else if (event.EventType === EventType.EventRaised) {
      pending.entityCalls = pending.entityCalls.filter((call) => call.requestId !== event.Name);
    }
  }

  if (outcome.kind === 'crashed') {
    plan.completion = { status: 'Failed', outputJson: JSON.stringify(`Orchestrator function '${context.orchestratorName}' failed: ${outcome.message}`) };
    return plan;
  }

  // 2. The orchestrator's new actions, then cancellations of earlier timers.
  const { state } = outcome;
  let unsupported: string | undefined;
  for (let index = pending.knownActions; index < state.actions.length; index++) {
    const action = state.actions[index];
    if (action === undefined) continue;
    switch (action.actionType) {
      case ActionType.CallActivity:
      case ActionType.CallActivityWithRetry: {
        const input = action.input === undefined ? null : JSON.stringify(action.input);
        const name = action.functionName ?? '';
        const scheduledId = schedule(name, input);
        if (action.actionType === ActionType.CallActivityWithRetry && action.retryOptions !== undefined) {
          pending.retries.push({ name, input, options: action.retryOptions, attempt: 1, scheduledId });
        }
        break;
      }
      case ActionType.CreateTimer: {
        const timer = startTimer(action.fireAt ?? now.toISOString(), index);
        if (!action.isCanceled) pending.timers.push(timer);
        break;
      }
      case ActionType.WaitForExternalEvent:
        break;
      case ActionType.CallEntity:
      case ActionType.SignalEntity: {
        const id = pending.nextEventId++;
        const requestId = randomUUID();
        plan.decisions.push(eventSent(now, id, action.instanceId ?? '', requestMessageJson(action, requestId, context)));
        pending.outbox.push(id);
        if (action.actionType === ActionType.CallEntity) pending.entityCalls.push({ requestId, id });
        break;
      }
      default:
        unsupported ??= UNSUPPORTED[action.actionType] ?? `action type ${action.actionType}`;
    }
  }
  pending.knownActions = state.actions.length;
  pending.timers = pending.timers.filter((timer) => timer.action === undefined || state.actions[timer.action]?.isCanceled !== true);
  plan.customStatusJson = state.customStatus === undefined ? null : JSON.stringify(state.customStatus);

  // 3. Completion, once nothing it started is outstanding.
  if (unsupported !== undefined) {
    const message = `the local host does not support ${unsupported}; run the app with func start`;
    plan.completion = { status: 'Failed', outputJson: JSON.stringify(`Orchestrator function '${context.orchestratorName}' failed: ${message}`) };
  } else if ((state.isDone || state.error !== undefined) && !awaitsTasks(pending)) {
    plan.completion =
      state.error !== undefined
        ? { status: 'Failed', outputJson: JSON.stringify(`Orchestrator function '${context.orchestratorName}' failed: ${state.error}`) }
        : { status: 'Completed', outputJson: state.output === undefined ? null : JSON.stringify(state.output) };
  }
  return plan;
}
