/**
 * The one place that turns results and errors into HTTP responses. Handlers throw AppErrors;
 * `handleErrors` maps them to `{"error":{"code","message"}}` JSON. Anything else is a bug: it is
 * logged and answered with a generic 500 that reveals nothing (no message, no stack).
 */
import type { HttpHandler, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { AppError } from '../errors';

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): HttpResponseInit {
  return { status, jsonBody: body, headers: { 'Content-Type': 'application/json; charset=utf-8', ...headers } };
}

export function textResponse(status: number, text: string, headers: Record<string, string> = {}): HttpResponseInit {
  return { status, body: text, headers: { 'Content-Type': 'text/plain; charset=utf-8', ...headers } };
}

export function errorResponse(err: unknown, context: InvocationContext): HttpResponseInit {
  if (err instanceof AppError) {
    if (err.status >= 500) context.warn(`${err.code}: ${err.message}`);
    return jsonResponse(err.status, { ...err.body, error: { code: err.code, message: err.message } }, { ...err.headers });
  }
  context.error('Unhandled error', err instanceof Error ? `${err.name}: ${err.message}` : typeof err);
  return jsonResponse(500, { error: { code: 'internal_error', message: 'The server failed to process the request.' } });
}

/** Wraps a handler so every thrown error goes through `errorResponse`. */
export function handleErrors(
  handler: (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>,
): HttpHandler {
  return async (request, context) => {
    try {
      return await handler(request, context);
    } catch (err) {
      return errorResponse(err, context);
    }
  };
}
