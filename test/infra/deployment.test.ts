/**
 * What `azd up` would create, as predicted by Bicep's offline deployment engine (`bicep snapshot`,
 * run by scripts/check-infra.mjs for fixed parameter sets). Names, ids and GUIDs are the real
 * computed values; values Azure only knows after creating a resource (an identity's clientId, an
 * endpoint URL) appear as `[reference('<resource id>', '<api>').<property>]`, which pins down
 * exactly which resource and property they come from.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from '../../src/config';
import {
  ROOT,
  allStrings,
  at,
  loadScenario,
  ofType,
  runtimeReference,
  single,
  skipReason,
  staleReason,
  type Json,
  type PredictedResource,
  type Scenario,
} from './compiled';

const ROLES = {
  'Storage Blob Data Owner': 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
  'Storage Queue Data Contributor': '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
  'Storage Table Data Contributor': '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
  'Cognitive Services OpenAI User': '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd',
  'Monitoring Metrics Publisher': '3913510d-42f4-4e42-8a64-420c390055eb',
} as const;
type RoleName = keyof typeof ROLES;

/** The app settings the function app must have, and nothing else (see the exact-set test). */
const EXPECTED_APP_SETTINGS = [
  'AzureWebJobsStorage__blobServiceUri',
  'AzureWebJobsStorage__queueServiceUri',
  'AzureWebJobsStorage__tableServiceUri',
  'AzureWebJobsStorage__credential',
  'AzureWebJobsStorage__clientId',
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
  'AZURE_OPENAI_ENDPOINT',
  'CHAT_MODEL_DEPLOYMENT_NAME',
  'AZURE_CLIENT_ID',
];

interface Deployment {
  scenario: Scenario;
  identity: PredictedResource;
  storage: PredictedResource;
  openAi: PredictedResource;
  appInsights: PredictedResource;
  site: PredictedResource;
  appSettings: Record<string, Json>;
}

function load(name: string): Deployment {
  if (staleReason !== undefined) throw new Error(staleReason);
  const scenario = loadScenario(name);
  const { resources } = scenario;
  const appSettingsResource = ofType(resources, 'Microsoft.Web/sites/config').find((r) => r.name.endsWith('/appsettings'));
  if (appSettingsResource?.properties === undefined) throw new Error('no Microsoft.Web/sites/config appsettings resource');
  return {
    scenario,
    identity: single(resources, 'Microsoft.ManagedIdentity/userAssignedIdentities'),
    storage: single(resources, 'Microsoft.Storage/storageAccounts'),
    openAi: single(resources, 'Microsoft.CognitiveServices/accounts'),
    appInsights: single(resources, 'Microsoft.Insights/components'),
    site: single(resources, 'Microsoft.Web/sites'),
    appSettings: appSettingsResource.properties,
  };
}

/** The scope of a role assignment, from its id (`<scope>/providers/Microsoft.Authorization/...`). */
function scopeOf(assignment: PredictedResource): string {
  const symbolic = /^\[extensionResourceId\('([^']+)', 'Microsoft\.Authorization\/roleAssignments'/.exec(assignment.id);
  if (symbolic?.[1] !== undefined) return symbolic[1];
  const index = assignment.id.toLowerCase().indexOf('/providers/microsoft.authorization/roleassignments/');
  if (index < 0) throw new Error(`cannot tell the scope of ${assignment.id}`);
  return assignment.id.slice(0, index);
}

interface Grant {
  role: string;
  scope: string;
  principalId: Json | undefined;
  principalType: Json | undefined;
}

