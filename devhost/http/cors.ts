/**
 * local.settings.json `Host.CORS` / `Host.CORSCredentials`, as func start applies them: allowed
 * origins get Access-Control-Allow-Origin on responses, and preflight requests are answered here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface CorsSettings {
  origins: string[];
  credentials: boolean;
}

function allowedOrigin(settings: CorsSettings, origin: string | undefined): string | undefined {
  if (origin === undefined || settings.origins.length === 0) return undefined;
  if (settings.origins.includes('*')) return settings.credentials ? origin : '*';
  return settings.origins.some((allowed) => allowed.toLowerCase() === origin.toLowerCase()) ? origin : undefined;
}

/** Adds CORS headers; returns true when the request was a preflight and has been answered. */
export function applyCors(settings: CorsSettings, req: IncomingMessage, res: ServerResponse): boolean {
  const origin = allowedOrigin(settings, typeof req.headers.origin === 'string' ? req.headers.origin : undefined);
  if (origin === undefined) return false;
  res.setHeader('access-control-allow-origin', origin);
  if (origin !== '*') res.setHeader('vary', 'Origin');
  if (settings.credentials) res.setHeader('access-control-allow-credentials', 'true');
  const requestedMethod = req.headers['access-control-request-method'];
  if (req.method === 'OPTIONS' && typeof requestedMethod === 'string') {
    res.setHeader('access-control-allow-methods', requestedMethod);
    const requestedHeaders = req.headers['access-control-request-headers'];
    if (typeof requestedHeaders === 'string') res.setHeader('access-control-allow-headers', requestedHeaders);
    res.setHeader('access-control-max-age', '86400');
    res.writeHead(204).end();
    return true;
  }
  return false;
}
