#!/bin/sh
# azd postprovision hook (POSIX): point local runs at the model `azd provision` just deployed by
# writing local.settings.json from the azd environment's outputs. The JSON work is done in Node
# (which `npm start` needs anyway) so this hook and the PowerShell one behave identically.
set -eu

# azd runs hooks from the project root; cd there anyway so a manual run from elsewhere works too.
cd "$(dirname "$0")/../.."

# Capture first (rather than pipe) so a failing azd stops the hook instead of feeding Node nothing.
values="$(azd env get-values --output json)"
printf '%s\n' "$values" | node infra/hooks/write-local-settings.mjs