function grants(deployment: Deployment): Grant[] {
  const prefix = `/subscriptions/${deployment.scenario.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/`;
  return ofType(deployment.scenario.resources, 'Microsoft.Authorization/roleAssignments').map((assignment) => {
    const roleDefinitionId = at(assignment.properties, 'roleDefinitionId');
    if (typeof roleDefinitionId !== 'string' || !roleDefinitionId.startsWith(prefix)) {
      throw new Error(`role assignment ${assignment.name} has roleDefinitionId ${JSON.stringify(roleDefinitionId)}`);
    }
    return {
      role: roleDefinitionId.slice(prefix.length),
      scope: scopeOf(assignment),
      principalId: at(assignment.properties, 'principalId'),
      principalType: at(assignment.properties, 'principalType'),
    };
  });
}

/** Where each role must be granted: on the one resource it is about. */
function expectedScope(deployment: Deployment, role: RoleName): string {
  if (role === 'Cognitive Services OpenAI User') return deployment.openAi.id;
  if (role === 'Monitoring Metrics Publisher') return deployment.appInsights.id;
  return deployment.storage.id;
}

function minimumNodeMajor(): number {
  const { engines } = z.object({ engines: z.object({ node: z.string() }) }).parse(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')));
  const match = /^>=\s*(\d+)(\.\d+){0,2}$/.exec(engines.node.trim());
  if (match?.[1] === undefined) throw new Error(`package.json engines.node is "${engines.node}"; this test understands ">=N" only`);
  return Number(match[1]);
}

describe.skipIf(skipReason !== undefined)(`predicted deployment: default parameters${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let d: Deployment;
  beforeAll(() => {
    d = load('default');
  });

  it('creates the resource group azd looks for (tagged with the environment name)', () => {
    const rg = single(d.scenario.resources, 'Microsoft.Resources/resourceGroups');
    expect(rg.name).toBe('rg-ci');
    expect(rg.tags?.['azd-env-name']).toBe('ci');
    expect(d.scenario.outputs.RESOURCE_GROUP).toBe('rg-ci');
    expect(d.scenario.outputs.AZURE_RESOURCE_GROUP).toBe('rg-ci');
  });

  it('runs a Linux function app on a Flex Consumption (FC1) plan, tagged as the azd service "api"', () => {
    const plan = single(d.scenario.resources, 'Microsoft.Web/serverfarms');
    expect(plan.sku).toEqual({ tier: 'FlexConsumption', name: 'FC1' });
    expect(at(plan.properties, 'reserved')).toBe(true);
    expect(d.site.kind).toBe('functionapp,linux');
    expect(at(d.site.properties, 'serverFarmId')).toBe(plan.id);
    expect(d.site.tags).toEqual({ 'azd-env-name': 'ci', 'azd-service-name': 'api' });
    expect(at(d.site.properties, 'httpsOnly')).toBe(true);
    expect(at(d.site.properties, 'siteConfig.minTlsVersion')).toBe('1.2');
  });

  it('runs Node at a major version that package.json engines allows, configured the Flex way', () => {
    expect(at(d.site.properties, 'functionAppConfig.runtime.name')).toBe('node');
    const version = at(d.site.properties, 'functionAppConfig.runtime.version');
    expect(version).toBe('22');
    expect(Number(version)).toBeGreaterThanOrEqual(minimumNodeMajor());
    expect(at(d.site.properties, 'functionAppConfig.scaleAndConcurrency')).toEqual({ instanceMemoryMB: 2048, maximumInstanceCount: 100 });
  });

  it('runs as the user-assigned identity and pulls its package from blob storage with that identity', () => {
    expect(d.site.identity).toEqual({ type: 'UserAssigned', userAssignedIdentities: { [d.identity.id]: {} } });
    const container = single(d.scenario.resources, 'Microsoft.Storage/storageAccounts/blobServices/containers');
    const containerName = container.name.split('/').at(-1) ?? '';
    expect(container.name).toBe(`${d.storage.name}/default/${containerName}`);
    expect(at(container.properties, 'publicAccess')).toBe('None');
    const blobEndpoint = runtimeReference(d.storage, 'primaryEndpoints.blob').slice(1, -1);
    expect(at(d.site.properties, 'functionAppConfig.deployment.storage')).toEqual({
      type: 'blobContainer',
      value: `[format('{0}{1}', ${blobEndpoint}, '${containerName}')]`,
      authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: d.identity.id },
    });
  });

  it('sets exactly the app settings the app and host read, with no runtime setting Flex rejects', () => {
    expect(Object.keys(d.appSettings).sort()).toEqual([...EXPECTED_APP_SETTINGS].sort());
    // Flex Consumption takes the language from functionAppConfig.runtime and rejects this setting;
    // a plain AzureWebJobsStorage would be a connection string (with a key).
    expect(d.appSettings).not.toHaveProperty('FUNCTIONS_WORKER_RUNTIME');
    expect(d.appSettings).not.toHaveProperty('AzureWebJobsStorage');
  });

  it('connects the host and the Durable task hub to storage with the identity, not a key', () => {
    const clientId = runtimeReference(d.identity, 'clientId');
    expect(d.appSettings).toMatchObject({
      AzureWebJobsStorage__blobServiceUri: runtimeReference(d.storage, 'primaryEndpoints.blob'),
      AzureWebJobsStorage__queueServiceUri: runtimeReference(d.storage, 'primaryEndpoints.queue'),
      AzureWebJobsStorage__tableServiceUri: runtimeReference(d.storage, 'primaryEndpoints.table'),
      AzureWebJobsStorage__credential: 'managedidentity',
      AzureWebJobsStorage__clientId: clientId,
    });
  });

  it('sends telemetry with an Entra ID token of the identity', () => {
    expect(d.appSettings.APPLICATIONINSIGHTS_CONNECTION_STRING).toBe(runtimeReference(d.appInsights, 'ConnectionString'));
    const clientId = runtimeReference(d.identity, 'clientId').slice(1, -1);
    expect(d.appSettings.APPLICATIONINSIGHTS_AUTHENTICATION_STRING).toBe(`[format('ClientId={0};Authorization=AAD', ${clientId})]`);
  });

  it('points the app at the deployed chat model and tells DefaultAzureCredential which identity to use', () => {
    const chat = single(d.scenario.resources, 'Microsoft.CognitiveServices/accounts/deployments');
    expect(chat.name).toBe(`${d.openAi.name}/chat`);
    expect(d.appSettings.AZURE_OPENAI_ENDPOINT).toBe(runtimeReference(d.openAi, 'endpoint'));
    expect(d.appSettings.CHAT_MODEL_DEPLOYMENT_NAME).toBe('chat');
    expect(d.appSettings.AZURE_CLIENT_ID).toBe(runtimeReference(d.identity, 'clientId'));
  });

  it('gives settings that make src/config choose Azure OpenAI with the managed identity and no key, and streamed turns the storage account by identity', () => {
    // Stand-ins for what Azure fills in at deployment time.
    const deployed: Record<string, string> = {
      [runtimeReference(d.openAi, 'endpoint')]: `https://${d.openAi.name}.openai.azure.com/`,
      [runtimeReference(d.identity, 'clientId')]: '99999999-8888-7777-6666-555555555555',
      [runtimeReference(d.storage, 'primaryEndpoints.table')]: `https://${d.storage.name}.table.core.windows.net/`,
    };
    const environment: Record<string, string> = {};
    for (const [name, value] of Object.entries(d.appSettings)) {
      if (typeof value === 'string') environment[name] = deployed[value] ?? value;
    }
    expect(loadConfig(environment).model.endpoint).toEqual({
      kind: 'azure',
      endpoint: `https://${d.openAi.name}.openai.azure.com/`,
      deployment: 'chat',
      apiVersion: expect.any(String),
      apiKey: undefined,
      managedIdentityClientId: '99999999-8888-7777-6666-555555555555',
    });
    expect(loadConfig(environment).streamStorage).toEqual({
      kind: 'identity',
      tableServiceUri: `https://${d.storage.name}.table.core.windows.net/`,
      managedIdentityClientId: '99999999-8888-7777-6666-555555555555',
    });
  });

  it('turns shared-key access off on storage and keeps it TLS 1.2, HTTPS-only and private', () => {
    expect(d.storage.properties).toMatchObject({
      allowSharedKeyAccess: false,
      allowBlobPublicAccess: false,
      minimumTlsVersion: 'TLS1_2',
      supportsHttpsTrafficOnly: true,
      defaultToOAuthAuthentication: true,
      publicNetworkAccess: 'Enabled',
    });
  });

  it('turns local (key) auth off on Azure OpenAI, with the subdomain token auth needs', () => {
    expect(d.openAi.kind).toBe('OpenAI');
    expect(d.openAi.properties).toMatchObject({ disableLocalAuth: true, customSubDomainName: d.openAi.name, publicNetworkAccess: 'Enabled' });
  });

  it('deploys the default chat model under the name the app expects', () => {
    const chat = single(d.scenario.resources, 'Microsoft.CognitiveServices/accounts/deployments');
    expect(chat.sku).toEqual({ name: 'GlobalStandard', capacity: 30 });
    expect(at(chat.properties, 'model')).toEqual({ format: 'OpenAI', name: 'gpt-4o-mini', version: '2024-07-18' });
  });

  it('turns local auth off on Application Insights and its Log Analytics workspace', () => {
    const workspace = single(d.scenario.resources, 'Microsoft.OperationalInsights/workspaces');
    expect(at(d.appInsights.properties, 'DisableLocalAuth')).toBe(true);
    expect(at(d.appInsights.properties, 'WorkspaceResourceId')).toBe(workspace.id);
    expect(at(workspace.properties, 'features.disableLocalAuth')).toBe(true);
  });

  it('allows no basic-auth publishing (FTP or SCM)', () => {
    const policies = ofType(d.scenario.resources, 'Microsoft.Web/sites/basicPublishingCredentialsPolicies');
    expect(policies.map((p) => [p.name, at(p.properties, 'allow')]).sort()).toEqual([
      [`${d.site.name}/ftp`, false],
      [`${d.site.name}/scm`, false],
    ]);
  });

  it('grants the identity each of the five roles, on the resource the role is about', () => {
    const identityGrants = grants(d).filter((g) => g.principalId === runtimeReference(d.identity, 'principalId'));
    for (const [role, id] of Object.entries(ROLES) as [RoleName, string][]) {
      const matching = identityGrants.filter((g) => g.role === id);
      expect(matching, role).toEqual([{ role: id, scope: expectedScope(d, role), principalId: runtimeReference(d.identity, 'principalId'), principalType: 'ServicePrincipal' }]);
    }
    expect(identityGrants).toHaveLength(5);
  });

  it('grants the developer (AZURE_PRINCIPAL_ID) the same five roles as a User', () => {
    const developer = d.scenario.parameters.principalId;
    const userGrants = grants(d).filter((g) => g.principalId === developer);
    for (const [role, id] of Object.entries(ROLES) as [RoleName, string][]) {
      expect(userGrants.filter((g) => g.role === id), role).toEqual([{ role: id, scope: expectedScope(d, role), principalId: developer, principalType: 'User' }]);
    }
    expect(userGrants).toHaveLength(5);
  });

  it('grants no other role (no broad "Cognitive Services User", Owner or Contributor)', () => {
    expect(new Set(grants(d).map((g) => g.role))).toEqual(new Set(Object.values(ROLES)));
    expect(grants(d)).toHaveLength(10);
  });

  it('creates no network resources when vnetEnabled is off', () => {
    expect(d.scenario.resources.filter((r) => r.type.startsWith('Microsoft.Network/'))).toEqual([]);
    expect(at(d.site.properties, 'virtualNetworkSubnetId')).toBeNull();
  });

  it('outputs what azd and the postprovision hook read', () => {
    expect(d.scenario.outputs).toEqual({
      AZURE_LOCATION: 'eastus2',
      AZURE_TENANT_ID: d.scenario.tenantId,
      AZURE_RESOURCE_GROUP: 'rg-ci',
      RESOURCE_GROUP: 'rg-ci',
      AZURE_OPENAI_ENDPOINT: runtimeReference(d.openAi, 'endpoint'),
      CHAT_MODEL_DEPLOYMENT_NAME: 'chat',
      AZURE_USER_ASSIGNED_IDENTITY_CLIENT_ID: runtimeReference(d.identity, 'clientId'),
      AZURE_FUNCTION_APP_NAME: d.site.name,
      SERVICE_API_NAME: d.site.name,
      SERVICE_API_URI: `[format('https://{0}', ${runtimeReference(d.site, 'defaultHostName').slice(1, -1)})]`,
    });
  });

  it('reads no key or connection string with a secret anywhere', () => {
    const text = allStrings(d.scenario.resources as Json).concat(allStrings(d.scenario.outputs));
    expect(text.filter((s) => /\blist[A-Za-z]*\(|AccountKey|SharedAccessKey|SharedAccessSignature|InstrumentationKey=/i.test(s))).toEqual([]);
  });
});

