/**
 * The real app (dist/src, after `npm run build`) in the local host, with in-memory Azurite and the
 * scripted model server, for end-to-end tests:
 *
 *   const t = await startTestApp({ CHAT_HISTORY_TOKEN_BUDGET: '400' });
 *   await fetch(t.url('/api/chats/abc'), { method: 'PUT' });
 *   t.model.enqueue({ status: 429 });   // scripted model, reached through OPENAI_BASE_URL
 *   await t.restartHost({ kill: true }); // SIGKILL and start again on the same storage
 *   await t.stop();
 *
 * Every model setting is passed explicitly, so a developer's own local.settings.json (which the host
 * reads, like `func start`) cannot point the tests at a real model.
 */
import { startAzurite, type AzuriteHandle } from './azurite';
import { REPO_ROOT, startHost, type HostHandle } from './host';
import { startModelServer, type ModelServer } from './model-server';

export interface TestApp {
  host: HostHandle;
  azurite: AzuriteHandle;
  model: ModelServer;
  url(path: string): string;
  restartHost(options?: { kill?: boolean }): Promise<HostHandle>;
  stop(): Promise<void>;
}

export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const [azurite, model] = await Promise.all([startAzurite(), startModelServer()]);
  const hostEnv = {
    AzureWebJobsStorage: azurite.connectionString,
    OPENAI_BASE_URL: model.baseURL,
    OPENAI_API_KEY: 'test-key-not-secret',
    AZURE_OPENAI_ENDPOINT: '',
    AZURE_OPENAI_API_KEY: '',
    MODEL_RETRY_BASE_DELAY_MS: '5',
    MODEL_MAX_RETRIES: '2',
    MODEL_TIMEOUT_MS: '1500',
    ...env,
  };
  const start = () => startHost({ appRoot: REPO_ROOT, env: hostEnv });
  const app: TestApp = {
    host: await start(),
    azurite,
    model,
    url: (path) => `${app.host.url}${path}`,
    async restartHost(options = {}) {
      await (options.kill ? app.host.kill() : app.host.stop());
      app.host = await start();
      return app.host;
    },
    async stop() {
      await app.host.stop();
      await Promise.all([azurite.stop(), model.close()]);
    },
  };
  return app;
}
