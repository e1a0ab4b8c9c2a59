/**
 * The app folder's configuration, read once at start-up like `func start` does: package.json `main`,
 * host.json (route prefix, task hub, entity batch size, functionTimeout) and local.settings.json
 * (`Values` become environment variables; variables already set win, so tests can override).
 */
import path from 'node:path';
import { z } from 'zod';
import { parseFunctionTimeout } from './duration';
import { readJsonFile } from './jsonFile';

export interface HostJsonSettings {
  /** Without slashes; '' means routes sit at the root. */
  routePrefix: string;
  /** Task hub name as configured (after %setting% expansion), default "TestHubName" like func start. */
  hubName: string;
  /** Operations per entity batch; default 10, at most 50 so one batch always fits one table transaction. */
  maxEntityOperationBatchSize: number;
  /** undefined = no limit ("-1"). Default 30 minutes (the Flex Consumption default). */
  functionTimeoutMs: number | undefined;
  /** App setting holding the durable storage connection string (default AzureWebJobsStorage). */
  storageConnectionSetting: string;
}

export interface LocalSettings {
  values: Record<string, string>;
  localHttpPort: number | undefined;
  /** Host.CORS: comma-separated allowed origins, or "*". */
  corsOrigins: string[];
  corsCredentials: boolean;
}

export const DEFAULT_ROUTE_PREFIX = 'api';
export const DEFAULT_HUB_NAME = 'TestHubName';
export const DEFAULT_ENTITY_BATCH_SIZE = 10;
export const MAX_ENTITY_BATCH_SIZE = 50;
export const DEFAULT_FUNCTION_TIMEOUT_MS = 30 * 60_000;

const hostJsonSchema = z.object({
  functionTimeout: z.string().optional(),
  extensions: z
    .object({
      http: z.object({ routePrefix: z.string().optional() }).optional(),
      durableTask: z
        .object({
          hubName: z.string().optional(),
          maxEntityOperationBatchSize: z.number().int().positive().optional(),
          storageProvider: z
            .object({ connectionName: z.string().optional(), connectionStringName: z.string().optional() })
            .optional(),
        })
        .optional(),
    })
    .optional(),
});

const localSettingsSchema = z.object({
  IsEncrypted: z.boolean().optional(),
  Values: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
  Host: z
    .object({
      LocalHttpPort: z.union([z.number().int(), z.string().regex(/^\d+$/)]).optional(),
      CORS: z.string().optional(),
      CORSCredentials: z.boolean().optional(),
    })
    .optional(),
});

const packageJsonSchema = z.object({ main: z.string().min(1).optional() });

function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
}

/** Replaces %NAME% with the app setting NAME, as the host does for binding and extension settings. */
export function expandAppSettingReferences(value: string, env: NodeJS.ProcessEnv): string {
  return value.replace(/%([^%]+)%/g, (whole, name: string) => env[name] ?? whole);
}

export function readHostJson(appRoot: string, env: NodeJS.ProcessEnv): HostJsonSettings {
  const file = path.join(appRoot, 'host.json');
  const raw = readJsonFile(file) ?? {};
  const parsed = hostJsonSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${file}: ${describeIssues(parsed.error)}`);
  const durable = parsed.data.extensions?.durableTask;
  const routePrefix = (parsed.data.extensions?.http?.routePrefix ?? DEFAULT_ROUTE_PREFIX).replace(/^\/+|\/+$/g, '');
  const hubName = expandAppSettingReferences(durable?.hubName ?? DEFAULT_HUB_NAME, env);
  const batchSize = durable?.maxEntityOperationBatchSize ?? DEFAULT_ENTITY_BATCH_SIZE;
  const timeout = parsed.data.functionTimeout;
  return {
    routePrefix,
    hubName,
    maxEntityOperationBatchSize: Math.min(batchSize, MAX_ENTITY_BATCH_SIZE),
    functionTimeoutMs: timeout === undefined ? DEFAULT_FUNCTION_TIMEOUT_MS : parseFunctionTimeout(timeout),
    storageConnectionSetting:
      durable?.storageProvider?.connectionName ?? durable?.storageProvider?.connectionStringName ?? 'AzureWebJobsStorage',
  };
}

export function readLocalSettings(appRoot: string): LocalSettings | undefined {
  const file = path.join(appRoot, 'local.settings.json');
  const raw = readJsonFile(file);
  if (raw === undefined) return undefined;
  const parsed = localSettingsSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${file}: ${describeIssues(parsed.error)}`);
  if (parsed.data.IsEncrypted === true) {
    throw new Error(`${file} is encrypted (IsEncrypted: true); the local host only reads plain settings.`);
  }
  const values: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed.data.Values ?? {})) {
    if (value !== null) values[name] = String(value);
  }
  const port = parsed.data.Host?.LocalHttpPort;
  const cors = parsed.data.Host?.CORS;
  return {
    values,
    localHttpPort: port === undefined ? undefined : Number(port),
    corsOrigins: cors === undefined ? [] : cors.split(',').map((origin) => origin.trim()).filter((origin) => origin !== ''),
    corsCredentials: parsed.data.Host?.CORSCredentials ?? false,
  };
}

/** Copies Values into env without overriding what is already set; returns the names it set. */
export function applyLocalSettingsToEnv(values: Record<string, string>, env: NodeJS.ProcessEnv): string[] {
  const applied: string[] = [];
  for (const [name, value] of Object.entries(values)) {
    if (env[name] === undefined) {
      env[name] = value;
      applied.push(name);
    }
  }
  return applied;
}

export function readPackageMain(appRoot: string): string {
  const file = path.join(appRoot, 'package.json');
  const raw = readJsonFile(file);
  if (raw === undefined) throw new Error(`No package.json in ${appRoot}; pass --app-root <folder of the function app>.`);
  const parsed = packageJsonSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${file}: ${describeIssues(parsed.error)}`);
  if (parsed.data.main === undefined) {
    throw new Error(`${file} has no "main"; the Node.js v4 programming model loads the files it names.`);
  }
  return parsed.data.main;
}
