/**
 * Loads the function app like the worker's startApp: expand package.json `main`, load each file
 * (require for CommonJS, import() for ES modules), run the app's `appStart` hooks, then ask the
 * programming model for its capabilities — which locks `app.setup()` and, with
 * `enableHttpStream`, starts the library's HTTP proxy and reports its `HttpUri`.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { readJsonFile } from '../settings/jsonFile';
import { readPackageMain } from '../settings/appSettings';
import type { WorkerRegistry } from './coreApi';
import type { WorkerCapabilities } from './coreTypes';
import { globFiles } from './glob';

/** What the worker reports before asking the programming model (getWorkerCapabilities). */
const WORKER_CAPABILITIES: WorkerCapabilities = {
  RawHttpBodyBytes: 'true',
  RpcHttpTriggerMetadataRemoved: 'true',
  RpcHttpBodyOnly: 'true',
  IgnoreEmptyValuedRpcHttpHeaders: 'true',
  UseNullableValueDictionaryForHttp: 'true',
  WorkerStatus: 'true',
  TypedDataCollection: 'true',
  HandlesWorkerTerminateMessage: 'true',
};

export class AppLoadError extends Error {}

export interface LoadedApp {
  entryPoints: string[];
  capabilities: WorkerCapabilities;
}

function isEsModule(file: string, packageType: string | undefined): boolean {
  if (file.endsWith('.mjs')) return true;
  if (file.endsWith('.cjs')) return false;
  return packageType === 'module';
}

function readPackageType(appRoot: string): string | undefined {
  const raw = readJsonFile(path.join(appRoot, 'package.json'));
  if (typeof raw === 'object' && raw !== null && 'type' in raw && typeof raw.type === 'string') return raw.type;
  return undefined;
}

export async function loadApp(appRoot: string, registry: WorkerRegistry): Promise<LoadedApp> {
  const main = readPackageMain(appRoot);
  const entryPoints = globFiles(main, appRoot);
  if (entryPoints.length === 0) {
    throw new AppLoadError(
      `package.json "main" (${main}) matches no files in ${appRoot}. Build the app first (npm run build).`,
    );
  }
  const packageType = readPackageType(appRoot);
  const requireFromApp = createRequire(path.join(appRoot, 'package.json'));
  for (const entryPoint of entryPoints) {
    const file = path.join(appRoot, entryPoint);
    try {
      if (isEsModule(file, packageType)) await import(pathToFileURL(file).href);
      else requireFromApp(file);
    } catch (err) {
      const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
      throw new AppLoadError(`Failed to load entry point "${entryPoint}": ${detail}`);
    }
  }
  if (registry.programmingModel === undefined) {
    throw new AppLoadError(
      `No function registered: ${entryPoints.join(', ')} never used @azure/functions (the app must call app.http, df.app.entity, ...).`,
    );
  }
  const appStartContext = {
    get hookData() {
      return registry.appLevelOnlyHookData;
    },
    get appHookData() {
      return registry.appHookData;
    },
    functionAppDirectory: appRoot,
  };
  await registry.executeHooks('appStart', appStartContext);
  registry.finishStartup();
  const model = registry.programmingModel;
  const capabilities = model.getCapabilities ? await model.getCapabilities({ ...WORKER_CAPABILITIES }) : { ...WORKER_CAPABILITIES };
  return { entryPoints, capabilities };
}

export async function terminateApp(registry: WorkerRegistry): Promise<void> {
  await registry.executeHooks('appTerminate', {
    get hookData() {
      return registry.appLevelOnlyHookData;
    },
    get appHookData() {
      return registry.appHookData;
    },
  });
}
