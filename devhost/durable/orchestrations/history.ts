/**
 * Orchestration history as the Durable extension hands it to the durable-functions SDK: Durable Task
 * Framework events with PascalCase fields, numbered EventTypes, `EventId` (the task sequence number of
 * scheduled work, -1 otherwise), `IsPlayed` and `Timestamp`. Field sets and values follow what the
 * extension 3.19 sends (recorded from the Functions host; see docs/runtimes.md).
 *
 * Stored history keeps activity inputs in TaskScheduled (the host needs them to run the activity);
 * `sdkHistory` hides them as the extension does, and marks past messages as played.
 */
export const EventType = {
  ExecutionStarted: 0,
  ExecutionCompleted: 1,
  ExecutionTerminated: 3,
  TaskScheduled: 4,
  TaskCompleted: 5,
  TaskFailed: 6,
  TimerCreated: 10,
  TimerFired: 11,
  OrchestratorStarted: 12,
  OrchestratorCompleted: 13,
  EventSent: 14,
  EventRaised: 15,
} as const;

interface EventBase {
  EventId: number;
  IsPlayed: boolean;
  Timestamp: string;
}

export interface ExecutionStarted extends EventBase {
  EventType: typeof EventType.ExecutionStarted;
  OrchestrationInstance: { InstanceId: string; ExecutionId: string };
  ParentInstance: null;
  Name: string;
  Version: null;
  /** JSON text. */
  Input: string;
  Tags: null;
  Correlation: null;
  ParentTraceContext: null;
  ScheduledStartTime: null;
  Generation: number;
  GenerateNewTrace: false;
}
export interface ExecutionCompleted extends EventBase {
  EventType: typeof EventType.ExecutionCompleted;
  OrchestrationStatus: 'Completed' | 'Failed';
  Result: string | null;
  FailureDetails: null;
}
export interface ExecutionTerminated extends EventBase {
  EventType: typeof EventType.ExecutionTerminated;
  /** The reason, as given (not JSON). */
  Input: string;
}
export interface TaskScheduled extends EventBase {
  EventType: typeof EventType.TaskScheduled;
  Name: string;
  Version: '';
  /** JSON text of the action's input as the SDK sent it; null towards the SDK. */
  Input: string | null;
  ParentTraceContext: null;
  Tags: null;
}
export interface TaskCompleted extends EventBase {
  EventType: typeof EventType.TaskCompleted;
  TaskScheduledId: number;
  Result: string | null;
}
export interface TaskFailed extends EventBase {
  EventType: typeof EventType.TaskFailed;
  TaskScheduledId: number;
  Reason: string;
  Details: string;
  FailureDetails: null;
}
export interface TimerCreated extends EventBase {
  EventType: typeof EventType.TimerCreated;
  FireAt: string;
}
export interface TimerFired extends EventBase {
  EventType: typeof EventType.TimerFired;
  TimerId: number;
  FireAt: string;
}
export interface OrchestratorStarted extends EventBase {
  EventType: typeof EventType.OrchestratorStarted;
}
export interface OrchestratorCompleted extends EventBase {
  EventType: typeof EventType.OrchestratorCompleted;
}
export interface EventSent extends EventBase {
  EventType: typeof EventType.EventSent;
  /** The entity's scheduler id, `@name@key`. */
  InstanceId: string;
  Name: 'op';
  /** JSON of the extension's RequestMessage. */
  Input: string;
}
export interface EventRaised extends EventBase {
  EventType: typeof EventType.EventRaised;
  Name: string;
  Input: string | null;
  ParentTraceContext: null;
}

export type HistoryEvent =
  | ExecutionStarted
  | ExecutionCompleted
  | ExecutionTerminated
  | TaskScheduled
  | TaskCompleted
  | TaskFailed
  | TimerCreated
  | TimerFired
  | OrchestratorStarted
  | OrchestratorCompleted
  | EventSent
  | EventRaised;

/** Events that arrive as messages (the rest the host records for the orchestrator's own decisions). */
export type MessageEvent = ExecutionStarted | ExecutionTerminated | TaskCompleted | TaskFailed | TimerFired | EventRaised;

