// Everything `azd up` provisions for the durable chat app: a Flex Consumption function app that
// reaches its storage (the Durable task hub), Application Insights and Azure OpenAI with a
// user-assigned managed identity only. No resource here hands out or accepts keys.
//
// Subscription scope because azd creates the resource group as part of the template, so one
// `azd down --purge` removes everything this file made.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; seeds resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region for every resource. azd offers only regions with quota for the default chat model.')
@metadata({
  azd: {
    type: 'location'
    // azd filters the region picker by this quota (model SKU, model name, capacity). Keep it in step
    // with the chat model defaults below.
    usageName: [
      'OpenAI.GlobalStandard.gpt-4o-mini,30'
    ]
  }
})
param location string

@description('Object id of the developer running azd (AZURE_PRINCIPAL_ID). They get the same data-plane roles as the app, so `npm start` can call the deployed model. Empty skips those assignments.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
@description('What kind of principal principalId is: User for a developer, ServicePrincipal when a pipeline runs azd.')
param principalType string = 'User'

@description('Put storage and Azure OpenAI behind private endpoints in a new virtual network and turn their public access off.')
param vnetEnabled bool = false

@allowed([
  '20'
  '22'
])
@description('Node.js major version of the Flex Consumption runtime; package.json engines says ">=20".')
param nodeVersion string = '22'

@allowed([
  512
  2048
  4096
])
@description('Memory per Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
@description('Upper bound on Flex Consumption scale-out; also a bound on spend and on concurrent model calls.')
param maximumInstanceCount int = 100

@description('Name of the chat model deployment; the app reads it as CHAT_MODEL_DEPLOYMENT_NAME.')
param chatDeploymentName string = 'chat'

@description('Model to deploy for chat completions.')
param chatModelName string = 'gpt-4o-mini'

@description('Version of chatModelName.')
param chatModelVersion string = '2024-07-18'

@description('Deployment SKU of the chat model (GlobalStandard, Standard, DataZoneStandard, ...).')
param chatDeploymentSkuName string = 'GlobalStandard'

@minValue(1)
@description('Chat model capacity in thousands of tokens per minute.')
param chatDeploymentCapacity int = 30

@description('Client id of an existing Entra ID app registration. When set, App Service Authentication (Entra ID) fronts the app: every request needs a signed-in user (401 otherwise), and each user has their own chats (AUTH_MODE=appservice). Empty: function keys, one shared namespace.')
param authClientId string = ''

var abbrs = loadJsonContent('abbreviations.json')
// Stable per subscription + environment + region, so re-running `azd up` updates in place.
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    appInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package-${take(functionAppName, 32)}'
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
  }
}

module openAi 'app/openai.bicep' = {
  name: 'openai'
  scope: rg
  params: {
    name: '${abbrs.cognitiveServicesAccounts}${resourceToken}'
    location: location
    tags: tags
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    deploymentName: chatDeploymentName
    modelName: chatModelName
    modelVersion: chatModelVersion
    skuName: chatDeploymentSkuName
    capacity: chatDeploymentCapacity
  }
}

module network 'app/network.bicep' = if (vnetEnabled) {
  name: 'network'
  scope: rg
  params: {
    name: '${abbrs.networkVirtualNetworks}${resourceToken}'
    location: location
    tags: tags
  }
}

module privateEndpoints 'app/private-endpoints.bicep' = if (vnetEnabled) {
  name: 'private-endpoints'
  scope: rg
  params: {
    location: location
    tags: tags
    namePrefix: '${abbrs.networkPrivateEndpoints}${resourceToken}'
    virtualNetworkName: vnetEnabled ? network!.outputs.name : ''
    subnetId: vnetEnabled ? network!.outputs.privateEndpointSubnetId : ''
    storageAccountName: storage.outputs.name
    openAiAccountName: openAi.outputs.name
  }
}

// The app's own identity: what the function app runs as.
module appRoles 'app/rbac.bicep' = {
  name: 'app-roles'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    storageAccountName: storage.outputs.name
    openAiAccountName: openAi.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

// The developer: same data-plane rights, so local runs and troubleshooting need no keys either.
module userRoles 'app/rbac.bicep' = if (!empty(principalId)) {
  name: 'user-roles'
  scope: rg
  params: {
    principalId: principalId
    principalType: principalType
    storageAccountName: storage.outputs.name
    openAiAccountName: openAi.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module api 'app/function-app.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    identityName: identity.outputs.name
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    openAiEndpoint: openAi.outputs.endpoint
    chatDeploymentName: openAi.outputs.deploymentName
    nodeVersion: nodeVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    subnetId: vnetEnabled ? network!.outputs.appSubnetId : ''
    authClientId: authClientId
  }
  // The host starts as soon as the app exists; without its roles it would fail to reach the task
  // hub and the model on first start.
  dependsOn: [
    appRoles
    privateEndpoints
  ]
}

// Read by azd (AZURE_*, SERVICE_*) and by infra/hooks/postprovision.* (local.settings.json).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output RESOURCE_GROUP string = rg.name
output AZURE_OPENAI_ENDPOINT string = openAi.outputs.endpoint
output CHAT_MODEL_DEPLOYMENT_NAME string = openAi.outputs.deploymentName
output AZURE_USER_ASSIGNED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
