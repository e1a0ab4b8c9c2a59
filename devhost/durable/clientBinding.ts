/**
 * The `durableClient` input binding's data, as the Durable Functions extension sends it to
 * out-of-process workers (durable-functions' OrchestrationClientInputData): task hub, webhook URL
 * templates and `rpcBaseUrl`. With `rpcBaseUrl` set, DurableClient sends every call to
 * `{rpcBaseUrl}entities/...` / `instances/...`, which this host serves itself.
 */
import type { RpcParameterBinding } from '../worker/coreTypes';

export const DURABLE_WEBHOOK_PATH = '/runtime/webhooks/durabletask';

export interface DurableClientBindingData {
  taskHubName: string;
  creationUrls: Record<string, string>;
  managementUrls: Record<string, string>;
  baseUrl: string;
  requiredQueryStringParameters: string;
  rpcBaseUrl: string;
  httpBaseUrl: string;
  maxGrpcMessageSizeInBytes: number;
  grpcHttpClientTimeout: string;
}

/** `origin` is how the app reaches this host, e.g. http://127.0.0.1:7071. */
export function durableClientBindingData(origin: string, hubName: string, connectionName: string): DurableClientBindingData {
  const base = `${origin}${DURABLE_WEBHOOK_PATH}`;
  const query = `taskHub=${encodeURIComponent(hubName)}&connection=${encodeURIComponent(connectionName)}`;
  const instance = `${base}/instances/INSTANCEID`;
  return {
    taskHubName: hubName,
    creationUrls: {
      createNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?${query}`,
      createAndWaitOnNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&${query}`,
    },
    managementUrls: {
      id: 'INSTANCEID',
      statusQueryGetUri: `${instance}?${query}`,
      sendEventPostUri: `${instance}/raiseEvent/{eventName}?${query}`,
      terminatePostUri: `${instance}/terminate?reason={text}&${query}`,
      rewindPostUri: `${instance}/rewind?reason={text}&${query}`,
      purgeHistoryDeleteUri: `${instance}?${query}`,
      restartPostUri: `${instance}/restart?${query}`,
      suspendPostUri: `${instance}/suspend?reason={text}&${query}`,
      resumePostUri: `${instance}/resume?reason={text}&${query}`,
    },
    baseUrl: base,
    requiredQueryStringParameters: query,
    rpcBaseUrl: `${base}/`,
    httpBaseUrl: '',
    maxGrpcMessageSizeInBytes: 0,
    grpcHttpClientTimeout: '00:01:40',
  };
}

/** Input data for each durableClient binding of an invocation (the host sends it as JSON text). */
export function durableClientInputs(bindingNames: string[], data: DurableClientBindingData | undefined): RpcParameterBinding[] {
  if (bindingNames.length === 0) return [];
  if (data === undefined) throw new Error('durableClient bindings need the durable store, which is not configured.');
  const json = JSON.stringify(data);
  return bindingNames.map((name) => ({ name, data: { string: json } }));
}