describe.skipIf(skipReason !== undefined)(`predicted deployment: vnetEnabled${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let d: Deployment;
  beforeAll(() => {
    d = load('vnet');
  });

  const publicCloudName = (name: string): string =>
    name.replace(/^\[format\('privatelink\.\{0\}\.\{1\}', '(\w+)', environment\(\)\.suffixes\.storage\)\]$/, 'privatelink.$1.core.windows.net');

  it('turns public network access off on storage and Azure OpenAI', () => {
    expect(d.storage.properties).toMatchObject({ publicNetworkAccess: 'Disabled', networkAcls: { defaultAction: 'Deny' }, allowSharedKeyAccess: false });
    expect(d.openAi.properties).toMatchObject({ publicNetworkAccess: 'Disabled', networkAcls: { defaultAction: 'Deny' }, disableLocalAuth: true });
  });

  it('joins the function app to a subnet delegated to Microsoft.App/environments (Flex Consumption)', () => {
    const vnet = single(d.scenario.resources, 'Microsoft.Network/virtualNetworks');
    expect(at(d.site.properties, 'virtualNetworkSubnetId')).toBe(`${vnet.id}/subnets/app`);
    const subnets = at(vnet.properties, 'subnets');
    expect(Array.isArray(subnets) ? subnets.map((s) => [at(s, 'name'), at(s, 'properties.delegations')]) : subnets).toEqual([
      ['app', [{ name: 'flex-consumption', properties: { serviceName: 'Microsoft.App/environments' } }]],
      ['private-endpoints', undefined],
    ]);
  });

  it('reaches blob, queue, table and OpenAI through private endpoints with private DNS', () => {
    const vnet = single(d.scenario.resources, 'Microsoft.Network/virtualNetworks');
    const zones = ofType(d.scenario.resources, 'Microsoft.Network/privateDnsZones');
    const endpoints = ofType(d.scenario.resources, 'Microsoft.Network/privateEndpoints');
    const zoneGroups = ofType(d.scenario.resources, 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups');
    const expected = [
      { group: 'blob', target: d.storage.id, zone: 'privatelink.blob.core.windows.net' },
      { group: 'queue', target: d.storage.id, zone: 'privatelink.queue.core.windows.net' },
      { group: 'table', target: d.storage.id, zone: 'privatelink.table.core.windows.net' },
      { group: 'account', target: d.openAi.id, zone: 'privatelink.openai.azure.com' },
    ];
    expect(endpoints).toHaveLength(expected.length);
    for (const { group, target, zone } of expected) {
      const endpoint = endpoints.find((e) => JSON.stringify(at(e.properties, 'privateLinkServiceConnections')).includes(`"groupIds":["${group}"]`));
      expect(endpoint, group).toBeDefined();
      expect(at(endpoint?.properties, 'subnet.id')).toBe(`${vnet.id}/subnets/private-endpoints`);
      const connections = at(endpoint?.properties, 'privateLinkServiceConnections');
      expect(Array.isArray(connections) ? connections.map((c) => at(c, 'properties.privateLinkServiceId')) : connections).toEqual([target]);
      const zoneResource = zones.find((z) => publicCloudName(z.name) === zone);
      expect(zoneResource, zone).toBeDefined();
      const zoneGroup = zoneGroups.find((g) => g.name === `${endpoint?.name}/default`);
      expect(JSON.stringify(at(zoneGroup?.properties, 'privateDnsZoneConfigs'))).toContain(JSON.stringify(zoneResource?.id));
    }
    const links = ofType(d.scenario.resources, 'Microsoft.Network/privateDnsZones/virtualNetworkLinks');
    expect(links).toHaveLength(zones.length);
    for (const link of links) expect(at(link.properties, 'virtualNetwork.id')).toBe(vnet.id);
  });

  it('keeps every identity setting and role of the public variant', () => {
    expect(d.appSettings.AzureWebJobsStorage__credential).toBe('managedidentity');
    expect(grants(d)).toHaveLength(10);
  });
});

describe.skipIf(skipReason !== undefined)(`predicted deployment: no AZURE_PRINCIPAL_ID${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let d: Deployment;
  beforeAll(() => {
    d = load('no-principal');
  });

  it('still grants the app identity its five roles, and grants nobody else anything', () => {
    const all = grants(d);
    expect(all).toHaveLength(5);
    expect(new Set(all.map((g) => g.principalId))).toEqual(new Set([runtimeReference(d.identity, 'principalId')]));
    expect(new Set(all.map((g) => g.role))).toEqual(new Set(Object.values(ROLES)));
  });
});

