/**
 * One orchestration instance in memory: its stored state (once loaded), the timers and activities
 * under way for it, and the queue that serialises everything that changes it — so an instance runs
 * one episode at a time, and a result, an event or a purge never interleaves with one.
 */
import { escapeTableKey } from '../entityId';
import type { InstanceSnapshot } from './instance';

export class InstanceRecord {
  readonly partitionKey: string;
  /** undefined until loaded; null when the instance does not exist. */
  state: InstanceSnapshot | null | undefined;
  loading: Promise<void> | undefined;
  /** Actions queued or running; a record is only forgotten when idle. */
  busy = 0;
  episodeQueued = false;
  readonly timers = new Map<number, NodeJS.Timeout>();
  readonly runningActivities = new Set<number>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly instanceId: string) {
    this.partitionKey = escapeTableKey(instanceId);
  }

  /** Runs `action` after everything queued for the instance before it. */
  exclusive<T>(action: () => Promise<T>): Promise<T> {
    this.busy++;
    const run = this.queue.then(action, action).finally(() => this.busy--);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Resolves when everything queued so far has run. */
  idle(): Promise<unknown> {
    return this.queue;
  }

  stopTimers(): void {
    for (const handle of this.timers.values()) clearTimeout(handle);
    this.timers.clear();
  }
}
