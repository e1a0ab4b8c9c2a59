// durable-functions does not export its entity batch runner; tests use it to run entities through the SDK's real handler.
declare module 'durable-functions/lib/src/entities/Entity' {
  import type { InvocationContext } from '@azure/functions';
  import type { EntityContext } from 'durable-functions';
  export class Entity<T> {
    constructor(fn: (context: EntityContext<T>) => unknown);
    listen(): (trigger: unknown, context: InvocationContext) => Promise<unknown>;
  }
}

// Nor its orchestration replayer; tests run orchestrators through it over a history they build (test/support/orchestration.ts).
declare module 'durable-functions/lib/src/orchestrations/Orchestrator' {
  import type { InvocationContext } from '@azure/functions';
  import type { OrchestrationHandler } from 'durable-functions';
  export class Orchestrator {
    constructor(fn: OrchestrationHandler);
    listen(): (trigger: unknown, context: InvocationContext) => Promise<unknown>;
  }
}