describe.skipIf(skipReason !== undefined)(`predicted deployment: AUTH_CLIENT_ID${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const CLIENT_ID = '99999999-8888-7777-6666-555555555555';
  let d: Deployment;
  beforeAll(() => {
    d = load('auth');
  });

  it('turns on App Service Authentication with Entra ID for the app registration: every request needs a user, APIs get 401', () => {
    const auth = ofType(d.scenario.resources, 'Microsoft.Web/sites/config').find((r) => r.name.endsWith('/authsettingsV2'));
    expect(auth?.name).toBe(`${d.site.name}/authsettingsV2`);
    expect(auth?.properties).toMatchObject({
      platform: { enabled: true },
      globalValidation: { requireAuthentication: true, unauthenticatedClientAction: 'Return401' },
      httpSettings: { requireHttps: true },
      identityProviders: { azureActiveDirectory: { enabled: true, registration: { clientId: CLIENT_ID }, validation: { allowedAudiences: [`api://${CLIENT_ID}`, CLIENT_ID] } } },
    });
    const issuer = at(auth?.properties, 'identityProviders.azureActiveDirectory.registration.openIdIssuer');
    expect(String(issuer)).toMatch(/v2\.0/);
    // No client secret: the app validates bearer tokens; nothing to keep in a setting.
    expect(JSON.stringify(auth?.properties)).not.toMatch(/clientSecret/i);
  });

  it('tells the app to keep chats per signed-in user', () => {
    expect(d.appSettings.AUTH_MODE).toBe('appservice');
    expect(Object.keys(d.appSettings).sort()).toEqual([...EXPECTED_APP_SETTINGS, 'AUTH_MODE'].sort());
  });
});

describe.skipIf(skipReason !== undefined)(`predicted deployment: no AUTH_CLIENT_ID${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it('has no platform authentication and leaves the app on function keys', () => {
    const d = load('default');
    expect(ofType(d.scenario.resources, 'Microsoft.Web/sites/config').map((r) => r.name.split('/').at(-1))).toEqual(['appsettings']);
    expect(d.appSettings).not.toHaveProperty('AUTH_MODE');
  });
});
