/**
 * The orchestration scheduler: creates instances, runs their episodes one at a time per instance
 * (different instances in parallel), runs the activities they schedule concurrently, fires their
 * timers and sends their entity messages; and answers the durable client (status, events,
 * termination, purge).
 *
 * Every change of an instance is serialised through its own queue (`exclusive`). Work is durable
 * before it is acted on: an episode commits its history, the messages it took and the work it now
 * waits for in one transaction, and only then starts activities, arms timers and sends to entities.
 * So after a crash (recovery reloads every instance that has work):
 *
 *   - an activity whose result is stored is not run again; one in flight runs again (at least once);
 *   - timers are re-armed from the stored list (one that is due fires at once);
 *   - entity messages not yet confirmed are sent again with the same origin (instance + execution,
 *     event id), which the entity recognises: each is applied once, in order; the entity keeps that
 *     origin's mark while the instance could still send it again (entityMessenger.ts).
 *
 * Memory: running instances are kept whole; a finished one keeps only its status.
 */
import { randomUUID } from 'node:crypto';
import type { ActivityFunction, OrchestrationFunction } from '../../catalog';
import { describeError, type Logger } from '../../log';
import type { HostStats } from '../../stats';
import type { EntityService } from '../entityService';
import { retryStorage } from '../storageRetry';
import type { EntityResponse } from '../tableStore';
import type { ActivityRunner } from './activityRunner';
import { EntityMessenger, senderOf } from './entityMessenger';
import { planEpisode, takeBatch, type EpisodePlan, type OrchestratorOutcome } from './episode';
import {
  EventType,
  eventRaised,
  executionCompleted,
  executionStarted,
  executionTerminated,
  orchestratorCompleted,
  orchestratorStarted,
  taskCompleted,
  taskFailed,
  timerFired,
  type EventSent,
  type HistoryEvent,
  type MessageEvent,
  type TaskScheduled,
} from './history';
import { emptyPendingWork, isFinished, type InboxMessage, type InstanceHeader, type InstanceSnapshot, type PendingTimer, type RuntimeStatus } from './instance';
import { InstanceRecord } from './instanceRecord';
import { UnpersistableEpisodeError, type InstanceStore } from './instanceStore';
import type { OrchestratorRunner } from './orchestratorRunner';

/** startNew on an instance that is Pending or Running (the extension's default overridableExistingInstanceStates). */
export class InstanceExistsError extends Error {
  constructor(readonly status: RuntimeStatus) {
    super(`An Orchestration instance with the status ${status} already exists.`);
  }
}

export type MessageOutcome = 'accepted' | 'notFound' | 'gone';
export type PurgeOutcome = { kind: 'purged' } | { kind: 'notFound' } | { kind: 'notFinished'; status: RuntimeStatus };

/** The largest activity result (JSON characters) the local host stores: one message row. */
const MAX_RESULT_CHARS = 440_000;
/** setTimeout's limit; longer timers are re-armed when it elapses. */
const MAX_TIMEOUT_MS = 2_000_000_000;

export class OrchestrationService {
  private readonly records = new Map<string, InstanceRecord>();
  private readonly messenger: EntityMessenger;
  private stopping = false;
  private messageOrder = Date.now() * 1000;

  constructor(
    private readonly store: InstanceStore,
    private readonly orchestrations: Map<string, OrchestrationFunction>,
    private readonly activities: Map<string, ActivityFunction>,
    private readonly orchestratorRunner: OrchestratorRunner,
    private readonly activityRunner: ActivityRunner,
    entities: EntityService | undefined,
    private readonly logger: Logger,
    private readonly stats: HostStats,
  ) {
    this.messenger = new EntityMessenger(entities, logger);
    this.messenger.connect((response) => this.deliverResponse(response));
  }

  // ---- the durable client's API ----

