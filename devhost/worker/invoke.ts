/**
 * Runs one function invocation exactly as the Node.js worker's InvocationHandler does:
 * `programmingModel.getInvocationModel(coreContext)` → `getArguments()` → preInvocation hooks →
 * `invokeFunction(context, inputs, callback)` → postInvocation hooks → `getResponse(context, result)`.
 * Adds what the Functions host adds around it: a per-invocation id and the `functionTimeout`.
 */
import { randomUUID } from 'node:crypto';
import type { WorkerRegistry } from './coreApi';
import type {
  CoreInvocationContext,
  FunctionCallback,
  RegisteredFunction,
  RpcLogCategory,
  RpcLogLevel,
  RpcParameterBinding,
  RpcTypedData,
} from './coreTypes';

export class FunctionTimeoutError extends Error {
  constructor(functionName: string, timeoutMs: number) {
    super(`Function '${functionName}' exceeded functionTimeout (${timeoutMs} ms).`);
    this.name = 'FunctionTimeoutError';
  }
}

export interface InvocationInput {
  inputData: RpcParameterBinding[];
  triggerMetadata?: Record<string, RpcTypedData>;
  invocationId?: string;
  /** Overrides the host's functionTimeout; undefined in the host settings means no limit. */
  timeoutMs?: number;
}

export interface InvocationOutcome {
  invocationId: string;
  /** The worker's InvocationResponse: `{ invocationId, outputData, returnValue }`. */
  response: unknown;
  /** What the handler returned (after postInvocation hooks), before conversion. */
  handlerResult: unknown;
}

export class FunctionInvoker {
  constructor(
    private readonly registry: WorkerRegistry,
    private readonly defaultTimeoutMs: number | undefined,
  ) {}

  async invoke(fn: RegisteredFunction, input: InvocationInput): Promise<InvocationOutcome> {
    const invocationId = input.invocationId ?? randomUUID();
    const timeoutMs = input.timeoutMs ?? this.defaultTimeoutMs;
    const run = this.run(fn, invocationId, input);
    if (timeoutMs === undefined) return run;
    // The handler cannot be cancelled in-process; on timeout we stop waiting and drop its result.
    run.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new FunctionTimeoutError(fn.metadata.name, timeoutMs)), timeoutMs);
    });
    try {
      return await Promise.race([run, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async run(fn: RegisteredFunction, invocationId: string, input: InvocationInput): Promise<InvocationOutcome> {
    const model = this.registry.programmingModel;
    if (model === undefined) throw new Error('No programming model was registered.');
    const registry = this.registry;
    const functionName = fn.metadata.name;
    // Filled in once getArguments has built the InvocationContext; log lines before that have none.
    const current: { invocationContext: unknown } = { invocationContext: undefined };
    const coreContext: CoreInvocationContext = {
      invocationId,
      request: {
        invocationId,
        functionId: functionName,
        inputData: input.inputData,
        ...(input.triggerMetadata === undefined ? {} : { triggerMetadata: input.triggerMetadata }),
      },
      metadata: fn.metadata,
      state: undefined,
      log(level: RpcLogLevel, category: RpcLogCategory, message: string): void {
        registry.log(level, category, message, { functionName, invocationId, invocationContext: current.invocationContext });
      },
    };

    const invocationModel = await model.getInvocationModel(coreContext);
    const hookData: Record<string, unknown> = {};
    const args = await invocationModel.getArguments();
    const context = args.context;
    current.invocationContext = context;

    // What every invocation hook sees, as read-only views (the worker hands hooks the same shape).
    const sharedHookFields = <T extends object>(fields: T) =>
      Object.defineProperties(fields, {
        hookData: { get: () => hookData, enumerable: true },
        appHookData: { get: () => registry.appHookData, enumerable: true },
        invocationContext: { get: () => context, enumerable: true },
      }) as T & { readonly hookData: Record<string, unknown>; readonly appHookData: Record<string, unknown>; readonly invocationContext: typeof context };

    const preInvocationContext = sharedHookFields({ functionCallback: fn.callback, inputs: args.inputs });
    coreContext.state = 'preInvocationHooks';
    try {
      await registry.executeHooks('preInvocation', preInvocationContext);
    } finally {
      coreContext.state = undefined;
    }
    const inputs = preInvocationContext.inputs;
    const callback: FunctionCallback = preInvocationContext.functionCallback;

    const postInvocationContext = sharedHookFields({ inputs, result: null as unknown, error: null as unknown });
    coreContext.state = 'invocation';
    try {
      postInvocationContext.result = await invocationModel.invokeFunction(context, inputs, callback);
    } catch (err) {
      postInvocationContext.error = err;
    } finally {
      coreContext.state = undefined;
    }
    coreContext.state = 'postInvocationHooks';
    try {
      await registry.executeHooks('postInvocation', postInvocationContext);
    } finally {
      coreContext.state = undefined;
    }
    if (postInvocationContext.error !== null && postInvocationContext.error !== undefined) {
      throw postInvocationContext.error;
    }
    const response = await invocationModel.getResponse(context, postInvocationContext.result);
    return { invocationId, response, handlerResult: postInvocationContext.result };
  }
}
