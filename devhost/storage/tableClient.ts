/**
 * The Table client for the durable store, built from the app setting the task hub uses
 * (AzureWebJobsStorage by default, a connection string; `UseDevelopmentStorage=true` means Azurite
 * at 127.0.0.1:10002). Every request it sends — retries included — is counted for the stats.
 */
import { TableClient } from '@azure/data-tables';
import { classifyStorageRequest, type HostStats } from '../stats';

export class StorageConfigurationError extends Error {}

/** Table names: 3-63 letters/digits, starting with a letter. */
function hubTableName(hubName: string, suffix: string): string {
  let base = hubName.replace(/[^A-Za-z0-9]/g, '');
  if (!/^[A-Za-z]/.test(base)) base = `h${base}`;
  return `${base.slice(0, 63 - suffix.length)}${suffix}`;
}

export const entityTableName = (hubName: string): string => hubTableName(hubName, 'DevhostEntities');
export const orchestrationTableName = (hubName: string): string => hubTableName(hubName, 'DevhostOrchestrations');

export function readStorageConnectionString(settingName: string, env: NodeJS.ProcessEnv): string {
  const value = env[settingName];
  if (value !== undefined && value.trim() !== '') return value.trim();
  const identityBased = Object.keys(env).some((name) => name.toLowerCase().startsWith(`${settingName.toLowerCase()}__`));
  if (identityBased) {
    throw new StorageConfigurationError(
      `${settingName} is configured as an identity-based connection (${settingName}__...); the local host needs a connection string. ` +
        `Set ${settingName}=UseDevelopmentStorage=true (Azurite) in local.settings.json.`,
    );
  }
  throw new StorageConfigurationError(
    `${settingName} is not set. Durable entities and orchestrations need storage: set "${settingName}": "UseDevelopmentStorage=true" in local.settings.json Values and run Azurite (npm start does both).`,
  );
}

/** Where the connection string points, for messages (never the key). */
export function describeStorageEndpoint(connectionString: string): string {
  if (/usedevelopmentstorage=true/i.test(connectionString)) return 'Azurite (http://127.0.0.1:10002)';
  const endpoint = /(?:^|;)\s*TableEndpoint=([^;]+)/i.exec(connectionString)?.[1];
  if (endpoint) return endpoint;
  const account = /(?:^|;)\s*AccountName=([^;]+)/i.exec(connectionString)?.[1];
  return account ? `storage account ${account}` : 'the configured storage account';
}

export function createCountingTableClient(connectionString: string, tableName: string, stats: HostStats): TableClient {
  try {
    return TableClient.fromConnectionString(connectionString, tableName, {
      // Azurite speaks plain http; a real account's connection string uses https anyway.
      allowInsecureConnection: true,
      retryOptions: { maxRetries: 3, retryDelayInMs: 200, maxRetryDelayInMs: 2_000 },
      additionalPolicies: [
        {
          position: 'perRetry',
          policy: {
            name: 'devhostStorageRequestCounter',
            sendRequest: (request, next) => {
              stats.countStorageRequest(classifyStorageRequest(request.method, request.url));
              return next(request);
            },
          },
        },
      ],
    });
  } catch (err) {
    throw new StorageConfigurationError(`The storage connection string is not usable: ${err instanceof Error ? err.message : String(err)}`);
  }
}