const base = (at: Date, eventId = -1): EventBase => ({ EventId: eventId, IsPlayed: false, Timestamp: at.toISOString() });

export const orchestratorStarted = (at: Date): OrchestratorStarted => ({ EventType: EventType.OrchestratorStarted, ...base(at) });
export const orchestratorCompleted = (at: Date): OrchestratorCompleted => ({ EventType: EventType.OrchestratorCompleted, ...base(at) });

export function executionStarted(at: Date, instanceId: string, executionId: string, name: string, input: string, generation: number): ExecutionStarted {
  return {
    OrchestrationInstance: { InstanceId: instanceId, ExecutionId: executionId },
    EventType: EventType.ExecutionStarted,
    ParentInstance: null,
    Name: name,
    Version: null,
    Input: input,
    Tags: null,
    Correlation: null,
    ParentTraceContext: null,
    ScheduledStartTime: null,
    Generation: generation,
    GenerateNewTrace: false,
    ...base(at),
  };
}

export const executionCompleted = (at: Date, status: 'Completed' | 'Failed', result: string | null): ExecutionCompleted => ({
  EventType: EventType.ExecutionCompleted,
  OrchestrationStatus: status,
  Result: result,
  FailureDetails: null,
  ...base(at),
});
export const executionTerminated = (at: Date, reason: string): ExecutionTerminated => ({ EventType: EventType.ExecutionTerminated, Input: reason, ...base(at) });
export const taskScheduled = (at: Date, eventId: number, name: string, input: string | null): TaskScheduled => ({
  EventType: EventType.TaskScheduled,
  Name: name,
  Version: '',
  Input: input,
  ParentTraceContext: null,
  Tags: null,
  ...base(at, eventId),
});
export const taskCompleted = (at: Date, scheduledId: number, result: string | null): TaskCompleted => ({
  EventType: EventType.TaskCompleted,
  TaskScheduledId: scheduledId,
  Result: result,
  ...base(at),
});
export const taskFailed = (at: Date, scheduledId: number, reason: string, details: string): TaskFailed => ({
  EventType: EventType.TaskFailed,
  TaskScheduledId: scheduledId,
  Reason: reason,
  Details: details,
  FailureDetails: null,
  ...base(at),
});
export const timerCreated = (at: Date, eventId: number, fireAt: string): TimerCreated => ({ EventType: EventType.TimerCreated, FireAt: fireAt, ...base(at, eventId) });
export const timerFired = (at: Date, timerId: number, fireAt: string): TimerFired => ({ EventType: EventType.TimerFired, TimerId: timerId, FireAt: fireAt, ...base(at) });
export const eventSent = (at: Date, eventId: number, entitySchedulerId: string, requestJson: string): EventSent => ({
  EventType: EventType.EventSent,
  InstanceId: entitySchedulerId,
  Name: 'op',
  Input: requestJson,
  ...base(at, eventId),
});
export const eventRaised = (at: Date, name: string, input: string | null): EventRaised => ({
  EventType: EventType.EventRaised,
  Name: name,
  Input: input,
  ParentTraceContext: null,
  ...base(at),
});

function isMessage(event: HistoryEvent): event is MessageEvent {
  return (
    event.EventType === EventType.ExecutionStarted ||
    event.EventType === EventType.ExecutionTerminated ||
    event.EventType === EventType.TaskCompleted ||
    event.EventType === EventType.TaskFailed ||
    event.EventType === EventType.TimerFired ||
    event.EventType === EventType.EventRaised
  );
}

/**
 * The history as the orchestrator receives it: the first `pastCount` events are from earlier
 * episodes, and the messages among them are marked played (what the SDK's isReplaying reads).
 */
export function sdkHistory(history: readonly HistoryEvent[], pastCount: number): HistoryEvent[] {
  return history.map((event, index) => {
    if (event.EventType === EventType.TaskScheduled) return { ...event, Input: null };
    return index < pastCount && isMessage(event) ? { ...event, IsPlayed: true } : event;
  });
}