  /** Starts an instance (replacing a finished one of the same id); resolves once it is stored. */
  async start(name: string, instanceId: string | undefined, inputJson: string): Promise<string> {
    const id = instanceId ?? randomUUID().replaceAll('-', '');
    const record = this.record(id);
    await record.exclusive(async () => {
      // A new id (the usual case) needs no read first: the create transaction refuses an existing instance.
      if (record.state === undefined && (await this.create(record, name, inputJson, 0))) return;
      const existing = await this.loaded(record);
      if (existing !== null && !isFinished(existing.header.status)) throw new InstanceExistsError(existing.header.status);
      if (existing !== null) {
        record.stopTimers();
        record.state = null;
        await this.store.purge(record.partitionKey);
      }
      if (!(await this.create(record, name, inputJson, existing === null ? 0 : existing.header.generation + 1))) {
        throw new Error(`Instance ${id} appeared while it was being created.`);
      }
    });
    this.wake(record);
    return id;
  }

  /** Stores a new execution of the instance with its start message; false if the instance exists. */
  private async create(record: InstanceRecord, name: string, inputJson: string, generation: number): Promise<boolean> {
    const now = new Date();
    const header: InstanceHeader = {
      instanceId: record.instanceId,
      name,
      executionId: randomUUID(),
      generation,
      status: 'Pending',
      createdTime: now.toISOString(),
      lastUpdatedTime: now.toISOString(),
      inputJson,
      outputJson: null,
      customStatusJson: null,
      pending: emptyPendingWork(),
      episodes: 0,
    };
    const start = this.message('m-start', executionStarted(now, record.instanceId, header.executionId, name, inputJson, generation));
    if (!(await this.store.create(record.partitionKey, header, start))) return false;
    record.state = { header, history: [], inbox: [start] };
    this.stats.orchestrationsStarted++;
    return true;
  }

  /** The instance's status fields, or undefined when it does not exist. */
  async status(instanceId: string): Promise<InstanceHeader | undefined> {
    const record = this.record(instanceId);
    const state = await this.loaded(record);
    if (state === null) this.forgetIfAbsent(record);
    return state?.header;
  }

  raiseEvent(instanceId: string, eventName: string, dataJson: string): Promise<MessageOutcome> {
    return this.send(instanceId, (order) => ({ key: `m-event-${order}`, order, event: eventRaised(new Date(), eventName, dataJson) }));
  }

  terminate(instanceId: string, reason: string): Promise<MessageOutcome> {
    return this.send(instanceId, (order) => ({ key: `m-terminate-${order}`, order, event: executionTerminated(new Date(), reason) }));
  }

  /** Deletes every row of a finished instance (the Functions host refuses to purge one that runs). */
  async purge(instanceId: string): Promise<PurgeOutcome> {
    const record = this.record(instanceId);
    const outcome = await record.exclusive(async (): Promise<PurgeOutcome> => {
      const state = await this.loaded(record);
      if (state === null) return { kind: 'notFound' };
      if (!isFinished(state.header.status)) return { kind: 'notFinished', status: state.header.status };
      await this.store.purge(record.partitionKey);
      record.stopTimers();
      record.state = null;
      return { kind: 'purged' };
    });
    this.forgetIfAbsent(record);
    return outcome;
  }

  // ---- lifecycle ----

