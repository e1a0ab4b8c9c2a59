import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { ConfigError } from '../../src/errors';

describe('loadConfig', () => {
  it('has sensible defaults and no model when nothing is set', () => {
    const config = loadConfig({});
    expect(config.model.endpoint).toBeUndefined();
    expect(config.model).toMatchObject({ timeoutMs: 60_000, maxRetries: 3, maxCompletionTokens: 1000, tokenLimitParameter: 'max_completion_tokens' });
    expect(config.chat).toEqual({ historyTokenBudget: 4000, replyWaitSeconds: 30, historyPageBytes: 24576, maxToolRounds: 8, approvalTimeoutMs: 86_400_000 });
    expect(config.limits).toEqual({ maxBodyBytes: 262144, maxMessageChars: 32000 });
  });

  it('finds the storage for streamed turns where the Functions host finds AzureWebJobsStorage: a connection string, or identity-based settings', () => {
    expect(loadConfig({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' }).streamStorage).toEqual({ kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' });
    expect(loadConfig({ AzureWebJobsStorage__accountName: 'acct', AzureWebJobsStorage__clientId: 'id-1' }).streamStorage).toEqual({ kind: 'identity', tableServiceUri: 'https://acct.table.core.windows.net', managedIdentityClientId: 'id-1' });
    expect(loadConfig({ AzureWebJobsStorage__tableServiceUri: 'https://acct.table.core.windows.net/' }).streamStorage).toMatchObject({ kind: 'identity', managedIdentityClientId: undefined });
    expect(loadConfig({}).streamStorage).toBeUndefined();
  });

  it('treats empty strings as unset (the sample settings file lists them empty)', () => {
    expect(loadConfig({ AZURE_OPENAI_ENDPOINT: '', OPENAI_BASE_URL: ' ', MODEL_MAX_RETRIES: '' }).model).toMatchObject({ endpoint: undefined, maxRetries: 3 });
  });

  it('builds an Azure endpoint with Entra ID when no key is set', () => {
    const { endpoint } = loadConfig({ AZURE_OPENAI_ENDPOINT: 'https://x.openai.azure.com/', AZURE_CLIENT_ID: 'abc', CHAT_MODEL_DEPLOYMENT_NAME: 'gpt' }).model;
    expect(endpoint).toEqual({
      kind: 'azure',
      endpoint: 'https://x.openai.azure.com/',
      deployment: 'gpt',
      apiVersion: '2024-10-21',
      apiKey: undefined,
      managedIdentityClientId: 'abc',
    });
  });

  it('builds an OpenAI-compatible endpoint from OPENAI_BASE_URL', () => {
    expect(loadConfig({ OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1', OPENAI_API_KEY: 'k' }).model.endpoint).toEqual({
      kind: 'openai-compatible',
      baseURL: 'http://127.0.0.1:11434/v1',
      apiKey: 'k',
      model: 'chat',
    });
  });

  it('names every invalid setting', () => {
    const attempt = () => loadConfig({ OPENAI_BASE_URL: 'not a url', MODEL_MAX_RETRIES: 'many', CHAT_HISTORY_TOKEN_BUDGET: '5', MODEL_TOKEN_LIMIT_PARAMETER: 'tokens' });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (err) {
      const message = (err as Error).message;
      for (const name of ['OPENAI_BASE_URL', 'MODEL_MAX_RETRIES', 'CHAT_HISTORY_TOKEN_BUDGET', 'MODEL_TOKEN_LIMIT_PARAMETER']) expect(message).toContain(name);
    }
  });

  it('rejects non-integer and out-of-range numbers', () => {
    expect(() => loadConfig({ MODEL_TIMEOUT_MS: '1.5' })).toThrow(/MODEL_TIMEOUT_MS/);
    expect(() => loadConfig({ CHAT_REPLY_WAIT_SECONDS: '231' })).toThrow(/CHAT_REPLY_WAIT_SECONDS/);
    expect(loadConfig({ CHAT_REPLY_WAIT_SECONDS: '0' }).chat.replyWaitSeconds).toBe(0);
    expect(() => loadConfig({ MAX_TOOL_ROUNDS: '101' })).toThrow(/MAX_TOOL_ROUNDS/);
    expect(loadConfig({ MAX_TOOL_ROUNDS: '0' }).chat.maxToolRounds).toBe(0);
  });

  it('reads TOOL_APPROVAL_TIMEOUT as seconds or a number with a unit, from 1 s to 30 days', () => {
    const timeout = (value: string) => loadConfig({ TOOL_APPROVAL_TIMEOUT: value }).chat.approvalTimeoutMs;
    expect(timeout('90')).toBe(90_000);
    expect(timeout('1.5s')).toBe(1_500);
    expect(timeout('2500ms')).toBe(2_500);
    expect(timeout('15m')).toBe(900_000);
    expect(timeout('12h')).toBe(43_200_000);
    expect(timeout('30d')).toBe(30 * 86_400_000);
    for (const bad of ['0', '500ms', '31d', 'soon', '-5s', '1w']) expect(() => timeout(bad)).toThrow(/TOOL_APPROVAL_TIMEOUT/);
  });
});
