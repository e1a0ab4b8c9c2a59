/**
 * The azd postprovision hook: after `azd provision` it must leave a local.settings.json that makes
 * `npm start` call the deployed model with the developer's Entra ID login, without destroying
 * settings the developer already had. The sh hook runs for real against a stand-in `azd` on PATH.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ROOT } from './compiled';

const WRITER = join(ROOT, 'infra', 'hooks', 'write-local-settings.mjs');
const ENDPOINT = 'https://oai-abc123.openai.azure.com/';

// What `azd env get-values --output json` prints after provisioning main.bicep (abridged).
const AZD_VALUES = {
  AZURE_ENV_NAME: 'dev',
  AZURE_LOCATION: 'eastus2',
  AZURE_OPENAI_ENDPOINT: ENDPOINT,
  CHAT_MODEL_DEPLOYMENT_NAME: 'chat',
  AZURE_FUNCTION_APP_NAME: 'func-api-abc123',
};

const settingsSchema = z.object({ IsEncrypted: z.boolean().optional(), Values: z.record(z.string(), z.string()) }).loose();

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'postprovision-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function writer(input: string, target = join(dir, 'local.settings.json')) {
  return spawnSync(process.execPath, [WRITER, target], { input, encoding: 'utf8' });
}

function readSettings(path = join(dir, 'local.settings.json')) {
  return settingsSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
}

describe('write-local-settings.mjs', () => {
  it('writes the deployed endpoint and deployment plus what the local host needs', () => {
    const result = writer(JSON.stringify(AZD_VALUES));
    expect(result.status, result.stderr).toBe(0);
    expect(readSettings()).toEqual({
      IsEncrypted: false,
      Values: {
        AzureWebJobsStorage: 'UseDevelopmentStorage=true',
        FUNCTIONS_WORKER_RUNTIME: 'node',
        AZURE_OPENAI_ENDPOINT: ENDPOINT,
        CHAT_MODEL_DEPLOYMENT_NAME: 'chat',
      },
    });
    expect(result.stdout).toContain(ENDPOINT);
  });

  it('keeps the developer\'s other settings and storage, drops a stale API key, says so', () => {
    const path = join(dir, 'local.settings.json');
    writeFileSync(
      path,
      JSON.stringify({
        IsEncrypted: false,
        Host: { LocalHttpPort: 7072 },
        Values: {
          AzureWebJobsStorage: 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1',
          CHAT_HISTORY_TOKEN_BUDGET: '8000',
          AZURE_OPENAI_ENDPOINT: 'https://old.openai.azure.com/',
          AZURE_OPENAI_API_KEY: 'stale-key',
          OPENAI_BASE_URL: 'http://localhost:11434/v1',
        },
      }),
    );
    const result = writer(JSON.stringify({ ...AZD_VALUES, CHAT_MODEL_DEPLOYMENT_NAME: 'gpt4o' }));
    expect(result.status, result.stderr).toBe(0);
    expect(readSettings()).toEqual({
      IsEncrypted: false,
      Host: { LocalHttpPort: 7072 },
      Values: {
        AzureWebJobsStorage: 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1',
        CHAT_HISTORY_TOKEN_BUDGET: '8000',
        AZURE_OPENAI_ENDPOINT: ENDPOINT,
        CHAT_MODEL_DEPLOYMENT_NAME: 'gpt4o',
        OPENAI_BASE_URL: 'http://localhost:11434/v1',
        FUNCTIONS_WORKER_RUNTIME: 'node',
      },
    });
    expect(result.stdout).toContain('removed AZURE_OPENAI_API_KEY');
  });

  it('refuses, naming the missing output, when the environment was never provisioned', () => {
    const path = join(dir, 'local.settings.json');
    writeFileSync(path, '{"Values":{"KEEP":"me"}}');
    const result = writer(JSON.stringify({ AZURE_ENV_NAME: 'dev', CHAT_MODEL_DEPLOYMENT_NAME: 'chat' }));
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('AZURE_OPENAI_ENDPOINT is not in the azd environment');
    expect(readFileSync(path, 'utf8')).toBe('{"Values":{"KEEP":"me"}}');
  });

  it('does not overwrite a local.settings.json it cannot parse', () => {
    const path = join(dir, 'local.settings.json');
    writeFileSync(path, '{ "Values": { // hand-edited\n');
    const result = writer(JSON.stringify(AZD_VALUES));
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('is not valid JSON');
    expect(readFileSync(path, 'utf8')).toBe('{ "Values": { // hand-edited\n');
  });

  it('rejects the dotenv form of `azd env get-values` with a pointer to --output json', () => {
    const result = writer(`AZURE_OPENAI_ENDPOINT="${ENDPOINT}"\nCHAT_MODEL_DEPLOYMENT_NAME="chat"\n`);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('--output json');
    expect(existsSync(join(dir, 'local.settings.json'))).toBe(false);
  });
});

/**
 * A project copy with the hooks and a fake `azd` first on PATH. The fake answers only the exact
 * command the hook must use, so a hook calling azd differently fails the test.
 */
