// Azure OpenAI with key auth disabled: callers need an Entra ID token and the
// Cognitive Services OpenAI User role (granted in rbac.bicep).
param name string
param location string
param tags object

@allowed([
  'Enabled'
  'Disabled'
])
@description('Disabled when the app reaches the account through a private endpoint.')
param publicNetworkAccess string

param deploymentName string
param modelName string
param modelVersion string
param skuName string
param capacity int

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: {
    name: 'S0'
  }
  properties: {
    // Token auth (and private endpoints) require a custom subdomain.
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      defaultAction: publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'
    }
  }
}

resource chat 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: deploymentName
  sku: {
    name: skuName
    capacity: capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: modelName
      version: modelVersion
    }
    // Stay on the pinned model version (answers keep their behaviour) until Azure retires it.
    versionUpgradeOption: 'OnceCurrentVersionExpired'
  }
}

output name string = account.name
output endpoint string = account.properties.endpoint
output deploymentName string = chat.name
