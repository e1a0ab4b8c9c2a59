/**
 * What the host keeps about one orchestration instance: its status (what the HTTP API reports), its
 * history, its inbox (messages not yet given to the orchestrator) and the work it is waiting for.
 * The work lists hold event ids only; names and inputs are in the history's scheduling events.
 */
import type { HistoryEvent, MessageEvent } from './history';
import type { RetryOptions } from './sdkProtocol';

export type RuntimeStatus = 'Pending' | 'Running' | 'Completed' | 'Failed' | 'Terminated';

export const isFinished = (status: RuntimeStatus): boolean => status === 'Completed' || status === 'Failed' || status === 'Terminated';

export interface PendingTimer {
  id: number;
  fireAt: string;
  /** Index of the CreateTimer action (the SDK cancels a timer by flagging its action); none for retry delays. */
  action?: number | undefined;
}

/** A callActivityWithRetry in progress: which attempt runs, or which delay timer it waits for. */
export interface RetryState {
  name: string;
  /** The stored action input (see TaskScheduled.Input). */
  input: string | null;
  options: RetryOptions;
  attempt: number;
  scheduledId: number;
  timerId?: number | undefined;
  /** No further attempt once the delay timer fires. */
  exhausted?: boolean | undefined;
}

export interface PendingWork {
  /** The next task sequence number (the SDK numbers tasks the same way). */
  nextEventId: number;
  /** Actions (flattened) already turned into history. */
  knownActions: number;
  /** TaskScheduled ids without a result yet. */
  activities: number[];
  timers: PendingTimer[];
  /** Entity calls without a result yet. */
  entityCalls: { requestId: string; id: number }[];
  /** EventSent ids not yet delivered to their entity. */
  outbox: number[];
  retries: RetryState[];
}

export const emptyPendingWork = (): PendingWork => ({ nextEventId: 0, knownActions: 0, activities: [], timers: [], entityCalls: [], outbox: [], retries: [] });

/** Work the instance waits for before its return or failure takes effect (as on the Functions host). */
export function awaitsTasks(pending: PendingWork): boolean {
  return pending.activities.length > 0 || pending.timers.length > 0 || pending.entityCalls.length > 0;
}

/** A message waiting in the inbox; `key` is its row key (stable, so a re-delivery is recognised). */
export interface InboxMessage {
  key: string;
  /** Arrival order. */
  order: number;
  event: MessageEvent;
}

/** The instance's status fields, as stored in its header row. */
export interface InstanceHeader {
  instanceId: string;
  name: string;
  executionId: string;
  generation: number;
  status: RuntimeStatus;
  createdTime: string;
  lastUpdatedTime: string;
  /** JSON text. */
  inputJson: string;
  outputJson: string | null;
  customStatusJson: string | null;
  pending: PendingWork;
  /** Episodes committed so far (history rows are numbered by episode). */
  episodes: number;
}

export interface InstanceSnapshot {
  header: InstanceHeader;
  history: HistoryEvent[];
  inbox: InboxMessage[];
}
