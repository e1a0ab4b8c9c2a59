# azd postprovision hook (Windows / PowerShell): point local runs at the model `azd provision` just
# deployed by writing local.settings.json from the azd environment's outputs. The JSON work is done
# in Node (which `npm start` needs anyway) so this hook and the sh one behave identically.
$ErrorActionPreference = 'Stop'

# azd runs hooks from the project root; go there anyway so a manual run from elsewhere works too.
Set-Location (Join-Path $PSScriptRoot '..' '..')

$values = azd env get-values --output json
if ($LASTEXITCODE -ne 0) { throw "azd env get-values failed (exit code $LASTEXITCODE)" }

($values -join "`n") | node infra/hooks/write-local-settings.mjs
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
