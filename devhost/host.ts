/**
 * Starts the local host for one function app folder: settings into the environment, the
 * `@azure/functions-core` shim, the app's files, a check that every function is supported, the
 * durable stores and schedulers (only when the app uses Durable Functions), then the HTTP server.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { buildCatalog, type FunctionCatalog, type HttpFunction } from './catalog';
import { durableClientBindingData, durableClientInputs, type DurableClientBindingData } from './durable/clientBinding';
import { EntityBatchRunner } from './durable/entityRunner';
import { EntityService } from './durable/entityService';
import { ActivityRunner } from './durable/orchestrations/activityRunner';
import { InstanceStore } from './durable/orchestrations/instanceStore';
import { OrchestrationService } from './durable/orchestrations/orchestrationService';
import { OrchestrationWebhooks } from './durable/orchestrations/orchestrationWebhooks';
import { OrchestratorRunner } from './durable/orchestrations/orchestratorRunner';
import { EntityTableStore } from './durable/tableStore';
import { DurableWebhooks } from './durable/webhooks';
import { HttpRouter, type HttpRoute } from './http/router';
import { createRequestHandler } from './http/server';
import { describeError, type Logger } from './log';
import { applyLocalSettingsToEnv, readHostJson, readLocalSettings, type HostJsonSettings } from './settings/appSettings';
import { HostStats } from './stats';
import { createCountingTableClient, describeStorageEndpoint, entityTableName, orchestrationTableName, readStorageConnectionString } from './storage/tableClient';
import { WorkerRegistry } from './worker/coreApi';
import { installCoreModule } from './worker/installCoreModule';
import { FunctionInvoker } from './worker/invoke';
import { loadApp, terminateApp } from './worker/loadApp';

export interface LocalHostOptions {
  appRoot: string;
  /** undefined: local.settings.json Host.LocalHttpPort, else 7071. 0 picks a free port. */
  port: number | undefined;
  logRequests: boolean;
  logger: Logger;
}

