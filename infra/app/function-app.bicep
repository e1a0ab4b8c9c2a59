// The Flex Consumption plan and the Linux function app that runs the compiled TypeScript. Every
// connection is identity-based: the deployment package, the Durable task hub storage, Application
// Insights and Azure OpenAI are all reached with the user-assigned identity's Entra ID tokens.
param name string
param planName string
param location string
param tags object
param identityName string
param storageAccountName string
param deploymentContainerName string
param appInsightsName string
param openAiEndpoint string
param chatDeploymentName string

@allowed([
  '20'
  '22'
])
param nodeVersion string

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Subnet for outbound VNet integration; empty when the app is not in a virtual network.')
param subnetId string

@description('Client id of the Entra ID app registration App Service Authentication validates tokens for; empty: no platform authentication (function keys).')
param authClientId string = ''

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: identityName
}

resource storage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    // Linux.
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      // On Flex Consumption the language lives here; a FUNCTIONS_WORKER_RUNTIME app setting is rejected.
      runtime: {
        name: 'node'
        version: nodeVersion
      }
    }
  }

  // App settings as a child resource so the list is the whole truth (no portal drift survives a
  // re-provision). None of them is a secret.
  resource appSettings 'config' = {
    name: 'appsettings'
    properties: union({
      // Durable task hub and host storage, identity-based: no AccountKey anywhere.
      AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
      AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
      AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identity.properties.clientId
      // The connection string only says where to send telemetry; the authentication string makes
      // the host use the identity's token, which App Insights requires with local auth disabled.
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
      // Read by src/config: the model endpoint, and which identity DefaultAzureCredential picks.
      AZURE_OPENAI_ENDPOINT: openAiEndpoint
      CHAT_MODEL_DEPLOYMENT_NAME: chatDeploymentName
      AZURE_CLIENT_ID: identity.properties.clientId
    }, empty(authClientId) ? {} : {
      // src/config: chats per signed-in user, trusting the principal headers the platform sets.
      AUTH_MODE: 'appservice'
    })
  }

  // App Service Authentication with Entra ID: a request without a valid token for the app
  // registration is answered 401 before it reaches the app (an API, so no login redirect).
  resource authSettings 'config' = if (!empty(authClientId)) {
    name: 'authsettingsV2'
    properties: {
      platform: {
        enabled: true
      }
      globalValidation: {
        requireAuthentication: true
        unauthenticatedClientAction: 'Return401'
      }
      httpSettings: {
        requireHttps: true
      }
      identityProviders: {
        azureActiveDirectory: {
          enabled: true
          registration: {
            clientId: authClientId
            openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
          }
          validation: {
            allowedAudiences: [
              'api://${authClientId}'
              authClientId
            ]
          }
        }
      }
    }
  }
}

// No publishing credentials: deployments (azd, CI) authenticate with Entra ID, not basic auth.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output uri string = 'https://${functionApp.properties.defaultHostName}'
