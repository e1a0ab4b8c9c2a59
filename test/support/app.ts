/**
 * The real app on the runtime this test process drives (test/support/runtimes.ts: the local host or
 * the real Functions host), with in-memory Azurite and the scripted model server, for end-to-end tests:
 *
 *   const t = await startTestApp({ CHAT_HISTORY_TOKEN_BUDGET: '400' });
 *   await fetch(t.url('/api/chats/abc'), { method: 'PUT' });   // url() carries the function key
 *   t.model.enqueue({ status: 429 });   // scripted model, reached through OPENAI_BASE_URL
 *   await t.restartHost({ kill: true }); // kill -9 and start again on the same storage
 *   await t.stop();
 *
 * Every model setting is passed explicitly, so a developer's own local.settings.json (which the local
 * host reads, like `func start`) cannot point the tests at a real model.
 */
import { startAzurite, type AzuriteHandle } from './azurite';
import { startModelServer, type ModelServer } from './model-server';
import { runtimeFromEnv, type Runtime, type RuntimeHandle } from './runtimes';
import { startStorageMeter, type StorageMeter } from './storage-meter';

export interface TestApp {
  runtime: Runtime;
  host: RuntimeHandle;
  azurite: AzuriteHandle;
  /** Counts the runtime's storage traffic, when started with `meterStorage`. */
  storage: StorageMeter | undefined;
  model: ModelServer;
  /** An absolute URL on the host for `path` (which may have a query), with the function key where keys are enforced. */
  url(path: string): string;
  /** Adds the function key (where keys are enforced) to a URL the app handed out, e.g. a Location header. */
  withKey(url: string): string;
  /** Headers that carry the function key, for requests built by hand (raw sockets). */
  keyHeaders(): Record<string, string>;
  /** Headers that carry the master key, for the host's own APIs (Durable webhooks) where keys are enforced. */
  adminHeaders(): Record<string, string>;
  restartHost(options?: { kill?: boolean }): Promise<RuntimeHandle>;
  stop(): Promise<void>;
}

export interface TestAppOptions {
  /** Default: the runtime this test process drives (TEST_RUNTIME). */
  runtime?: Runtime;
  /** Route the runtime's storage traffic through a counting proxy (test/support/storage-meter.ts). */
  meterStorage?: boolean;
}

export async function startTestApp(env: Record<string, string> = {}, options: TestAppOptions = {}): Promise<TestApp> {
  const runtime = options.runtime ?? runtimeFromEnv();
  const [azurite, model] = await Promise.all([startAzurite(), startModelServer()]);
  const storage = options.meterStorage === true ? await startStorageMeter(azurite) : undefined;
  const hostEnv = {
    AzureWebJobsStorage: storage?.connectionString ?? azurite.connectionString,
    OPENAI_BASE_URL: model.baseURL,
    OPENAI_API_KEY: 'test-key-not-secret',
    AZURE_OPENAI_ENDPOINT: '',
    AZURE_OPENAI_API_KEY: '',
    MODEL_RETRY_BASE_DELAY_MS: '5',
    MODEL_MAX_RETRIES: '2',
    MODEL_TIMEOUT_MS: '1500',
    ...env,
  };
  // Appended as text: re-serialising the query through URLSearchParams would change the bytes the fuzz sends.
  const withKey = (url: string): string =>
    runtime.functionKey === undefined ? url : `${url}${url.includes('?') ? '&' : '?'}code=${encodeURIComponent(runtime.functionKey)}`;
  let host: RuntimeHandle;
  try {
    host = await runtime.start(hostEnv);
  } catch (err) {
    await Promise.all([storage?.close(), azurite.stop(), model.close()]);
    throw err;
  }
  const app: TestApp = {
    runtime,
    host,
    azurite,
    storage,
    model,
    url: (path) => withKey(`${app.host.url}${path}`),
    withKey,
    keyHeaders: (): Record<string, string> => (runtime.functionKey === undefined ? {} : { 'x-functions-key': runtime.functionKey }),
    adminHeaders: (): Record<string, string> => (runtime.masterKey === undefined ? {} : { 'x-functions-key': runtime.masterKey }),
    async restartHost(options = {}) {
      await (options.kill ? app.host.kill() : app.host.stop());
      app.host = await runtime.start(hostEnv);
      return app.host;
    },
    async stop() {
      // The real host keeps retrying its storage if Azurite goes first, so the host stops first.
      await app.host.stop();
      await Promise.all([storage?.close(), azurite.stop(), model.close()]);
    },
  };
  return app;
}
