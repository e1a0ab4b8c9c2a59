/** The model access module: one process-wide client built from the config. */
import { getConfig } from '../config';
import { ModelNotConfiguredError } from '../errors';
import { createModelClient, type ModelClient } from './client';

export { createModelClient, retryAfterFromHeaders } from './client';
export type { Completion, CompletionChunk, CompletionRequest, ModelClient, PromptMessage, ToolCall, ToolSpec } from './client';

let shared: ModelClient | undefined;

/** The client for the configured model; throws ModelNotConfiguredError (503) when there is none. */
export function getModelClient(): ModelClient {
  if (shared !== undefined) return shared;
  const { model } = getConfig();
  if (model.endpoint === undefined) throw new ModelNotConfiguredError();
  shared = createModelClient(model.endpoint, model);
  return shared;
}
