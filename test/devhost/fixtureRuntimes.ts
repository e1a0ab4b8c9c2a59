/**
 * A fixture app on either runtime, for conformance tests that run the same assertions on the local
 * host and on the real Functions host (test/devhost/orchestrations.test.ts):
 *
 *   const rt = await startFixture('real', 'test/fixtures/devhost-orchestrations', env);
 *   const api = fixtureApi(rt);
 *   await api.client('startNew', { name: 'sequence', instanceId: 'a' });   // the app's durable client
 *   await api.webhook('GET', 'instances/a');                             // the Durable HTTP API (master key where enforced)
 *   await rt.restart({ kill: true });                                    // kill -9, start again on the same storage
 *
 * `realHostAvailability` tells whether the real host can run here (see test/support/runtimes.ts).
 */
import { TableClient, TableServiceClient } from '@azure/data-tables';
import { startHost, type HostHandle } from '../support/host';
import { pollUntil } from '../support/poll';
import { realHostSetup, realRuntime, type RuntimeHandle } from '../support/runtimes';
import { stageFixtureForRealHost } from '../support/stage-fixture';

export type RuntimeKind = 'local' | 'real';

export const realHostAvailability = realHostSetup();

export interface FixtureRuntime {
  kind: RuntimeKind;
  url: string;
  /** Sent on the Durable HTTP API where keys are enforced. */
  masterKey: string | undefined;
  logs(): string;
  restart(options: { kill: boolean }): Promise<void>;
  stop(): Promise<void>;
}

export async function startFixture(kind: RuntimeKind, appRoot: string, env: Record<string, string>): Promise<FixtureRuntime> {
  if (kind === 'local') {
    const start = (): Promise<HostHandle> => startHost({ appRoot, env, args: ['--quiet'] });
    let host = await start();
    const runtime: FixtureRuntime = {
      kind,
      url: host.url,
      masterKey: undefined,
      logs: () => host.logs(),
      async restart({ kill }) {
        await (kill ? host.kill() : host.stop());
        host = await start();
        runtime.url = host.url;
      },
      async stop() {
        await host.stop();
      },
    };
    return runtime;
  }
  const real = realRuntime(stageFixtureForRealHost(appRoot));
  let handle: RuntimeHandle = await real.start(env);
  const runtime: FixtureRuntime = {
    kind,
    url: handle.url,
    masterKey: real.masterKey,
    logs: () => handle.logs(),
    async restart({ kill }) {
      await (kill ? handle.kill() : handle.stop());
      handle = await real.start(env);
      runtime.url = handle.url;
    },
    async stop() {
      await handle.stop();
    },
  };
  return runtime;
}

export interface OrchestrationStatus {
  name: string;
  instanceId: string;
  runtimeStatus: string;
  input: unknown;
  output: unknown;
  customStatus: unknown;
  createdTime: string;
  lastUpdatedTime: string;
}

export type ClientResult<T> = { ok: true; value: T } | { ok: false; error: string };

export interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

export function fixtureApi(runtime: FixtureRuntime): {
  client<T = unknown>(op: string, args: object): Promise<ClientResult<T>>;
  start(name: string, instanceId: string, input?: unknown): Promise<void>;
  webhook(method: string, path: string, body?: string, headers?: Record<string, string>): Promise<RawResponse>;
  status(instanceId: string): Promise<OrchestrationStatus>;
  waitFor(instanceId: string, done: (status: OrchestrationStatus) => boolean, timeoutMs?: number): Promise<OrchestrationStatus>;
  finished(instanceId: string, timeoutMs?: number): Promise<OrchestrationStatus>;
} {
  const api = {
    async client<T = unknown>(op: string, args: object): Promise<ClientResult<T>> {
      const response = await fetch(`${runtime.url}/api/client/${op}`, { method: 'POST', body: JSON.stringify(args) });
      const text = await response.text();
      if (response.status !== 200) throw new Error(`client ${op}: HTTP ${response.status} ${text}`);
      return JSON.parse(text) as ClientResult<T>;
    },
    async start(name: string, instanceId: string, input?: unknown): Promise<void> {
      const started = await api.client<string>('startNew', { name, instanceId, input });
      if (!started.ok) throw new Error(`startNew ${name} ${instanceId}: ${started.error}`);
    },
    async webhook(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<RawResponse> {
      const separator = path.includes('?') ? '&' : '?';
      const key = runtime.masterKey === undefined ? '' : `${separator}code=${encodeURIComponent(runtime.masterKey)}`;
      const response = await fetch(`${runtime.url}/runtime/webhooks/durabletask/${path}${key}`, { method, body, headers });
      return { status: response.status, headers: response.headers, body: await response.text() };
    },
    async status(instanceId: string): Promise<OrchestrationStatus> {
      const result = await api.client<OrchestrationStatus>('getStatus', { instanceId });
      if (!result.ok) throw new Error(`getStatus ${instanceId}: ${result.error}`);
      return result.value;
    },
    waitFor(instanceId: string, done: (status: OrchestrationStatus) => boolean, timeoutMs = 30_000): Promise<OrchestrationStatus> {
      return pollUntil(
        `${instanceId} on the ${runtime.kind} runtime`,
        async () => {
          const status = await api.status(instanceId);
          return done(status) ? status : undefined;
        },
        timeoutMs,
        100,
      );
    },
    finished(instanceId: string, timeoutMs?: number): Promise<OrchestrationStatus> {
      return api.waitFor(instanceId, (status) => !['Pending', 'Running'].includes(status.runtimeStatus), timeoutMs);
    },
  };
  return api;
}

/** Rows in every table of the task hub (both runtimes name theirs after the hub). */
export async function countTaskHubRows(connectionString: string, hubName: string): Promise<Record<string, number>> {
  const service = TableServiceClient.fromConnectionString(connectionString, { allowInsecureConnection: true });
  const counts: Record<string, number> = {};
  for await (const table of service.listTables()) {
    const name = table.name ?? '';
    if (!name.toLowerCase().startsWith(hubName.toLowerCase())) continue;
    const client = TableClient.fromConnectionString(connectionString, name, { allowInsecureConnection: true });
    let rows = 0;
    for await (const _row of client.listEntities({ queryOptions: { select: ['RowKey'] } })) rows++;
    counts[name] = rows;
  }
  return counts;
}
