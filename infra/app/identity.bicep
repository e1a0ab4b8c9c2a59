// The one identity the function app uses for everything: storage (deployment package and Durable
// task hub), Application Insights ingestion and Azure OpenAI. User-assigned so its roles can be
// granted before the app exists and the app starts with working access.
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
