// Writes local.settings.json so that `npm start` (or `func start`) talks to the Azure OpenAI
// deployment that `azd provision` created, authenticating as the developer (DefaultAzureCredential
// picks up the az / azd login; main.bicep gave that user Cognitive Services OpenAI User).
//
// Input: the JSON object printed by `azd env get-values --output json`, on stdin.
// Output: local.settings.json in the current directory, or the path given as the first argument.
//
// Existing settings are merged, not discarded, so a developer's own tuning (token budget, port,
// a custom AzureWebJobsStorage) survives re-provisioning. A stale AZURE_OPENAI_API_KEY is removed
// (the deployed account rejects keys), and the hook says so.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

// The deployed account has key auth disabled, so a key left over from another setup would only make
// every model call fail with 401. (OPENAI_BASE_URL may stay: AZURE_OPENAI_ENDPOINT wins over it.)
const KEY_SETTINGS = ['AZURE_OPENAI_API_KEY'];

function fail(message) {
  console.error(`postprovision: ${message}`);
  process.exit(1);
}

function readStdin() {
  try {
    return readFileSync(0, 'utf8');
  } catch (error) {
    fail(`could not read the azd values from stdin: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function parseAzdValues(text) {
  if (text.trim() === '') fail('no input: pipe `azd env get-values --output json` into this script.');
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    fail('the input is not JSON: pipe `azd env get-values --output json` (not the dotenv form) into this script.');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    fail('the input must be a JSON object of azd environment values.');
  }
  return parsed;
}

function requiredValue(values, name) {
  const value = values[name];
  if (typeof value !== 'string' || value.trim() === '') {
    fail(`${name} is not in the azd environment. Run \`azd provision\` (it is an output of infra/main.bicep) and try again.`);
  }
  return value.trim();
}

function readExistingSettings(path) {
  if (!existsSync(path)) return { IsEncrypted: false, Values: {} };
  let parsed;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    // Refuse rather than overwrite: the file may hold settings the developer wants to keep.
    fail(`${path} exists but is not valid JSON; fix or delete it, then run the hook again.`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    fail(`${path} exists but is not a JSON object; fix or delete it, then run the hook again.`);
  }
  const values = parsed.Values;
  if (values !== undefined && (values === null || typeof values !== 'object' || Array.isArray(values))) {
    fail(`${path} has a "Values" entry that is not an object; fix or delete it, then run the hook again.`);
  }
  return { ...parsed, Values: { ...(values ?? {}) } };
}

const azd = parseAzdValues(readStdin());
const endpoint = requiredValue(azd, 'AZURE_OPENAI_ENDPOINT');
const deployment = requiredValue(azd, 'CHAT_MODEL_DEPLOYMENT_NAME');

const target = resolve(process.argv[2] ?? 'local.settings.json');
const settings = readExistingSettings(target);
const values = settings.Values;

const removed = KEY_SETTINGS.filter((name) => typeof values[name] === 'string' && values[name] !== '');
for (const name of KEY_SETTINGS) delete values[name];

// Local runs keep their state in Azurite: the deployed storage account accepts no keys, and the
// task hub of a local run should not mix with the deployed app's.
if (typeof values.AzureWebJobsStorage !== 'string' || values.AzureWebJobsStorage === '') {
  values.AzureWebJobsStorage = 'UseDevelopmentStorage=true';
}
values.FUNCTIONS_WORKER_RUNTIME = 'node';
values.AZURE_OPENAI_ENDPOINT = endpoint;
values.CHAT_MODEL_DEPLOYMENT_NAME = deployment;

// Write-then-rename so an interrupted hook never leaves a truncated file behind.
const temporary = `${target}.tmp-${process.pid}`;
writeFileSync(temporary, `${JSON.stringify(settings, null, 2)}\n`);
renameSync(temporary, target);

console.log(`postprovision: wrote ${target}`);
console.log(`  AZURE_OPENAI_ENDPOINT=${endpoint}`);
console.log(`  CHAT_MODEL_DEPLOYMENT_NAME=${deployment}`);
if (removed.length > 0) {
  console.log(`  removed ${removed.join(', ')} (the deployed account accepts Entra ID tokens only)`);
}
console.log('  `npm start` now calls the deployed model as your az/azd login (Cognitive Services OpenAI User).');
