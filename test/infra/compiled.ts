/**
 * Reads what `npm run check:infra` (scripts/check-infra.mjs) left in .bicep/out: the compiled ARM
 * template of infra/main.bicep and the `bicep snapshot` predictions of what a deployment creates.
 *
 * Every file is validated with zod on the way in, so the tests work on typed values. If the check
 * was skipped (no Bicep CLI on this machine) the files are absent and `skipReason` says so; if they
 * were compiled from other sources than the ones on disk, `staleReason` says so and the suites fail
 * rather than judge old output.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';

export const ROOT = resolve(__dirname, '..', '..');
export const INFRA = join(ROOT, 'infra');
const OUT = join(ROOT, '.bicep', 'out');
const MANIFEST = join(OUT, 'manifest.json');

export type Json = z.infer<ReturnType<typeof z.json>>;
export type JsonObject = { [key: string]: Json };

const jsonObject = z.record(z.string(), z.json());

const manifestSchema = z.object({
  bicepVersion: z.string(),
  bicepSource: z.string(),
  inputs: z.record(z.string(), z.string()),
  snapshots: z.record(
    z.string(),
    z.object({
      file: z.string(),
      parameters: z.record(z.string(), z.union([z.string(), z.boolean(), z.number()])),
      subscriptionId: z.string(),
      tenantId: z.string(),
    }),
  ),
});
export type Manifest = z.infer<typeof manifestSchema>;

const predictedResourceSchema = z.looseObject({
  id: z.string(),
  type: z.string(),
  name: z.string(),
  apiVersion: z.string(),
  location: z.string().optional(),
  kind: z.string().optional(),
  tags: z.record(z.string(), z.string()).optional(),
  sku: jsonObject.optional(),
  identity: jsonObject.optional(),
  properties: jsonObject.optional(),
});
export type PredictedResource = z.infer<typeof predictedResourceSchema>;

const snapshotSchema = z.object({
  predictedResources: z.array(predictedResourceSchema),
  diagnostics: z.array(z.json()),
  outputs: z.record(z.string(), z.json()),
});

export interface Scenario {
  name: string;
  parameters: Manifest['snapshots'][string]['parameters'];
  subscriptionId: string;
  tenantId: string;
  resources: PredictedResource[];
  outputs: Record<string, Json>;
}

const armParameterSchema = z.looseObject({
  type: z.string(),
  defaultValue: z.json().optional(),
  allowedValues: z.array(z.json()).optional(),
  metadata: z.json().optional(),
});

const armTemplateSchema = z.looseObject({
  $schema: z.string(),
  parameters: z.record(z.string(), armParameterSchema).optional(),
  variables: jsonObject.optional(),
  resources: z.union([z.array(jsonObject), z.record(z.string(), jsonObject)]),
  outputs: jsonObject.optional(),
});
export type ArmTemplate = z.infer<typeof armTemplateSchema>;

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** Why the compiled output cannot be judged at all (check skipped / never run), or undefined. */
export const skipReason: string | undefined = existsSync(MANIFEST)
  ? undefined
  : '.bicep/out is missing: `npm run check:infra` was skipped (no Bicep CLI here) or not run; run it to check infra/';

const manifest: Manifest | undefined = skipReason === undefined ? manifestSchema.parse(readJson(MANIFEST)) : undefined;

/** Why the output does not belong to the infra/ files on disk, or undefined when it does. */
export const staleReason: string | undefined = (() => {
  if (manifest === undefined) return undefined;
  const changed = Object.entries(manifest.inputs)
    .filter(([path, hash]) => !existsSync(join(ROOT, path)) || sha256(join(ROOT, path)) !== hash)
    .map(([path]) => path);
  return changed.length === 0
    ? undefined
    : `.bicep/out was compiled from older sources (${changed.join(', ')} changed since); re-run \`npm run check:infra\``;
})();

export function loadManifest(): Manifest {
  if (manifest === undefined) throw new Error(skipReason);
  return manifest;
}

/** The ARM template compiled from infra/main.bicep. */
export function loadMainTemplate(): ArmTemplate {
  return armTemplateSchema.parse(readJson(join(OUT, 'main.json')));
}

export function loadScenario(name: string): Scenario {
  const entry = loadManifest().snapshots[name];
  if (entry === undefined) throw new Error(`check-infra.mjs produced no scenario "${name}"`);
  const snapshot = snapshotSchema.parse(readJson(join(OUT, entry.file)));
  return { name, ...entry, resources: snapshot.predictedResources, outputs: snapshot.outputs };
}

export function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value at a dotted path (`properties.functionAppConfig.runtime.name`), or undefined. */
export function at(value: Json | undefined, path: string): Json | undefined {
  let current: Json | undefined = value;
  for (const key of path.split('.')) {
    if (!isObject(current)) return undefined;
    current = current[key];
  }
  return current;
}

/** Every string anywhere inside a JSON value (keys included), for "never mentions X" checks. */
export function allStrings(value: Json): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(allStrings);
  if (isObject(value)) return Object.entries(value).flatMap(([key, inner]) => [key, ...allStrings(inner)]);
  return [];
}

/** Resources of a compiled template in both ARM language versions (array, or symbolic-name map). */
export function resourcesOf(template: ArmTemplate): JsonObject[] {
  return Array.isArray(template.resources) ? template.resources : Object.values(template.resources);
}

/**
 * The template and every template nested in it: Bicep inlines each module as a
 * Microsoft.Resources/deployments resource whose properties.template is the module's template.
 */
export function allTemplates(template: ArmTemplate, path = 'main'): { path: string; template: ArmTemplate }[] {
  const nested = resourcesOf(template).flatMap((resource) => {
    if (resource.type !== 'Microsoft.Resources/deployments') return [];
    const inner = at(resource, 'properties.template');
    if (inner === undefined) return [];
    const name = typeof resource.name === 'string' ? resource.name : '?';
    return allTemplates(armTemplateSchema.parse(inner), `${path}/${name}`);
  });
  return [{ path, template }, ...nested];
}

/** How ARM writes a runtime property of a resource in a snapshot: `[reference('<id>', '<api>').<path>]`. */
export function runtimeReference(resource: PredictedResource, propertyPath: string): string {
  return `[reference('${resource.id}', '${resource.apiVersion}').${propertyPath}]`;
}

export function ofType(resources: PredictedResource[], type: string): PredictedResource[] {
  return resources.filter((resource) => resource.type.toLowerCase() === type.toLowerCase());
}

/** The single resource of a type; fails the test (by throwing) when there is none or several. */
export function single(resources: PredictedResource[], type: string): PredictedResource {
  const found = ofType(resources, type);
  if (found.length !== 1) throw new Error(`expected exactly one ${type}, found ${found.length}`);
  const [resource] = found;
  if (resource === undefined) throw new Error(`expected one ${type}`);
  return resource;
}