export interface RunningHost {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** Start-up refused: the message says what to fix. */
export class StartupError extends Error {}

export const DEFAULT_PORT = 7071;
/** How long start-up waits for the storage emulator to answer (npm start may have just launched it). */
const STORAGE_WAIT_MS = 20_000;

function describeRoutes(catalog: FunctionCatalog, router: HttpRouter<HttpFunction>, origin: string): string[] {
  const lines = catalog.http.map((fn) => `  ${fn.name}: [${fn.methods?.join(',') ?? 'ALL'}] ${origin}${router.publicPath(fn.route)}`);
  for (const entity of catalog.entities.values()) lines.push(`  ${entity.name}: entityTrigger`);
  for (const fn of catalog.orchestrations.values()) lines.push(`  ${fn.name}: orchestrationTrigger`);
  for (const fn of catalog.activities.values()) lines.push(`  ${fn.name}: activityTrigger`);
  return lines;
}

interface DurableStores {
  entities: EntityTableStore;
  instances: InstanceStore;
  where: string;
}

async function connectStores(settings: HostJsonSettings, stats: HostStats, logger: Logger): Promise<DurableStores> {
  let connectionString: string;
  try {
    connectionString = readStorageConnectionString(settings.storageConnectionSetting, process.env);
  } catch (err) {
    throw new StartupError(describeError(err).replace(/^\w*Error: /, ''));
  }
  const where = describeStorageEndpoint(connectionString);
  const entities = new EntityTableStore(createCountingTableClient(connectionString, entityTableName(settings.hubName), stats));
  const instances = new InstanceStore(createCountingTableClient(connectionString, orchestrationTableName(settings.hubName), stats));
  const deadline = Date.now() + STORAGE_WAIT_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      await entities.ensureTable();
      await instances.ensureTable();
      return { entities, instances, where };
    } catch (err) {
      if (Date.now() > deadline) {
        throw new StartupError(`Cannot reach table storage at ${where}: ${describeError(err)}. Is Azurite running? (npm start starts it.)`);
      }
      if (attempt === 1) logger.info(`Waiting for table storage at ${where} ...`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

function listen(server: http.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(err.code === 'EADDRINUSE' ? new StartupError(`Port ${port} is already in use; pass --port <n> (or set PORT).`) : err);
    };
    server.once('error', onError);
    server.listen(port, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startLocalHost(options: LocalHostOptions): Promise<RunningHost> {
  const { logger } = options;
  const appRoot = path.resolve(options.appRoot);
  const localSettings = readLocalSettings(appRoot);
  if (localSettings === undefined) logger.warn(`No local.settings.json in ${appRoot}; using the environment as is.`);
  else applyLocalSettingsToEnv(localSettings.values, process.env);
  const settings = readHostJson(appRoot, process.env);

  const stats = new HostStats();
  const registry = new WorkerRegistry(logger);
  installCoreModule(registry.createCoreModule());
  const app = await loadApp(appRoot, registry);
  const catalog = buildCatalog(registry.functions);
  if (catalog.problems.length > 0) {
    throw new StartupError(`The local host cannot run this app:\n${catalog.problems.map((problem) => `  - ${problem}`).join('\n')}`);
  }
  const streamUri = app.capabilities['HttpUri'];

  const invoker = new FunctionInvoker(registry, settings.functionTimeoutMs);
  // The binding data names this host's port, known once the server listens.
  const durableClient: { binding: DurableClientBindingData | undefined } = { binding: undefined };
  const clientInputs = (bindingNames: string[]) => durableClientInputs(bindingNames, durableClient.binding);

  let entityService: EntityService | undefined;
  let orchestrationService: OrchestrationService | undefined;
  let storeDescription = '';
  if (catalog.entities.size > 0 || catalog.orchestrations.size > 0 || catalog.activities.size > 0 || catalog.usesDurableClient) {
    const stores = await connectStores(settings, stats, logger);
    const runner = new EntityBatchRunner(invoker, clientInputs, logger, stats);
    entityService = new EntityService(stores.entities, catalog.entities, runner, logger, stats, { maxBatchSize: settings.maxEntityOperationBatchSize });
    orchestrationService = new OrchestrationService(
      stores.instances,
      catalog.orchestrations,
      catalog.activities,
      new OrchestratorRunner(invoker, clientInputs),
      new ActivityRunner(invoker, clientInputs),
      entityService,
      logger,
      stats,
    );
    storeDescription = ` (task hub ${settings.hubName}: tables ${stores.entities.tableName} and ${stores.instances.tableName} at ${stores.where})`;
  }

  const routes: HttpRoute<HttpFunction>[] = catalog.http.map((fn) => ({
    name: fn.name,
    template: fn.route,
    methods: fn.methods === undefined ? undefined : new Set(fn.methods),
    target: fn,
  }));
  const router = new HttpRouter(routes, settings.routePrefix);
  const server = http.createServer(
    createRequestHandler({
      router,
      invoker,
      webhooks: new DurableWebhooks(
        entityService,
        orchestrationService && entityService && new OrchestrationWebhooks(orchestrationService, entityService, settings.hubName, settings.storageConnectionSetting),
        settings.hubName,
        logger,
      ),
      stats,
      logger,
      cors: { origins: localSettings?.corsOrigins ?? [], credentials: localSettings?.corsCredentials ?? false },
      streamUri,
      clientInputs,
      describeEntities: () => ({ ...entityService?.describe(), orchestrations: orchestrationService?.describe() }),
      logRequests: options.logRequests,
    }),
  );
  server.keepAliveTimeout = 65_000;
  const port = await listen(server, options.port ?? localSettings?.localHttpPort ?? DEFAULT_PORT);
  durableClient.binding = durableClientBindingData(`http://127.0.0.1:${port}`, settings.hubName, settings.storageConnectionSetting);
  const url = `http://localhost:${port}`;

  // Orchestrations first: until they are loaded, entities keep every orchestration's dedupe marks.
  if (orchestrationService !== undefined) {
    const resumed = await orchestrationService.recover();
    if (resumed > 0) logger.info(`Resuming ${resumed} orchestration instance${resumed === 1 ? '' : 's'} left by a previous run.`);
  }
  if (entityService !== undefined) {
    const resumed = await entityService.recover();
    if (resumed > 0) logger.info(`Resuming work of ${resumed} entit${resumed === 1 ? 'y' : 'ies'} left by a previous run.`);
  }

  const lines = describeRoutes(catalog, router, url);
  process.stdout.write(`\nFunctions:\n${lines.length > 0 ? lines.join('\n') : '  (none registered)'}\n`);
  if (streamUri !== undefined) process.stdout.write(`HTTP streaming on (app proxy at ${streamUri}).\n`);
  process.stdout.write(`\nLocal host listening on ${url}${storeDescription}\n`);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const forceClose = setTimeout(() => server.closeAllConnections(), 3_000);
      await Promise.all([orchestrationService?.stop(), entityService?.stop()]);
      await Promise.race([terminateApp(registry), new Promise((resolve) => setTimeout(resolve, 2_000))]).catch((err: unknown) =>
        logger.warn(`appTerminate hook failed: ${describeError(err)}`),
      );
      await closed;
      clearTimeout(forceClose);
    })();
    return stopping;
  };
  return { url, port, stop };
}
