/**
 * The one config loader: every setting the app reads (DESIGN.md section 3), parsed and validated
 * once. An empty string counts as unset, because local.settings.sample.json lists the optional
 * settings with empty values.
 */
import { z } from 'zod';
import { ConfigError } from './errors';

const optionalText = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .optional();

const optionalUrl = optionalText.refine((v) => v === undefined || URL.canParse(v), 'must be an absolute URL (http:// or https://)');

function integerSetting(defaultValue: number, min: number, max: number) {
  return optionalText
    .transform((v) => (v === undefined ? defaultValue : Number(v)))
    .refine((n) => Number.isInteger(n) && n >= min && n <= max, `must be an integer from ${min} to ${max}`);
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration: a number of seconds, or a number with a unit (`ms`, `s`, `m`, `h`, `d`), e.g. `90s`, `12h`, `1d`. */
function durationSetting(defaultMs: number, minMs: number, maxMs: number) {
  return optionalText
    .transform((v) => {
      if (v === undefined) return defaultMs;
      const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(v);
      return match === null ? NaN : Math.round(Number(match[1]) * (DURATION_UNITS_MS[match[2] ?? 's'] ?? NaN));
    })
    .refine((ms) => Number.isFinite(ms) && ms >= minMs && ms <= maxMs, `must be a duration from ${minMs / 1000} s to ${maxMs / 86_400_000} days: seconds, or a number with ms, s, m, h or d (e.g. 12h)`);
}

const settingsSchema = z.object({
  AZURE_OPENAI_ENDPOINT: optionalUrl,
  AZURE_OPENAI_API_KEY: optionalText,
  AZURE_OPENAI_API_VERSION: optionalText.transform((v) => v ?? '2024-10-21'),
  AZURE_CLIENT_ID: optionalText,
  CHAT_MODEL_DEPLOYMENT_NAME: optionalText.transform((v) => v ?? 'chat'),
  OPENAI_BASE_URL: optionalUrl,
  OPENAI_API_KEY: optionalText,
  MODEL_TIMEOUT_MS: integerSetting(60_000, 100, 600_000),
  MODEL_MAX_RETRIES: integerSetting(3, 0, 10),
  MODEL_RETRY_BASE_DELAY_MS: integerSetting(500, 0, 60_000),
  MODEL_RETRY_MAX_DELAY_MS: integerSetting(30_000, 0, 300_000),
  MODEL_MAX_COMPLETION_TOKENS: integerSetting(1_000, 1, 1_000_000),
  MODEL_TOKEN_LIMIT_PARAMETER: optionalText
    .transform((v) => v ?? 'max_completion_tokens')
    .pipe(z.enum(['max_completion_tokens', 'max_tokens'])),
  CHAT_HISTORY_TOKEN_BUDGET: integerSetting(4_000, 100, 10_000_000),
  CHAT_REPLY_WAIT_SECONDS: integerSetting(30, 0, 230),
  // Tool rounds (a model call that asks for tools, and those calls) a turn may take before it must answer.
  MAX_TOOL_ROUNDS: integerSetting(8, 0, 100),
  // How long a tool call that needs approval waits for an answer before it counts as denied.
  TOOL_APPROVAL_TIMEOUT: durationSetting(86_400_000, 1_000, 30 * 86_400_000),
  // 24 KiB keeps a page's write signal and the chat's recent messages under the Azure Storage
  // backend's 45 KB inline limit (larger ones go through a compressed blob).
  CHAT_HISTORY_PAGE_BYTES: integerSetting(24 * 1024, 1024, 4 * 1024 * 1024),
  MAX_BODY_BYTES: integerSetting(256 * 1024, 1024, 64 * 1024 * 1024),
  MAX_MESSAGE_CHARS: integerSetting(32_000, 1, 10_000_000),
  // `keys` (function keys, one shared namespace of chats) or `appservice` (App Service Authentication:
  // each signed-in user has their own chats, and the chat routes need no key).
  AUTH_MODE: optionalText.transform((v) => v ?? 'keys').pipe(z.enum(['keys', 'appservice'])),
  // Set by App Service: whether its authentication runs in front of the app (and so sets principal headers).
  WEBSITE_AUTH_ENABLED: optionalText,
  // Set by App Service on every instance: the app runs in Azure, not locally.
  WEBSITE_SITE_NAME: optionalText,
  // Days a chat may stay idle before it is deleted with everything it owns; 0 keeps chats forever.
  CHAT_TTL_DAYS: optionalText
    .transform((v) => (v === undefined ? 30 : Number(v)))
    .refine((n) => Number.isFinite(n) && n >= 0 && n <= 3650, 'must be a number of days from 0 (never) to 3650; fractions are allowed'),
  // The task hub's storage account, which also carries streamed turns (chat replies as they are generated).
  AzureWebJobsStorage: optionalText,
  AzureWebJobsStorage__tableServiceUri: optionalUrl,
  AzureWebJobsStorage__accountName: optionalText,
  AzureWebJobsStorage__clientId: optionalText,
});

type Settings = z.infer<typeof settingsSchema>;

/** How the app reaches a model; `undefined` when neither endpoint is configured. */
export type ModelEndpoint =
  | {
      kind: 'azure';
      endpoint: string;
      deployment: string;
      apiVersion: string;
      /** Key auth when set, else Entra ID through DefaultAzureCredential. */
      apiKey: string | undefined;
      /** Picks a user-assigned managed identity for DefaultAzureCredential. */
      managedIdentityClientId: string | undefined;
    }
  | { kind: 'openai-compatible'; baseURL: string; apiKey: string | undefined; model: string };

export interface ModelSettings {
  endpoint: ModelEndpoint | undefined;
  timeoutMs: number;
  maxRetries: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  maxCompletionTokens: number;
  tokenLimitParameter: 'max_completion_tokens' | 'max_tokens';
}

/** Where streamed turns are published: the AzureWebJobsStorage account's Table service. */
export type StreamStorage =
  | { kind: 'connectionString'; connectionString: string }
  | { kind: 'identity'; tableServiceUri: string; managedIdentityClientId: string | undefined }
  | undefined;

export interface AppConfig {
  model: ModelSettings;
  streamStorage: StreamStorage;
  chat: { historyTokenBudget: number; replyWaitSeconds: number; historyPageBytes: number; maxToolRounds: number; approvalTimeoutMs: number };
  limits: { maxBodyBytes: number; maxMessageChars: number };
  /**
   * Who may use the chat routes. `platformAuth`: App Service Authentication runs in front of the app;
   * `inAzure`: the app runs on App Service (where principal headers are trusted only behind it).
   */
  auth: { mode: 'keys' | 'appservice'; platformAuth: boolean; inAzure: boolean };
  /** How long a chat may stay idle before it is deleted; 0: never. */
  chatTtlMs: number;
}

/** Parses settings from an environment; throws ConfigError naming every invalid setting. */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): AppConfig {
  const parsed = settingsSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid settings: ${problems.join('; ')}`);
  }
  const s: Settings = parsed.data;
  return {
    streamStorage: streamStorage(s),
    model: {
      endpoint: modelEndpoint(s),
      timeoutMs: s.MODEL_TIMEOUT_MS,
      maxRetries: s.MODEL_MAX_RETRIES,
      retryBaseDelayMs: s.MODEL_RETRY_BASE_DELAY_MS,
      retryMaxDelayMs: s.MODEL_RETRY_MAX_DELAY_MS,
      maxCompletionTokens: s.MODEL_MAX_COMPLETION_TOKENS,
      tokenLimitParameter: s.MODEL_TOKEN_LIMIT_PARAMETER,
    },
    chat: { historyTokenBudget: s.CHAT_HISTORY_TOKEN_BUDGET, replyWaitSeconds: s.CHAT_REPLY_WAIT_SECONDS, historyPageBytes: s.CHAT_HISTORY_PAGE_BYTES, maxToolRounds: s.MAX_TOOL_ROUNDS, approvalTimeoutMs: s.TOOL_APPROVAL_TIMEOUT },
    limits: { maxBodyBytes: s.MAX_BODY_BYTES, maxMessageChars: s.MAX_MESSAGE_CHARS },
    auth: { mode: s.AUTH_MODE, platformAuth: s.WEBSITE_AUTH_ENABLED?.toLowerCase() === 'true', inAzure: s.WEBSITE_SITE_NAME !== undefined },
    chatTtlMs: Math.round(s.CHAT_TTL_DAYS * 86_400_000),
  };
}

// As the Functions host reads AzureWebJobsStorage: a connection string, or identity-based settings.
function streamStorage(s: Settings): StreamStorage {
  if (s.AzureWebJobsStorage !== undefined) return { kind: 'connectionString', connectionString: s.AzureWebJobsStorage };
  const tableServiceUri = s.AzureWebJobsStorage__tableServiceUri ?? (s.AzureWebJobsStorage__accountName === undefined ? undefined : `https://${s.AzureWebJobsStorage__accountName}.table.core.windows.net`);
  return tableServiceUri === undefined ? undefined : { kind: 'identity', tableServiceUri, managedIdentityClientId: s.AzureWebJobsStorage__clientId };
}

