/**
 * Runs an orchestrator the way the Durable extension does, through durable-functions' own replayer:
 * each episode replays the whole history so far, the activities it newly schedules are run (here, by
 * a function the test gives) and their completions appended, until the orchestrator returns. Every
 * replay must schedule what the history says it scheduled before (the orchestrator is deterministic).
 * A test's `script` may instead hold activities back, raise external events and fire timers.
 */
import { DummyOrchestrationContext, type OrchestrationHandler } from 'durable-functions';
import { Orchestrator } from 'durable-functions/lib/src/orchestrations/Orchestrator';

// durable-functions' HistoryEventType and ActionType values.
const EXECUTION_STARTED = 0;
const TASK_SCHEDULED = 4;
const TASK_COMPLETED = 5;
const TASK_FAILED = 6;
const TIMER_CREATED = 10;
const TIMER_FIRED = 11;
const EVENT_RAISED = 15;
const ORCHESTRATOR_STARTED = 12;
const ORCHESTRATOR_COMPLETED = 13;
const CALL_ACTIVITY = 0;
const CREATE_TIMER = 5;
const WAIT_FOR_EXTERNAL_EVENT = 6;
const SIGNAL_ENTITY = 9;
// Replay schema V4 (the extension's current one): Task.all is one compound action.
const UPPER_SCHEMA_VERSION = 3;

interface Action {
  actionType: number;
  functionName?: string;
  input?: unknown;
  instanceId?: string;
  operation?: string;
  compoundActions?: Action[];
  fireAt?: string;
  isCanceled?: boolean;
  externalEventName?: string;
}

interface OrchestratorState {
  isDone: boolean;
  actions: unknown;
  output?: unknown;
  error?: string;
}

export interface ActivityCall {
  name: string;
  /** As the activity receives it (through JSON). */
  input: unknown;
  /** The episode that scheduled it (1 for the first): calls scheduled together ran in parallel. */
  episode: number;
}

export interface SignalSent {
  /** `@<entity name>@<key>` */
  instanceId: string;
  operation: string;
  input: unknown;
}

export interface OrchestrationRun {
  /** What the orchestrator returned; undefined when it failed. */
  output: unknown;
  /** The orchestrator's exception message, when it failed. */
  error: string | undefined;
  calls: ActivityCall[];
  signals: SignalSent[];
  episodes: number;
}

/** What the orchestration waits for after an episode. */
export interface Pending {
  episode: number;
  /** Activities scheduled and not completed yet, oldest first. */
  activities: { seq: number; name: string; input: unknown }[];
  /** Timers created and neither fired nor cancelled. */
  timers: { seq: number; fireAt: string }[];
  /** The external events waited for now (a name once per waiter). */
  events: string[];
}

/** What happens next, in this order: events raised, timers fired, activities completed. */
export interface EpisodeScript {
  raise?: { name: string; data: unknown }[];
  fireTimers?: number[];
  /** The sequence numbers of the pending activities to run and complete; default: all of them. */
  complete?: number[];
}

/** Runs one activity call: its result, or a throw (a failed activity). */
export type ActivityRunner = (name: string, input: unknown) => unknown;

export interface RunOptions {
  instanceId?: string;
  /** Append the completions of activities scheduled together in reverse order (they finish in any order). */
  completeInReverse?: boolean;
  maxEpisodes?: number;
  /** Decides each episode's events, timers and completions; default: every pending activity completes. */
  script?: (pending: Pending) => EpisodeScript;
}

const viaJson = <T>(value: T): T => (value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T));

function flatten(actions: unknown): Action[] {
  if (Array.isArray(actions)) return actions.flatMap(flatten);
  const action = actions as Action;
  return action.compoundActions !== undefined ? flatten(action.compoundActions) : [action];
}