  /** Loads every instance left with work, then resumes them. */
  async recover(): Promise<number> {
    const partitions = await this.store.listWithWork();
    const resumed: InstanceRecord[] = [];
    for (let i = 0; i < partitions.length; i += 8) {
      await Promise.all(
        partitions.slice(i, i + 8).map(async (partitionKey) => {
          const snapshot = await this.store.load(partitionKey);
          if (snapshot === undefined) return;
          const record = this.record(snapshot.header.instanceId);
          record.state = snapshot;
          if (snapshot.header.pending.outbox.length > 0) this.messenger.sending(senderOf(snapshot.header));
          resumed.push(record);
        }),
      );
    }
    // Only now may entities drop marks: every instance that could re-send is known.
    this.messenger.markRecovered();
    for (const record of resumed) void record.exclusive(() => this.resume(record)).catch((err: unknown) => this.logFailure(record, err));
    return resumed.length;
  }

  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true;
    for (const record of this.records.values()) record.stopTimers();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.records.values()].map((record) => record.idle())),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
  }

  describe(): { instances: number; running: number; activitiesInFlight: number } {
    let running = 0;
    let activitiesInFlight = 0;
    for (const record of this.records.values()) {
      if (record.state && !isFinished(record.state.header.status)) running++;
      activitiesInFlight += record.runningActivities.size;
    }
    return { instances: this.records.size, running, activitiesInFlight };
  }

  // ---- instances ----

  private record(instanceId: string): InstanceRecord {
    let record = this.records.get(instanceId);
    if (record === undefined) {
      record = new InstanceRecord(instanceId);
      this.records.set(instanceId, record);
    }
    return record;
  }

  private forgetIfAbsent(record: InstanceRecord): void {
    if (record.state === null && record.busy === 0 && this.records.get(record.instanceId) === record) this.records.delete(record.instanceId);
  }

  private async loaded(record: InstanceRecord): Promise<InstanceSnapshot | null> {
    if (record.state !== undefined) return record.state;
    record.loading ??= this.store.load(record.partitionKey).then(
      (snapshot) => {
        if (snapshot !== undefined) compactIfDone(snapshot);
        record.state ??= snapshot ?? null;
        record.loading = undefined;
      },
      (err: unknown) => {
        record.loading = undefined;
        throw err;
      },
    );
    await record.loading;
    return record.state ?? null;
  }

  private message(key: string, event: MessageEvent): InboxMessage {
    return { key, order: ++this.messageOrder, event };
  }

  private async send(instanceId: string, build: (order: number) => InboxMessage): Promise<MessageOutcome> {
    const record = this.record(instanceId);
    const outcome = await record.exclusive(async (): Promise<MessageOutcome> => {
      const state = await this.loaded(record);
      if (state === null) return 'notFound';
      if (isFinished(state.header.status)) return 'gone';
      await this.addMessage(record, state, build(++this.messageOrder));
      return 'accepted';
    });
    if (outcome === 'notFound') this.forgetIfAbsent(record);
    else this.wake(record);
    return outcome;
  }

  private async addMessage(record: InstanceRecord, state: InstanceSnapshot, message: InboxMessage): Promise<void> {
    if (await this.store.insertMessage(record.partitionKey, message)) state.inbox.push(message);
  }

  /** A call's result from an entity: stored for the instance if it still waits for it. */
  private async deliverResponse(response: EntityResponse): Promise<void> {
    const record = this.record(response.instanceId);
    await record.exclusive(async () => {
      const state = await this.loaded(record);
      if (state === null || isFinished(state.header.status)) return;
      if (!state.header.pending.entityCalls.some((call) => call.requestId === response.requestId)) return;
      await this.addMessage(record, state, this.message(`m-resp-${response.requestId}`, eventRaised(new Date(), response.requestId, response.responseJson)));
    });
    this.wake(record);
  }

  // ---- episodes ----

  private wake(record: InstanceRecord): void {
    const state = record.state;
    if (record.episodeQueued || this.stopping || !state || isFinished(state.header.status) || state.inbox.length === 0) return;
    record.episodeQueued = true;
    void record.exclusive(async () => {
      try {
        while (!this.stopping && record.state && !isFinished(record.state.header.status) && record.state.inbox.length > 0) {
          await this.episode(record, record.state);
        }
      } finally {
        // Messages that arrived meanwhile were taken by the loop (they are added by other exclusive actions).
        record.episodeQueued = false;
      }
    }).catch((err: unknown) => this.logFailure(record, err));
  }

  private logFailure(record: InstanceRecord, err: unknown): void {
    if (this.stopping) return;
    this.logger.error(`Orchestration ${record.instanceId}: stopped processing (${describeError(err)}); it resumes after a restart.`);
  }

  private async episode(record: InstanceRecord, state: InstanceSnapshot): Promise<void> {
    const before = state.header;
    const now = new Date();
    const batch = takeBatch(state.inbox, before.pending, before.episodes === 0);
    let events: HistoryEvent[] = [];
    let header: InstanceHeader = before;
    if (batch.terminateReason !== undefined) {
      events = [orchestratorStarted(now), executionTerminated(now, batch.terminateReason), orchestratorCompleted(now)];
      header = { ...header, status: 'Terminated', outputJson: JSON.stringify(batch.terminateReason), pending: { ...emptyPendingWork(), outbox: before.pending.outbox } };
    } else if (batch.events.length > 0) {
      const plan = await this.decide(state, batch.events, now);
      events = [orchestratorStarted(now), ...batch.events, ...plan.decisions, orchestratorCompleted(now)];
      header = { ...header, status: 'Running', customStatusJson: plan.customStatusJson, pending: plan.pending };
      if (plan.completion !== undefined) {
        events.push(executionCompleted(now, plan.completion.status, plan.completion.outputJson));
        header = { ...header, status: plan.completion.status, outputJson: plan.completion.outputJson, pending: { ...emptyPendingWork(), outbox: plan.pending.outbox } };
      }
    }
    // Messages nothing waits for any more (a late result, a repeated delivery) are only removed.
    if (events.length > 0) header = { ...header, episodes: before.episodes + 1, lastUpdatedTime: now.toISOString() };
    const takenKeys = batch.taken.map((message) => message.key);
    const outputJson = isFinished(header.status) ? header.outputJson : undefined;
    try {
      await this.retrying(`committing an episode of ${record.instanceId}`, () =>
        this.store.commitEpisode(record.partitionKey, { episode: before.episodes, header, events, takenKeys, outputJson }),
      );
    } catch (err) {
      if (err instanceof UnpersistableEpisodeError) return this.failUnpersistable(record, state, takenKeys, now, err.message);
      if (this.stopping) throw err;
      // A retry refused (say, 409) may mean the first attempt committed and only its answer was lost.
      const stored = await this.store.load(record.partitionKey);
      if (stored === undefined || stored.inbox.some((message) => takenKeys.includes(message.key))) throw err;
      record.state = stored;
      return this.resume(record);
    }
    state.history.push(...events);
    state.inbox = state.inbox.filter((message) => !takenKeys.includes(message.key));
    state.header = header;
    if (events.length > 0) this.stats.orchestrationEpisodes++;
    if (isFinished(header.status) && !isFinished(before.status)) this.stats.orchestrationsFinished++;
    await this.resume(record);
  }

  /** Runs the orchestrator on the history plus this episode's messages and plans what follows. */
  private async decide(state: InstanceSnapshot, messages: MessageEvent[], now: Date): Promise<EpisodePlan> {
    const { header } = state;
    const fn = this.orchestrations.get(header.name.toLowerCase());
    const outcome: OrchestratorOutcome =
      fn === undefined
        ? { kind: 'crashed', message: unknownFunctionMessage(header.name, 'orchestrator', this.orchestrations) }
        : await this.orchestratorRunner.run(fn, header.instanceId, header.inputJson, [...state.history, orchestratorStarted(now), ...messages], state.history.length);
    return planEpisode(header.pending, messages, outcome, {
      now,
      instanceId: header.instanceId,
      executionId: header.executionId,
      orchestratorName: header.name,
      customStatusJson: header.customStatusJson,
    });
  }

  /** An episode too large for one transaction fails the instance (its messages are dropped). */
  private async failUnpersistable(record: InstanceRecord, state: InstanceSnapshot, takenKeys: string[], now: Date, reason: string): Promise<void> {
    const outputJson = JSON.stringify(`Orchestrator function '${state.header.name}' failed: the local host cannot store this episode (${reason})`);
    const header: InstanceHeader = { ...state.header, status: 'Failed', outputJson, lastUpdatedTime: now.toISOString(), episodes: state.header.episodes + 1, pending: emptyPendingWork() };
    const events = [orchestratorStarted(now), executionCompleted(now, 'Failed', outputJson)];
    await this.retrying(`failing ${record.instanceId}`, () => this.store.commitEpisode(record.partitionKey, { episode: state.header.episodes, header, events, takenKeys, outputJson }));
    this.logger.error(`Orchestration ${record.instanceId} failed: ${reason}`);
    state.history.push(...events);
    state.inbox = state.inbox.filter((message) => !takenKeys.includes(message.key));
    state.header = header;
    record.stopTimers();
  }

  /**
   * Starts what the stored state says is outstanding and not under way: activities without a stored
   * result, timers, entity messages; then the next episode. After each episode and at recovery.
   */
  private async resume(record: InstanceRecord): Promise<void> {
    const state = record.state;
    if (!state) return;
    const { header } = state;
    const inboxKeys = new Set(state.inbox.map((message) => message.key));
    const timerIds = new Set(header.pending.timers.map((timer) => timer.id));
    for (const [id, handle] of record.timers) {
      if (!timerIds.has(id)) {
        clearTimeout(handle);
        record.timers.delete(id);
      }
    }
    if (!isFinished(header.status)) {
      for (const id of header.pending.activities) {
        if (!record.runningActivities.has(id) && !inboxKeys.has(activityMessageKey(id))) this.runActivity(record, header, id);
      }
      for (const timer of header.pending.timers) {
        if (!inboxKeys.has(timerMessageKey(timer.id))) this.armTimer(record, header, timer);
      }
    }
    await this.deliverOutbox(record, state);
    compactIfDone(state);
    this.wake(record);
  }

  // ---- activities and timers ----

  private runActivity(record: InstanceRecord, header: InstanceHeader, id: number): void {
    const scheduled = findEvent(record, (event): event is TaskScheduled => event.EventType === EventType.TaskScheduled && event.EventId === id);
    if (scheduled === undefined) return;
    record.runningActivities.add(id);
    this.stats.activitiesStarted++;
    const { executionId } = header;
    void (async () => {
      const fn = this.activities.get(scheduled.Name.toLowerCase());
      const input: unknown = scheduled.Input === null ? undefined : JSON.parse(scheduled.Input);
      const outcome =
        fn === undefined
          ? { ok: false as const, reason: unknownFunctionMessage(scheduled.Name, 'activity', this.activities), details: '' }
          : await this.activityRunner.run(fn, header.instanceId, input);
      const now = new Date();
      let event: MessageEvent;
      if (!outcome.ok) event = taskFailed(now, id, outcome.reason, outcome.details);
      else if ((outcome.resultJson?.length ?? 0) > MAX_RESULT_CHARS) {
        const reason = `Activity function '${scheduled.Name}' failed: its result has ${outcome.resultJson?.length} characters of JSON; the local host stores at most ${MAX_RESULT_CHARS}.`;
        event = taskFailed(now, id, reason, '');
      } else event = taskCompleted(now, id, outcome.resultJson);
      await this.deliverToInstance(record, executionId, (pending) => pending.activities.includes(id), activityMessageKey(id), event);
      record.runningActivities.delete(id);
    })().catch((err: unknown) => {
      record.runningActivities.delete(id);
      if (!this.stopping) this.logger.error(`Orchestration ${record.instanceId}: the result of activity '${scheduled.Name}' cannot be stored (${describeError(err)}); it runs again after a restart.`);
    });
  }

  private armTimer(record: InstanceRecord, header: InstanceHeader, timer: PendingTimer): void {
    if (record.timers.has(timer.id) || this.stopping) return;
    const wait = Date.parse(timer.fireAt) - Date.now();
    const handle = setTimeout(
      () => {
        record.timers.delete(timer.id);
        if (wait > MAX_TIMEOUT_MS) return this.armTimer(record, header, timer);
        const fired = timerFired(new Date(), timer.id, timer.fireAt);
        this.deliverToInstance(record, header.executionId, (pending) => pending.timers.some((candidate) => candidate.id === timer.id), timerMessageKey(timer.id), fired).catch((err: unknown) => {
          if (!this.stopping) this.logger.error(`Orchestration ${record.instanceId}: a timer cannot be stored (${describeError(err)}); it fires after a restart.`);
        });
      },
      Math.max(0, Math.min(wait, MAX_TIMEOUT_MS)),
    );
    record.timers.set(timer.id, handle);
  }

  /** Stores a result for the instance if the same execution still waits for it, then wakes it. */
  private async deliverToInstance(
    record: InstanceRecord,
    executionId: string,
    stillWaiting: (pending: InstanceHeader['pending']) => boolean,
    key: string,
    event: MessageEvent,
  ): Promise<void> {
    await this.retrying(`storing a message for ${record.instanceId}`, () =>
      record.exclusive(async () => {
        const state = record.state;
        if (!state || state.header.executionId !== executionId || isFinished(state.header.status) || !stillWaiting(state.header.pending)) return;
        await this.addMessage(record, state, this.message(key, event));
      }),
    );
    this.wake(record);
  }

  // ---- entity messages ----

  /** Sends the instance's unconfirmed entity messages in event-id order, then records them as sent. */
  private async deliverOutbox(record: InstanceRecord, state: InstanceSnapshot): Promise<void> {
    const { header } = state;
    if (header.pending.outbox.length === 0) return;
    const sender = senderOf(header);
    this.messenger.sending(sender);
    for (const id of header.pending.outbox) {
      const sent = findEvent(record, (event): event is EventSent => event.EventType === EventType.EventSent && event.EventId === id);
      if (sent !== undefined) await this.messenger.send(header, id, sent, (what, action) => this.retrying(what, action));
    }
    const delivered: InstanceHeader = { ...header, pending: { ...header.pending, outbox: [] } };
    await this.retrying(`recording ${record.instanceId}'s entity messages as sent`, () => this.store.saveHeader(record.partitionKey, delivered));
    state.header = delivered;
    this.messenger.confirmed(sender);
  }

  private retrying<T>(what: string, action: () => Promise<T>): Promise<T> {
    return retryStorage(what, action, { logger: this.logger, stopping: () => this.stopping });
  }
}

/** The extension's message for a function name it does not know (it starts the instance, which then fails). */
function unknownFunctionMessage(name: string, kind: string, known: Map<string, { name: string }>): string {
  const names = [...known.values()].map((fn) => `'${fn.name}'`).join(', ');
  return `The function '${name}' doesn't exist, is disabled, or is not an ${kind} function. Additional info: The following are the known ${kind} functions: ${names}.`;
}

/** A finished instance with nothing left to send only needs its status in memory. */
function compactIfDone(state: InstanceSnapshot): void {
  if (!isFinished(state.header.status) || state.header.pending.outbox.length > 0) return;
  state.history = [];
  state.inbox = [];
}

const activityMessageKey = (id: number): string => `m-task-${String(id).padStart(8, '0')}`;
const timerMessageKey = (id: number): string => `m-timer-${String(id).padStart(8, '0')}`;

/** The newest history event matching `test` (scheduling events are looked up by event id). */
function findEvent<T extends HistoryEvent>(record: InstanceRecord, test: (event: HistoryEvent) => event is T): T | undefined {
  const history = record.state?.history ?? [];
  for (let i = history.length - 1; i >= 0; i--) {
    const event = history[i];
    if (event !== undefined && test(event)) return event;
  }
  return undefined;
}
