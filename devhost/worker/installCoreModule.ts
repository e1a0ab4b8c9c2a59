/**
 * Makes `require('@azure/functions-core')` return the host's core API, as the Node.js worker does
 * (it proxies Module.prototype.require). Hooking Module._load covers every CommonJS require,
 * including those made through createRequire and by CommonJS packages imported from ES modules.
 * Must run before the app's first file is loaded, since `@azure/functions` reads the module then.
 */
import Module from 'node:module';

export const CORE_MODULE_NAME = '@azure/functions-core';

type ModuleLoad = (this: unknown, request: string, parent: unknown, isMain: boolean) => unknown;

interface ModuleInternals {
  _load: ModuleLoad;
}

export function installCoreModule(coreModule: object): () => void {
  // Node does not type its internal loader; the shape is stable since Node 0.x.
  const internals = Module as unknown as ModuleInternals;
  const originalLoad = internals._load;
  internals._load = function loadWithCoreModule(this: unknown, request: string, parent: unknown, isMain: boolean): unknown {
    if (request === CORE_MODULE_NAME) return coreModule;
    return originalLoad.call(this, request, parent, isMain);
  };
  return () => {
    internals._load = originalLoad;
  };
}
