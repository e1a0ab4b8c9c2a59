/**
 * The out-of-process orchestration protocol between the Durable extension and the durable-functions
 * SDK: the trigger input the extension 3.19 sends (history + protocol versions) and the orchestrator
 * state the SDK answers with (`{ isDone, actions: [[...every action since the start]], output, error,
 * customStatus, schemaVersion }`). A failing orchestrator throws instead; its message carries the
 * same state after a `$OutOfProcData$:` label.
 */
import { z } from 'zod';
import type { HistoryEvent } from './history';

/** What the SDK reads besides the history (values as the extension 3.19 sends them). */
const PROTOCOL_FIELDS = {
  parentInstanceId: null,
  sourceInstanceId: null,
  upperSchemaVersion: 1,
  // Replay schema V4: one flat action list, and timers need the two durations below.
  upperSchemaVersionNew: 3,
  longRunningTimerIntervalDuration: '3.00:00:00',
  maximumShortTimerDuration: '6.00:00:00',
  defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
} as const;

export function orchestratorTriggerInput(options: { history: HistoryEvent[]; input: unknown; instanceId: string; isReplaying: boolean }): object {
  return { history: options.history, input: options.input, instanceId: options.instanceId, isReplaying: options.isReplaying, ...PROTOCOL_FIELDS };
}

/** Action types (durable-functions' ActionType). */
export const ActionType = {
  CallActivity: 0,
  CallActivityWithRetry: 1,
  CallSubOrchestrator: 2,
  CallSubOrchestratorWithRetry: 3,
  ContinueAsNew: 4,
  CreateTimer: 5,
  WaitForExternalEvent: 6,
  CallEntity: 7,
  CallHttp: 8,
  SignalEntity: 9,
  WhenAny: 11,
  WhenAll: 12,
  LockEntities: 13,
  ReleaseEntities: 14,
} as const;

const retryOptionsSchema = z.object({
  firstRetryIntervalInMilliseconds: z.number(),
  maxNumberOfAttempts: z.number(),
  backoffCoefficient: z.number().optional(),
  maxRetryIntervalInMilliseconds: z.number().optional(),
  retryTimeoutInMilliseconds: z.number().optional(),
});
export type RetryOptions = z.infer<typeof retryOptionsSchema>;

export interface Action {
  actionType: number;
  functionName?: string | undefined;
  input?: unknown;
  fireAt?: string | undefined;
  isCanceled?: boolean | undefined;
  instanceId?: string | undefined;
  operation?: string | undefined;
  retryOptions?: RetryOptions | undefined;
  compoundActions?: Action[] | undefined;
}

const actionSchema: z.ZodType<Action> = z.lazy(() =>
  z.object({
    actionType: z.number(),
    functionName: z.string().optional(),
    input: z.unknown().optional(),
    fireAt: z.string().optional(),
    isCanceled: z.boolean().optional(),
    instanceId: z.string().optional(),
    operation: z.string().optional(),
    retryOptions: retryOptionsSchema.optional(),
    compoundActions: z.array(actionSchema).optional(),
  }),
);

const stateSchema = z.object({
  isDone: z.boolean(),
  actions: z.array(z.array(actionSchema)),
  output: z.unknown().optional(),
  error: z.string().optional(),
  customStatus: z.unknown().optional(),
  schemaVersion: z.number(),
});

export interface OrchestratorState {
  isDone: boolean;
  /** Every action since the start, compound ones flattened (depth first), as the extension replays them. */
  actions: Action[];
  output: unknown;
  customStatus: unknown;
  /** Set when the orchestrator threw. */
  error: string | undefined;
}

function toState(raw: z.infer<typeof stateSchema>): OrchestratorState {
  if (raw.actions.length > 1) throw new Error(`The SDK answered with replay schema ${raw.schemaVersion}; the local host speaks V2 and later only.`);
  const flat: Action[] = [];
  const visit = (action: Action): void => {
    if (action.actionType === ActionType.WhenAll || action.actionType === ActionType.WhenAny) action.compoundActions?.forEach(visit);
    else flat.push(action);
  };
  raw.actions[0]?.forEach(visit);
  return { isDone: raw.isDone, actions: flat, output: raw.output, customStatus: raw.customStatus, error: raw.error };
}

const returnValueSchema = z.object({ returnValue: z.object({ json: z.string() }) });

/** The state from a successful invocation's worker response. */
export function parseOrchestratorResponse(response: unknown): OrchestratorState {
  const envelope = returnValueSchema.safeParse(response);
  if (!envelope.success) throw new Error('The orchestrator function returned no orchestrator state (is it registered with df.app.orchestration?).');
  const parsed = stateSchema.safeParse(JSON.parse(envelope.data.returnValue.json));
  if (!parsed.success) throw new Error(`The orchestrator function returned an unexpected state: ${parsed.error.message}`);
  return toState(parsed.data);
}

const OUT_OF_PROC_LABEL = '\n\n$OutOfProcData$:';

/** The state a failed invocation carries in its error message, if it is the SDK's failure. */
export function parseOrchestratorFailure(err: unknown): OrchestratorState | undefined {
  const message = err instanceof Error ? err.message : '';
  const at = message.indexOf(OUT_OF_PROC_LABEL);
  if (at === -1) return undefined;
  try {
    const parsed = stateSchema.safeParse(JSON.parse(message.slice(at + OUT_OF_PROC_LABEL.length)));
    return parsed.success ? toState(parsed.data) : undefined;
  } catch {
    return undefined;
  }
}
