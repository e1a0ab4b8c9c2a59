/**
 * Runs an entity batch through the app's registered entityTrigger function — i.e. through the
 * durable-functions SDK's own entity handler — with the batch input it expects
 * (`{ self, exists, state, batch: [{ id, name, input, isSignal }] }`) and validates its result
 * (`{ entityExists, entityState, results, signals }`). Operations an orchestration called (rather
 * than signalled) get their result back, as the extension's ResponseMessage.
 *
 * If the batch invocation itself fails or exceeds functionTimeout, the state from before the batch
 * is kept (as the real runtime does) and the operations are retried one at a time from that state,
 * so one bad or slow operation does not take the others with it; an operation that fails on its
 * own is dropped (logged, counted) with the state it found.
 */
import { z } from 'zod';
import type { EntityFunction } from '../catalog';
import { describeError, type Logger } from '../log';
import type { HostStats } from '../stats';
import type { RpcParameterBinding } from '../worker/coreTypes';
import type { FunctionInvoker } from '../worker/invoke';
import type { EntityId } from './entityId';
import type { OutgoingSignal } from './tableStore';

export interface BatchOperation {
  seq: number;
  name: string;
  input: string | undefined;
  /** Set for an orchestration's call: the request id, which the SDK sees as the operation id. */
  callRequestId?: string | undefined;
}

/** One operation's outcome as the SDK reports it: `result` is JSON (an error's is what the SDK serialized). */
export interface OperationResult {
  isError: boolean;
  result: string | undefined;
}

export interface EntityStateValue {
  exists: boolean;
  stateJson: string | null;
}

export interface BatchOutcome extends EntityStateValue {
  signals: OutgoingSignal[];
  /** Per operation, in batch order. */
  results: OperationResult[];
  /** Operations dropped without effect. */
  failedOperations: number;
}

/** The extension's ResponseMessage for a call's result (what the orchestration receives, as JSON). */
export function responseMessageJson(result: OperationResult): string {
  return JSON.stringify({
    $type: 'Microsoft.Azure.WebJobs.Extensions.DurableTask.ResponseMessage, Microsoft.Azure.WebJobs.Extensions.DurableTask',
    ...(result.result === undefined ? {} : { result: result.result }),
    ...(result.isError ? { exceptionType: 'Error' } : {}),
  });
}

const dropped = (err: unknown): OperationResult => ({ isError: true, result: JSON.stringify(describeError(err)) });

const entityResultSchema = z.object({
  entityExists: z.boolean(),
  entityState: z.string().nullish(),
  results: z.array(z.object({ isError: z.boolean(), result: z.string().nullish() })),
  signals: z.array(
    z.object({
      target: z.object({ name: z.string().min(1), key: z.string().min(1) }),
      name: z.string(),
      input: z.string().nullish(),
    }),
  ),
});

const returnValueSchema = z.object({ returnValue: z.object({ json: z.string() }) });

export class EntityBatchRunner {
  constructor(
    private readonly invoke: FunctionInvoker,
    private readonly clientInputs: (bindingNames: string[]) => RpcParameterBinding[],
    private readonly logger: Logger,
    private readonly stats: HostStats,
  ) {}

  async run(fn: EntityFunction, id: EntityId, before: EntityStateValue, operations: BatchOperation[]): Promise<BatchOutcome> {
    try {
      return await this.invokeBatch(fn, id, before, operations);
    } catch (err) {
      const label = `${id.name}@${id.key}`;
      if (operations.length === 1) {
        this.logger.error(`Entity ${label}: operation '${operations[0]?.name}' failed and was dropped (state kept): ${describeError(err)}`);
        return { ...before, signals: [], results: [dropped(err)], failedOperations: 1 };
      }
      this.logger.warn(`Entity ${label}: a batch of ${operations.length} operations failed (${describeError(err)}); state kept, retrying them one at a time.`);
      this.stats.batchRetriesOneByOne++;
      let current: EntityStateValue = before;
      const signals: OutgoingSignal[] = [];
      const results: OperationResult[] = [];
      let failedOperations = 0;
      for (const operation of operations) {
        try {
          const outcome = await this.invokeBatch(fn, id, current, [operation]);
          current = { exists: outcome.exists, stateJson: outcome.stateJson };
          signals.push(...outcome.signals);
          results.push(outcome.results[0] ?? { isError: false, result: undefined });
        } catch (singleError) {
          failedOperations++;
          results.push(dropped(singleError));
          this.logger.error(`Entity ${label}: operation '${operation.name}' failed and was dropped (state kept): ${describeError(singleError)}`);
        }
      }
      return { ...current, signals, results, failedOperations };
    }
  }

  private async invokeBatch(fn: EntityFunction, id: EntityId, before: EntityStateValue, operations: BatchOperation[]): Promise<BatchOutcome> {
    const batchInput = {
      self: { name: id.name, key: id.key },
      exists: before.exists,
      state: before.exists ? before.stateJson : null,
      batch: operations.map((operation) => ({
        id: operation.callRequestId ?? `${operation.seq}`,
        name: operation.name,
        ...(operation.input === undefined ? {} : { input: operation.input }),
        isSignal: operation.callRequestId === undefined,
      })),
    };
    const outcome = await this.invoke.invoke(fn.registered, {
      inputData: [{ name: fn.triggerBindingName, data: { string: JSON.stringify(batchInput) } }, ...this.clientInputs(fn.durableClientBindingNames)],
    });
    const envelope = returnValueSchema.safeParse(outcome.response);
    if (!envelope.success) throw new Error(`The entity function '${fn.name}' returned no batch result.`);
    const parsed = entityResultSchema.safeParse(JSON.parse(envelope.data.returnValue.json));
    if (!parsed.success) throw new Error(`The entity function '${fn.name}' returned an unexpected batch result: ${parsed.error.message}`);
    const result = parsed.data;
    result.results.forEach((operationResult, i) => {
      if (operationResult.isError) {
        this.logger.warn(`Entity ${id.name}@${id.key}: operation '${operations[i]?.name}' threw (the SDK keeps the state it had set): ${operationResult.result ?? ''}`);
      }
    });
    return {
      exists: result.entityExists,
      stateJson: result.entityExists ? (result.entityState ?? null) : null,
      signals: result.signals.map((signal) => ({
        targetName: signal.target.name,
        targetKey: signal.target.key,
        name: signal.name,
        input: signal.input ?? '',
      })),
      results: operations.map((_operation, i) => ({ isError: result.results[i]?.isError ?? false, result: result.results[i]?.result ?? undefined })),
      failedOperations: 0,
    };
  }
}
