/**
 * Runs an orchestrator the way the Durable extension does, through durable-functions' own replayer:
 * each episode replays the whole history so far, the activities it newly schedules are run (here, by
 * a function the test gives) and their completions appended, until the orchestrator returns. Every
 * replay must schedule what the history says it scheduled before (the orchestrator is deterministic).
 */
import { DummyOrchestrationContext, type OrchestrationHandler } from 'durable-functions';
import { Orchestrator } from 'durable-functions/lib/src/orchestrations/Orchestrator';

// durable-functions' HistoryEventType and ActionType values.
const EXECUTION_STARTED = 0;
const TASK_SCHEDULED = 4;
const TASK_COMPLETED = 5;
const TASK_FAILED = 6;
const ORCHESTRATOR_STARTED = 12;
const ORCHESTRATOR_COMPLETED = 13;
const CALL_ACTIVITY = 0;
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

/** Runs one activity call: its result, or a throw (a failed activity). */
export type ActivityRunner = (name: string, input: unknown) => unknown;

export interface RunOptions {
  instanceId?: string;
  /** Append the completions of activities scheduled together in reverse order (they finish in any order). */
  completeInReverse?: boolean;
  maxEpisodes?: number;
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
  for (let episode = 1; episode <= (options.maxEpisodes ?? 50); episode++) {
    const trigger = { history: viaJson(history), input: viaJson(input), instanceId, isReplaying: false, parentInstanceId: '', upperSchemaVersion: UPPER_SCHEMA_VERSION };
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
    // Sequence numbers are handed out in the order of the actions, one each.
    const actions = flatten(state.actions);
    actions.slice(0, scheduled.length).forEach((action, seq) => {
      const before = scheduled[seq] as Action;
      if (action.actionType !== before.actionType || action.functionName !== before.functionName || JSON.stringify(action.input) !== JSON.stringify(before.input)) {
        throw new Error(`Non-deterministic replay: action ${seq} was ${JSON.stringify(before)}, now ${JSON.stringify(action)}`);
      }
    });
    const signals = actions.filter((a) => a.actionType === SIGNAL_ENTITY).map((a): SignalSent => ({ instanceId: a.instanceId ?? '', operation: a.operation ?? '', input: viaJson(a.input) }));
    if (state.isDone || error !== undefined) return { output: state.output, error, calls, signals, episodes: episode };

    const fresh = actions.slice(scheduled.length).map((action, k) => ({ action, seq: scheduled.length + k }));
    scheduled.push(...fresh.map((f) => f.action));
    const activities = fresh.filter((f) => f.action.actionType === CALL_ACTIVITY);
    if (activities.length === 0) throw new Error(`The orchestrator neither returned nor scheduled an activity in episode ${episode}.`);
    for (const { action, seq } of activities) history.push({ EventType: TASK_SCHEDULED, EventId: seq, IsPlayed: false, Timestamp: timestamp(), Name: action.functionName });
    history.push({ EventType: ORCHESTRATOR_COMPLETED, EventId: -1, IsPlayed: false, Timestamp: timestamp() });
    const completions = await Promise.all(
      activities.map(async ({ action, seq }) => {
        const activityInput = viaJson(action.input);
        calls.push({ name: action.functionName ?? '', input: activityInput, episode });
        try {
          const result = await activity(action.functionName ?? '', activityInput);
          return { EventType: TASK_COMPLETED, EventId: -1, IsPlayed: false, TaskScheduledId: seq, Result: JSON.stringify(result ?? null) };
        } catch (err) {
          return { EventType: TASK_FAILED, EventId: -1, IsPlayed: false, TaskScheduledId: seq, Reason: err instanceof Error ? err.message : String(err), Details: 'activity failed' };
        }
      }),
    );
    history.push({ EventType: ORCHESTRATOR_STARTED, EventId: -1, IsPlayed: false, Timestamp: timestamp() });
    for (const event of options.completeInReverse === true ? completions.reverse() : completions) history.push({ ...event, Timestamp: timestamp() });
  }
  throw new Error('The orchestration did not end within the episodes allowed.');
}
