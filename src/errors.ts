/**
 * The one error hierarchy of the app. Every failure a client can cause or see is an AppError with
 * an HTTP status and a stable code; `http/respond.ts` is the only place that turns them into
 * responses. No Azure or HTTP imports here, so the chat domain and the model module can throw them.
 */
export abstract class AppError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;
  /** Extra response headers (e.g. Retry-After). */
  readonly headers: Readonly<Record<string, string>> = {};
  /** Extra top-level fields of the JSON error body (e.g. the seed's `exists:false`). */
  readonly body: Readonly<Record<string, unknown>> = {};
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

export type BadRequestCode =
  | 'invalid_json'
  | 'invalid_encoding'
  | 'incomplete_body'
  | 'invalid_field'
  | 'invalid_chat_id'
  | 'invalid_tool_call_id'
  | 'invalid_timestamp'
  | 'invalid_query'
  | 'unsupported_trigger';

/** 400: the request is malformed; the message says what to fix. */
export class BadRequestError extends AppError {
  readonly status = 400;
  constructor(
    readonly code: BadRequestCode,
    message: string,
  ) {
    super(message);
  }
}

/** 413: a body or a field is over its configured limit. */
export class PayloadTooLargeError extends AppError {
  readonly status = 413;
  readonly code = 'payload_too_large';
}

/** 404: the chat does not exist. The body keeps the seed's `{id, exists:false}` fields. */
export class ChatNotFoundError extends AppError {
  readonly status = 404;
  readonly code = 'chat_not_found';
  override readonly body: Readonly<Record<string, unknown>>;
  constructor(readonly chatId: string) {
    super(`Chat '${chatId}' does not exist. Create it with PUT /api/chats/${chatId}.`);
    this.body = { id: chatId, exists: false };
  }
}

/** 503: no model endpoint is configured; the message names the settings to set. */
export class ModelNotConfiguredError extends AppError {
  readonly status = 503;
  readonly code = 'model_not_configured';
  constructor() {
    super(
      'No model is configured. Set AZURE_OPENAI_ENDPOINT (with CHAT_MODEL_DEPLOYMENT_NAME, optionally AZURE_OPENAI_API_KEY) ' +
        'or OPENAI_BASE_URL (with OPENAI_API_KEY if the server needs one) in local.settings.json or the app settings.',
    );
  }
}

/** 503: a setting has an invalid value; the message names it. */
export class ConfigError extends AppError {
  readonly status = 503;
  readonly code = 'invalid_configuration';
}

/** 429: the model kept throttling after our retries; the client should come back after `retryAfterSeconds`. */
export class ModelThrottledError extends AppError {
  readonly status = 429;
  readonly code = 'model_throttled';
  override readonly headers: Readonly<Record<string, string>>;
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
    this.headers = { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) };
  }
}

/** 502: the model failed (error status, connection failure, unusable answer) after our retries. */
export class ModelFailedError extends AppError {
  readonly status = 502;
  readonly code = 'model_failed';
}

/** 504: the model did not answer within the per-call timeout, after our retries. */
export class ModelTimeoutError extends AppError {
  readonly status = 504;
  readonly code = 'model_timeout';
}

/**
 * 503: the chat store (the Durable task hub: its HTTP API or its storage) kept failing after our
 * retries. Transient by nature, so the client is told when to come back; the failure is the cause.
 */
export class ChatStoreUnavailableError extends AppError {
  readonly status = 503;
  readonly code = 'store_unavailable';
  override readonly headers: Readonly<Record<string, string>>;
  constructor(message: string, retryAfterSeconds: number, options?: ErrorOptions) {
    super(message, options);
    this.headers = { 'Retry-After': String(retryAfterSeconds) };
  }
}

/**
 * 503: a post's message was not yet stored when the post stopped waiting (its signal is held up).
 * Nothing is lost: a retry with the same message id stores it once.
 */
export class MessageNotAcceptedError extends AppError {
  readonly status = 503;
  readonly code = 'not_accepted';
  override readonly headers: Readonly<Record<string, string>> = { 'Retry-After': '1' };
  constructor(readonly messageId: string) {
    super(`Message '${messageId}' is not stored yet; post it again with the same messageId (or Idempotency-Key) to have it stored once.`);
  }
}

/** 401: App Service authentication mode, and the request carries no signed-in user. */
export class UnauthenticatedError extends AppError {
  readonly status = 401;
  readonly code = 'unauthenticated';
}

/** 503: App Service authentication mode, but the platform's authentication is off, so no principal can be trusted. */
export class AuthNotEnabledError extends AppError {
  readonly status = 503;
  readonly code = 'auth_not_enabled';
}

/** 404: the chat has no tool call waiting for approval with this id (never asked, or another chat's). */
export class ApprovalNotFoundError extends AppError {
  readonly status = 404;
  readonly code = 'approval_not_found';
  constructor(chatId: string, toolCallId: string) {
    super(`Chat '${chatId}' has no tool call '${toolCallId}' that waits for approval.`);
  }
}

/** 409: the tool call's approval was decided already (answered, expired, or its turn ended); `decision` says how, when known. */
export class ApprovalSettledError extends AppError {
  readonly status = 409;
  readonly code = 'approval_settled';
  override readonly body: Readonly<Record<string, unknown>>;
  constructor(
    message: string,
    readonly decision?: { approved: boolean; by: string },
  ) {
    super(message);
    this.body = decision === undefined ? {} : { decision: { approved: decision.approved, by: decision.by } };
  }
}

/** 409: a cancel found no turn to stop (none runs, or not the one named). */
export class NoRunningTurnError extends AppError {
  readonly status = 409;
  readonly code = 'no_running_turn';
}

/** 409: the turn to cancel ended (replied or failed) before the cancel reached it. */
export class TurnFinishedError extends AppError {
  readonly status = 409;
  readonly code = 'turn_finished';
}

/** 409: the turn a request waited for was cancelled; its partial text is in the chat's history. */
export class TurnCancelledError extends AppError {
  readonly status = 409;
  readonly code = 'turn_cancelled';
}

/**
 * 500: a stored chat state or history page does not have the shape this version reads (a fault of
 * the store or of a deployment, never of client input). The validation error is the cause.
 */
export class ChatStateInvalidError extends AppError {
  readonly status = 500;
  readonly code = 'chat_state_invalid';
  constructor(what: string, cause: unknown) {
    super(`The stored state of ${what} is not valid; it was left as it is.`, { cause });
  }
}