function fakeProject(azdExitCode = 0): { project: string; env: NodeJS.ProcessEnv } {
  const project = join(dir, 'project');
  mkdirSync(join(project, 'infra'), { recursive: true });
  cpSync(join(ROOT, 'infra', 'hooks'), join(project, 'infra', 'hooks'), { recursive: true });
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const valuesFile = join(dir, 'values.json');
  writeFileSync(valuesFile, JSON.stringify(AZD_VALUES));
  writeFileSync(
    join(bin, 'azd'),
    [
      '#!/bin/sh',
      `if [ "$*" != "env get-values --output json" ]; then echo "fake azd: unexpected arguments: $*" >&2; exit 2; fi`,
      azdExitCode === 0 ? `cat '${valuesFile}'` : `echo "ERROR: no environment found" >&2; exit ${azdExitCode}`,
      '',
    ].join('\n'),
  );
  chmodSync(join(bin, 'azd'), 0o755);
  return { project, env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` } };
}

describe.skipIf(process.platform === 'win32')('postprovision.sh (with a stand-in azd)', () => {
  it('writes local.settings.json at the project root, whatever the working directory', () => {
    const { project, env } = fakeProject();
    const result = spawnSync('sh', [join(project, 'infra', 'hooks', 'postprovision.sh')], { cwd: dir, env, encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    expect(readSettings(join(project, 'local.settings.json')).Values).toMatchObject({
      AZURE_OPENAI_ENDPOINT: ENDPOINT,
      CHAT_MODEL_DEPLOYMENT_NAME: 'chat',
      AzureWebJobsStorage: 'UseDevelopmentStorage=true',
      FUNCTIONS_WORKER_RUNTIME: 'node',
    });
    expect(existsSync(join(dir, 'local.settings.json'))).toBe(false);
  });

  it('fails, and writes nothing, when azd fails', () => {
    const { project, env } = fakeProject(1);
    const result = spawnSync('sh', [join(project, 'infra', 'hooks', 'postprovision.sh')], { cwd: project, env, encoding: 'utf8' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('no environment found');
    expect(existsSync(join(project, 'local.settings.json'))).toBe(false);
  });
});

const pwsh = spawnSync('pwsh', ['-NoProfile', '-Command', '$PSVersionTable.PSVersion.Major'], { encoding: 'utf8' });
describe.skipIf(pwsh.status !== 0 || process.platform === 'win32')(`postprovision.ps1 (with a stand-in azd)${pwsh.status !== 0 ? ' (skipped: pwsh is not installed here)' : ''}`, () => {
  it('writes local.settings.json at the project root', () => {
    const { project, env } = fakeProject();
    const result = spawnSync('pwsh', ['-NoProfile', '-File', join(project, 'infra', 'hooks', 'postprovision.ps1')], { cwd: dir, env, encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    expect(readSettings(join(project, 'local.settings.json')).Values).toMatchObject({ AZURE_OPENAI_ENDPOINT: ENDPOINT, CHAT_MODEL_DEPLOYMENT_NAME: 'chat' });
  });
});