export async function runOrchestration(handler: OrchestrationHandler, input: unknown, activity: ActivityRunner, options: RunOptions = {}): Promise<OrchestrationRun> {
  const listener = new Orchestrator(handler).listen();
  const instanceId = options.instanceId ?? 'instance-1';
  let ms = Date.parse('2026-01-15T22:00:00.000Z');
  const timestamp = () => new Date((ms += 1_000)).toISOString();
  const history: Record<string, unknown>[] = [
    { EventType: ORCHESTRATOR_STARTED, EventId: -1, IsPlayed: false, Timestamp: timestamp() },
    { EventType: EXECUTION_STARTED, EventId: -1, IsPlayed: false, Timestamp: timestamp(), Name: 'orchestration', Input: JSON.stringify(input) },
  ];
  const scheduled: Action[] = [];
  const calls: ActivityCall[] = [];
  const pendingActivities = new Map<number, { seq: number; name: string; input: unknown; episode: number }>();
  const pendingTimers = new Map<number, { seq: number; fireAt: string }>();
  for (let episode = 1; episode <= (options.maxEpisodes ?? 50); episode++) {
    // The timer settings are the extension's defaults for Azure Storage.
    const trigger = { history: viaJson(history), input: viaJson(input), instanceId, isReplaying: false, parentInstanceId: '', upperSchemaVersion: UPPER_SCHEMA_VERSION, maximumShortTimerDuration: '6.00:00:00', longRunningTimerIntervalDuration: '3.00:00:00' };
    let state: OrchestratorState;
    let error: string | undefined;
    try {
      state = (await listener(trigger, new DummyOrchestrationContext('orchestration', `invocation-${episode}`, () => {}))) as OrchestratorState;
    } catch (err) {
      // The replayer reports a failed orchestrator with its state after a label.
      const [message, data] = (err as Error).message.split('\n\n$OutOfProcData$:');
      error = message;
      state = JSON.parse(data ?? '{"isDone":false,"actions":[]}') as OrchestratorState;
    }
    const all = flatten(state.actions);
    // Sequence numbers are handed out in the order of the actions, one each, except to waits for events.
    const actions = all.filter((a) => a.actionType !== WAIT_FOR_EXTERNAL_EVENT);
    actions.slice(0, scheduled.length).forEach((action, seq) => {
      const before = scheduled[seq] as Action;
      if (action.actionType !== before.actionType || action.functionName !== before.functionName || JSON.stringify(action.input) !== JSON.stringify(before.input)) {
        throw new Error(`Non-deterministic replay: action ${seq} was ${JSON.stringify(before)}, now ${JSON.stringify(action)}`);
      }
      if (action.isCanceled === true) pendingTimers.delete(seq);
    });
    const signals = actions.filter((a) => a.actionType === SIGNAL_ENTITY).map((a): SignalSent => ({ instanceId: a.instanceId ?? '', operation: a.operation ?? '', input: viaJson(a.input) }));
    if (state.isDone || error !== undefined) return { output: state.output, error, calls, signals, episodes: episode };

    const fresh = actions.slice(scheduled.length).map((action, k) => ({ action, seq: scheduled.length + k }));
    scheduled.push(...fresh.map((f) => f.action));
    for (const { action, seq } of fresh) {
      if (action.actionType === CALL_ACTIVITY) {
        history.push({ EventType: TASK_SCHEDULED, EventId: seq, IsPlayed: false, Timestamp: timestamp(), Name: action.functionName });
        pendingActivities.set(seq, { seq, name: action.functionName ?? '', input: viaJson(action.input), episode });
      } else if (action.actionType === CREATE_TIMER && action.isCanceled !== true) {
        history.push({ EventType: TIMER_CREATED, EventId: seq, IsPlayed: false, Timestamp: timestamp(), FireAt: action.fireAt });
        pendingTimers.set(seq, { seq, fireAt: action.fireAt ?? '' });
      }
    }
    history.push({ EventType: ORCHESTRATOR_COMPLETED, EventId: -1, IsPlayed: false, Timestamp: timestamp() });

    const pending: Pending = {
      episode,
      activities: [...pendingActivities.values()].map(({ seq, name, input: activityInput }) => ({ seq, name, input: activityInput })),
      timers: [...pendingTimers.values()],
      events: all.filter((a) => a.actionType === WAIT_FOR_EXTERNAL_EVENT).map((a) => a.externalEventName ?? ''),
    };
    const next = options.script?.(pending) ?? {};
    const due = (next.complete ?? [...pendingActivities.keys()]).map((seq) => {
      const activity = pendingActivities.get(seq);
      if (activity === undefined) throw new Error(`No activity ${seq} is pending.`);
      pendingActivities.delete(seq);
      return activity;
    });
    const raised = (next.raise ?? []).map(({ name, data }) => ({ EventType: EVENT_RAISED, EventId: -1, IsPlayed: false, Name: name, Input: JSON.stringify(data) }));
    const fired = (next.fireTimers ?? []).map((seq) => {
      const timer = pendingTimers.get(seq);
      if (timer === undefined) throw new Error(`No timer ${seq} is pending.`);
      pendingTimers.delete(seq);
      return { EventType: TIMER_FIRED, EventId: -1, IsPlayed: false, TimerId: seq, FireAt: timer.fireAt };
    });
    if (due.length + raised.length + fired.length === 0) throw new Error(`The orchestrator neither returned nor has anything to wait for after episode ${episode}.`);
    const completions = await Promise.all(
      due.map(async ({ seq, name, input: activityInput, episode: scheduledIn }) => {
        calls.push({ name, input: activityInput, episode: scheduledIn });
        try {
          const result = await activity(name, activityInput);
          return { EventType: TASK_COMPLETED, EventId: -1, IsPlayed: false, TaskScheduledId: seq, Result: JSON.stringify(result ?? null) };
        } catch (err) {
          return { EventType: TASK_FAILED, EventId: -1, IsPlayed: false, TaskScheduledId: seq, Reason: err instanceof Error ? err.message : String(err), Details: 'activity failed' };
        }
      }),
    );
    history.push({ EventType: ORCHESTRATOR_STARTED, EventId: -1, IsPlayed: false, Timestamp: timestamp() });
    for (const event of [...raised, ...fired, ...(options.completeInReverse === true ? completions.reverse() : completions)]) history.push({ ...event, Timestamp: timestamp() });
  }
  throw new Error('The orchestration did not end within the episodes allowed.');
}
