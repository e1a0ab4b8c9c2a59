/**
 * The local host's implementation of `@azure/functions-core`: the object the real Node.js worker
 * gives the `@azure/functions` library. The library calls `setProgrammingModel` once and
 * `registerFunction(metadata, callback)` for every `app.*` / `df.app.*` registration; hooks and
 * logs come through `registerHook` and `log`. The registry keeps all of it for the host to route
 * and invoke, and refuses registrations after start-up like the worker does.
 */
import { z } from 'zod';
import type { LogLevel, Logger } from '../log';
import type {
  Disposable,
  FunctionCallback,
  FunctionMetadata,
  HookCallback,
  HookName,
  ProgrammingModel,
  RegisteredFunction,
  RpcLogCategory,
  RpcLogLevel,
} from './coreTypes';

/** Version strings the library may read; the host version is new enough for log hooks and HTTP streaming. */
const WORKER_VERSION = '3.12.0';
const HOST_VERSION = '4.1040.300';

const hookNames: readonly HookName[] = ['appStart', 'appTerminate', 'preInvocation', 'postInvocation', 'log'];

const functionMetadataSchema = z.looseObject({
  name: z.string().min(1),
  bindings: z.record(z.string(), z.looseObject({ type: z.string().min(1), direction: z.string().min(1) })),
});

const programmingModelSchema = z.looseObject({
  name: z.string(),
  version: z.string(),
  getInvocationModel: z.custom<(...args: unknown[]) => unknown>((value) => typeof value === 'function'),
});

class CoreDisposable implements Disposable {
  #callback: (() => void) | undefined;
  constructor(callback: () => void) {
    this.#callback = callback;
  }
  dispose(): void {
    this.#callback?.();
    this.#callback = undefined;
  }
}

/** Per-call context of a log line, so log hooks and output can name the function. */
export interface LogOrigin {
  functionName?: string;
  invocationId?: string;
  invocationContext?: unknown;
}

export class WorkerRegistry {
  programmingModel: ProgrammingModel | undefined;
  readonly functions = new Map<string, RegisteredFunction>();
  /** Shared by every hook of the app (appHookData in the hook contexts). */
  readonly appHookData: Record<string, unknown> = {};
  /** hookData of the app-level hooks (appStart/appTerminate) only. */
  readonly appLevelOnlyHookData: Record<string, unknown> = {};
  #hooks = new Map<HookName, HookCallback[]>();
  #startupFinished = false;
  #inLogHook = false;

  constructor(private readonly logger: Logger) {}

  /** The module object the app's `require('@azure/functions-core')` receives. */
  createCoreModule(): object {
    return {
      version: WORKER_VERSION,
      hostVersion: HOST_VERSION,
      setProgrammingModel: (model: unknown) => this.setProgrammingModel(model),
      getProgrammingModel: () => this.programmingModel,
      registerFunction: (metadata: unknown, callback: unknown) => this.registerFunction(metadata, callback),
      registerHook: (hookName: unknown, callback: unknown) => this.registerHook(hookName, callback),
      log: (level: unknown, category: unknown, message: unknown) =>
        this.log(asLogLevel(level), category === 'user' ? 'user' : 'system', String(message)),
      Disposable: CoreDisposable,
    };
  }

  finishStartup(): void {
    this.#startupFinished = true;
  }

  setProgrammingModel(model: unknown): void {
    const parsed = programmingModelSchema.safeParse(model);
    if (!parsed.success) throw new Error('setProgrammingModel: the object is not a programming model (no getInvocationModel).');
    // Validated above: the library's ProgrammingModel class has exactly this surface.
    this.programmingModel = model as ProgrammingModel;
    this.logger.debug(`Programming model "${parsed.data.name}" version ${parsed.data.version}`);
  }

  registerFunction(metadata: unknown, callback: unknown): Disposable {
    if (this.#startupFinished) throw new Error('A function can only be registered during app startup.');
    const parsed = functionMetadataSchema.safeParse(metadata);
    if (!parsed.success) throw new Error(`registerFunction: invalid metadata (${parsed.error.message}).`);
    if (typeof callback !== 'function') throw new Error(`registerFunction "${parsed.data.name}": the handler is not a function.`);
    const name = parsed.data.name;
    const existing = [...this.functions.keys()].find((known) => known.toLowerCase() === name.toLowerCase());
    if (existing !== undefined) throw new Error(`A function named "${existing}" is already registered; function names must be unique.`);
    const registered: RegisteredFunction = {
      metadata: parsed.data as FunctionMetadata,
      // The library passes the user's handler (or its own wrapper); we only ever call it through the invocation model.
      callback: callback as FunctionCallback,
    };
    this.functions.set(name, registered);
    return new CoreDisposable(() => {
      if (this.#startupFinished) throw new Error('A function can only be disposed during app startup.');
      this.functions.delete(name);
    });
  }

  registerHook(hookName: unknown, callback: unknown): Disposable {
    if (typeof hookName !== 'string' || !hookNames.includes(hookName as HookName)) {
      // The worker answers unknown hook names with a RangeError; the library relies on that for `log` hooks.
      throw new RangeError(`"${String(hookName)}" is not a valid hook name.`);
    }
    if (typeof callback !== 'function') throw new Error(`registerHook "${hookName}": the callback is not a function.`);
    const name = hookName as HookName;
    const hook = callback as HookCallback;
    const list = this.#hooks.get(name) ?? [];
    list.push(hook);
    this.#hooks.set(name, list);
    return new CoreDisposable(() => {
      const current = this.#hooks.get(name) ?? [];
      this.#hooks.set(
        name,
        current.filter((candidate) => candidate !== hook),
      );
    });
  }

  /** Runs the hooks of one kind in registration order, awaiting each (as the worker's executeHooks does). */
  async executeHooks(hookName: Exclude<HookName, 'log'>, context: object): Promise<void> {
    for (const callback of [...(this.#hooks.get(hookName) ?? [])]) {
      await callback(context);
    }
  }

  hasHooks(hookName: HookName): boolean {
    return (this.#hooks.get(hookName)?.length ?? 0) > 0;
  }

  /**
   * A log line from the library (system) or the app (user, via context.log). Log hooks may rewrite
   * level and message, like in the worker; a hook that logs again is not re-entered.
   */
  log(level: RpcLogLevel, category: RpcLogCategory, message: string, origin: LogOrigin = {}): void {
    const entry = { level, message, category, invocationContext: origin.invocationContext, hookData: {}, appHookData: this.appHookData };
    const hooks = this.#hooks.get('log') ?? [];
    if (hooks.length > 0 && !this.#inLogHook) {
      this.#inLogHook = true;
      try {
        for (const hook of hooks) hook(entry);
      } catch (err) {
        this.logger.warn(`A log hook failed: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        this.#inLogHook = false;
      }
    }
    const source = origin.functionName ?? (category === 'system' ? 'worker' : 'app');
    this.logger.log(asLogLevel(entry.level), source, String(entry.message));
  }
}

function asLogLevel(level: unknown): LogLevel {
  switch (level) {
    case 'trace':
    case 'debug':
    case 'information':
    case 'warning':
    case 'error':
    case 'critical':
    case 'none':
      return level;
    default:
      return 'information';
  }
}
