/**
 * Runs one activity through the app's registered activityTrigger function (the SDK's wrapper around
 * the user's handler) and turns the outcome into the TaskCompleted/TaskFailed history event data,
 * converting values exactly as the Functions host and the Durable extension 3.19 were observed to:
 *
 *   input  (the SDK's action input)  a string arrives as itself (the SDK sent it JSON-encoded),
 *                                    a boolean arrives as the string "True"/"False", null as no input
 *   result (the worker's return)     any JSON value; undefined and null become null
 *   failure                          Reason "Activity function '<name>' failed: <message>" and Details
 *                                    in the shape of the host's serialized exception
 */
import { z } from 'zod';
import type { ActivityFunction } from '../../catalog';
import type { RpcParameterBinding, RpcTypedData } from '../../worker/coreTypes';
import type { FunctionInvoker } from '../../worker/invoke';

export type ActivityOutcome = { ok: true; resultJson: string | null } | { ok: false; reason: string; details: string };

/** The trigger data the worker gets for an action input (`input` as the SDK serialized it into the action). */
export function activityTriggerData(input: unknown): RpcTypedData | undefined {
  if (input === undefined || input === null) return undefined;
  if (typeof input === 'string') return { json: input }; // already JSON text (the SDK's processInput)
  if (typeof input === 'boolean') return { string: input ? 'True' : 'False' };
  return { json: JSON.stringify(input) };
}

const returnValueSchema = z.object({
  returnValue: z
    .object({
      string: z.string().optional(),
      json: z.string().optional(),
      int: z.union([z.number(), z.bigint()]).optional(),
      double: z.number().optional(),
      bytes: z.instanceof(Uint8Array).optional(),
    })
    .nullish(),
});

function resultJson(response: unknown): string | null {
  const parsed = returnValueSchema.safeParse(response);
  const value = parsed.success ? parsed.data.returnValue : undefined;
  if (value === undefined || value === null) return null;
  if (value.string !== undefined) return JSON.stringify(value.string);
  if (value.json !== undefined) return value.json === 'null' ? null : value.json;
  if (value.int !== undefined) return String(value.int);
  if (value.double !== undefined) return JSON.stringify(value.double);
  if (value.bytes !== undefined) return JSON.stringify(Buffer.from(value.bytes).toString('base64'));
  return null;
}

/** Like the host's serialized exception (System.Exception around the worker's RpcException), minus .NET stacks. */
function failureDetails(message: string, stack: string): string {
  return JSON.stringify({
    $type: 'System.Exception, System.Private.CoreLib',
    ClassName: 'System.Exception',
    Message: message,
    Data: null,
    InnerException: {
      $type: 'Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException, Microsoft.Azure.WebJobs.Script',
      IsUserException: false,
      RemoteStackTrace: stack,
      RemoteMessage: message,
      RemoteTypeName: null,
      Message: `Result: Failure\nException: ${message}\nStack: ${stack}`,
      Data: null,
      InnerException: null,
      HelpLink: null,
      Source: null,
      HResult: -2146233088,
      StackTrace: null,
    },
    HelpURL: null,
    StackTraceString: null,
    RemoteStackTraceString: null,
    RemoteStackIndex: 0,
    ExceptionMethod: null,
    HResult: -2146233088,
    Source: null,
    WatsonBuckets: null,
  });
}

export class ActivityRunner {
  constructor(
    private readonly invoker: FunctionInvoker,
    private readonly clientInputs: (bindingNames: string[]) => RpcParameterBinding[],
  ) {}

  async run(fn: ActivityFunction, instanceId: string, input: unknown): Promise<ActivityOutcome> {
    const data = activityTriggerData(input);
    const triggerMetadata: Record<string, RpcTypedData> = { instanceId: { string: instanceId } };
    if (data !== undefined) {
      triggerMetadata[fn.triggerBindingName] = data;
      // `data` is the input's JSON as the extension holds it: for a string, the JSON text itself.
      triggerMetadata['data'] = { json: JSON.stringify(input) };
    }
    // The host adds an object input's properties too, over the entries above (an `instanceId` property wins).
    if (typeof input === 'object' && input !== null && !Array.isArray(input)) {
      for (const [key, value] of Object.entries(input)) triggerMetadata[key] = { json: JSON.stringify(value) };
    }
    try {
      const outcome = await this.invoker.invoke(fn.registered, {
        // Always the trigger binding, empty for no input: the handler's first argument is the input, then the context.
        inputData: [{ name: fn.triggerBindingName, data: data ?? {} }, ...this.clientInputs(fn.durableClientBindingNames)],
        triggerMetadata,
      });
      return { ok: true, resultJson: resultJson(outcome.response) };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const stack = err instanceof Error ? (err.stack ?? message) : message;
      return { ok: false, reason: `Activity function '${fn.name}' failed: ${message}`, details: failureDetails(message, stack) };
    }
  }
}