// Azure OpenAI wins when both are set: it is what `azd up` provisions.
function modelEndpoint(s: Settings): ModelEndpoint | undefined {
  if (s.AZURE_OPENAI_ENDPOINT !== undefined) {
    return {
      kind: 'azure',
      endpoint: s.AZURE_OPENAI_ENDPOINT,
      deployment: s.CHAT_MODEL_DEPLOYMENT_NAME,
      apiVersion: s.AZURE_OPENAI_API_VERSION,
      apiKey: s.AZURE_OPENAI_API_KEY,
      managedIdentityClientId: s.AZURE_CLIENT_ID,
    };
  }
  if (s.OPENAI_BASE_URL !== undefined) {
    return { kind: 'openai-compatible', baseURL: s.OPENAI_BASE_URL, apiKey: s.OPENAI_API_KEY, model: s.CHAT_MODEL_DEPLOYMENT_NAME };
  }
  return undefined;
}

let cached: { config: AppConfig } | { error: ConfigError } | undefined;

/** The process-wide config, read from process.env on first use. Throws the same ConfigError every time if invalid. */
export function getConfig(): AppConfig {
  if (cached === undefined) {
    try {
      cached = { config: loadConfig(process.env) };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      cached = { error: err };
    }
  }
  if ('error' in cached) throw cached.error;
  return cached.config;
}
