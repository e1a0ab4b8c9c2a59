/**
 * Sorts the registered functions into what the local host can run — httpTrigger functions (with
 * durableClient inputs and http outputs) and the Durable triggers (entity, orchestration, activity) —
 * and collects everything it cannot, so start-up can stop with one message naming each function and
 * trigger/binding.
 */
import { parseRouteTemplate, RouteTemplateError, type RouteTemplate } from './http/routeTemplate';
import type { BindingMetadata, RegisteredFunction } from './worker/coreTypes';

export interface HttpFunction {
  name: string;
  registered: RegisteredFunction;
  triggerBindingName: string;
  route: RouteTemplate;
  /** Upper-case; undefined = all methods. */
  methods: string[] | undefined;
  authLevel: string;
  durableClientBindingNames: string[];
}

export interface EntityFunction {
  name: string;
  /** Entity names are case-insensitive (EntityId lower-cases them). */
  entityName: string;
  registered: RegisteredFunction;
  triggerBindingName: string;
  durableClientBindingNames: string[];
}

/** An orchestrationTrigger or activityTrigger function; names are case-insensitive, as in the extension. */
export interface DurableFunction {
  name: string;
  registered: RegisteredFunction;
  triggerBindingName: string;
  durableClientBindingNames: string[];
}
export type OrchestrationFunction = DurableFunction;
export type ActivityFunction = DurableFunction;

export interface FunctionCatalog {
  http: HttpFunction[];
  entities: Map<string, EntityFunction>;
  /** Keyed by lower-cased name. */
  orchestrations: Map<string, OrchestrationFunction>;
  /** Keyed by lower-cased name. */
  activities: Map<string, ActivityFunction>;
  usesDurableClient: boolean;
  problems: string[];
}

const SUPPORTED_TRIGGERS = 'httpTrigger, entityTrigger, orchestrationTrigger and activityTrigger';
const DURABLE_TRIGGERS = new Set(['entitytrigger', 'orchestrationtrigger', 'activitytrigger']);

function isTriggerType(type: string): boolean {
  return /trigger$/i.test(type);
}

function isDurableClient(binding: BindingMetadata): boolean {
  const type = binding.type.toLowerCase();
  return type === 'durableclient' || type === 'orchestrationclient';
}

function describeBinding(name: string, binding: BindingMetadata): string {
  const direction = binding.direction.toLowerCase() === 'in' ? 'input' : binding.direction.toLowerCase() === 'out' ? 'output' : binding.direction;
  return `${direction} binding '${binding.type}' (${name})`;
}

function stringList(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.filter((item): item is string => typeof item === 'string');
}

export function buildCatalog(functions: Map<string, RegisteredFunction>): FunctionCatalog {
  const catalog: FunctionCatalog = { http: [], entities: new Map(), orchestrations: new Map(), activities: new Map(), usesDurableClient: false, problems: [] };
  for (const [name, registered] of functions) {
    const bindings = Object.entries(registered.metadata.bindings);
    const triggers = bindings.filter(([, binding]) => isTriggerType(binding.type));
    const [trigger] = triggers;
    if (trigger === undefined || triggers.length > 1) {
      catalog.problems.push(`Function '${name}' must have exactly one trigger (found ${triggers.length}).`);
      continue;
    }
    const [triggerBindingName, triggerBinding] = trigger;
    const triggerType = triggerBinding.type.toLowerCase();
    if (triggerType !== 'httptrigger' && !DURABLE_TRIGGERS.has(triggerType)) {
      catalog.problems.push(
        `Function '${name}' uses trigger '${triggerBinding.type}', which the local host does not support (it runs ${SUPPORTED_TRIGGERS} functions). Run it with Azure Functions Core Tools (func start).`,
      );
      continue;
    }
    const durableClientBindingNames: string[] = [];
    let unsupported = false;
    for (const [bindingName, binding] of bindings) {
      if (bindingName === triggerBindingName) continue;
      const direction = binding.direction.toLowerCase();
      const supported =
        (direction === 'in' && isDurableClient(binding)) ||
        (direction === 'out' && triggerType === 'httptrigger' && binding.type.toLowerCase() === 'http');
      if (!supported) {
        unsupported = true;
        catalog.problems.push(
          `Function '${name}' uses ${describeBinding(bindingName, binding)}, which the local host does not support (inputs: durableClient; outputs: http). Run it with Azure Functions Core Tools (func start).`,
        );
      } else if (direction === 'in') {
        durableClientBindingNames.push(bindingName);
      }
    }
    if (unsupported) continue;
    if (durableClientBindingNames.length > 0) catalog.usesDurableClient = true;

    if (triggerType === 'entitytrigger') {
      const entityName = name.toLowerCase();
      catalog.entities.set(entityName, { name, entityName, registered, triggerBindingName, durableClientBindingNames });
      continue;
    }
    if (triggerType === 'orchestrationtrigger' || triggerType === 'activitytrigger') {
      const target = triggerType === 'orchestrationtrigger' ? catalog.orchestrations : catalog.activities;
      target.set(name.toLowerCase(), { name, registered, triggerBindingName, durableClientBindingNames });
      continue;
    }
    const routeOption = triggerBinding['route'];
    const routeText = typeof routeOption === 'string' && routeOption.trim() !== '' ? routeOption : name;
    let route: RouteTemplate;
    try {
      route = parseRouteTemplate(routeText);
    } catch (err) {
      const message = err instanceof RouteTemplateError ? err.message : String(err);
      catalog.problems.push(`Function '${name}': ${message}`);
      continue;
    }
    const methods = stringList(triggerBinding['methods'])?.map((method) => method.toUpperCase());
    const authLevel = typeof triggerBinding['authLevel'] === 'string' ? triggerBinding['authLevel'] : 'function';
    catalog.http.push({
      name,
      registered,
      triggerBindingName,
      route,
      methods: methods === undefined || methods.length === 0 ? undefined : methods,
      authLevel,
      durableClientBindingNames,
    });
  }
  return catalog;
}
