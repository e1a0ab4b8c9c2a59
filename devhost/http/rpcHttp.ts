/**
 * Converts between Node's HTTP messages and the worker protocol's RpcHttp data, the way the
 * Functions host fills them: request headers and query as string maps (repeated values joined by
 * ","), route params, and the raw body bytes; responses as status, headers, cookies and body bytes.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { RpcTypedData } from '../worker/coreTypes';

/** The host's default request size limit (100 MB). */
export const MAX_REQUEST_BODY_BYTES = 100 * 1024 * 1024;

export class RequestBodyTooLargeError extends Error {}

export async function readRequestBody(req: IncomingMessage, limitBytes = MAX_REQUEST_BODY_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    total += buffer.length;
    if (total > limitBytes) throw new RequestBodyTooLargeError(`Request body exceeds ${limitBytes} bytes.`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks, total);
}

export function flattenHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

export function queryRecord(url: URL): Record<string, string> {
  const query: Record<string, string> = {};
  for (const key of new Set(url.searchParams.keys())) {
    query[key] = url.searchParams.getAll(key).join(',');
  }
  return query;
}

/** The trigger's input data for a buffered (non-streaming) invocation. */
export function toRpcHttpRequest(req: IncomingMessage, url: URL, body: Buffer, params: Record<string, string>): RpcTypedData {
  return {
    http: {
      method: req.method ?? 'GET',
      url: url.href,
      headers: flattenHeaders(req.headers),
      query: queryRecord(url),
      params,
      ...(body.length > 0 ? { body: { bytes: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) } } : {}),
    },
  };
}

const nullableString = z.object({ value: z.string().optional() }).nullish();
const nullableBoolean = z.object({ value: z.boolean().optional() }).nullish();
const nullableNumber = z.object({ value: z.number().optional() }).nullish();

const rpcCookieSchema = z.object({
  name: z.string(),
  value: z.string(),
  domain: nullableString,
  path: nullableString,
  expires: z.object({ value: z.object({ seconds: z.union([z.number(), z.string()]) }).optional() }).nullish(),
  secure: nullableBoolean,
  httpOnly: nullableBoolean,
  sameSite: z.union([z.string(), z.number()]).nullish(),
  maxAge: nullableNumber,
});
export type RpcCookie = z.infer<typeof rpcCookieSchema>;

const typedBodySchema = z
  .object({
    bytes: z.instanceof(Uint8Array).optional(),
    string: z.string().optional(),
    json: z.string().optional(),
  })
  .nullish();

const rpcHttpResponseSchema = z.object({
  statusCode: z.union([z.string(), z.number()]).nullish(),
  headers: z.record(z.string(), z.string()).nullish(),
  cookies: z.array(rpcCookieSchema).nullish(),
  body: typedBodySchema,
});
export type RpcHttpResponse = z.infer<typeof rpcHttpResponseSchema>;

const invocationResponseSchema = z.object({
  returnValue: z.object({ http: rpcHttpResponseSchema.optional() }).nullish(),
  outputData: z.array(z.object({ name: z.string(), data: z.object({ http: rpcHttpResponseSchema.optional() }).nullish() })).nullish(),
});

/**
 * The HTTP response in a worker InvocationResponse: `$return` first, else a named http output.
 * undefined when the function produced none (the host then answers 204).
 */
export function extractHttpResponse(response: unknown): RpcHttpResponse | undefined {
  const parsed = invocationResponseSchema.safeParse(response);
  if (!parsed.success) throw new Error(`Unexpected invocation response from the programming model: ${parsed.error.message}`);
  if (parsed.data.returnValue?.http) return parsed.data.returnValue.http;
  for (const output of parsed.data.outputData ?? []) {
    if (output.data?.http) return output.data.http;
  }
  return undefined;
}

/** Serialises a cookie like ASP.NET Core's Response.Cookies.Append (value percent-encoded). */
export function serializeCookie(cookie: RpcCookie): string {
  const parts = [`${cookie.name}=${encodeURIComponent(cookie.value)}`];
  if (cookie.domain?.value) parts.push(`domain=${cookie.domain.value}`);
  if (cookie.path?.value) parts.push(`path=${cookie.path.value}`);
  const seconds = cookie.expires?.value?.seconds;
  if (seconds !== undefined) parts.push(`expires=${new Date(Number(seconds) * 1000).toUTCString()}`);
  if (cookie.maxAge?.value !== undefined) parts.push(`max-age=${Math.trunc(cookie.maxAge.value)}`);
  if (cookie.secure?.value) parts.push('secure');
  const sameSite = String(cookie.sameSite ?? 'none').toLowerCase();
  if (sameSite === 'lax' || sameSite === '1') parts.push('samesite=lax');
  else if (sameSite === 'strict' || sameSite === '2') parts.push('samesite=strict');
  else if (sameSite === 'explicitnone' || sameSite === '3') parts.push('samesite=none');
  if (cookie.httpOnly?.value) parts.push('httponly');
  return parts.join('; ');
}

/** Headers a proxy must not copy (hop-by-hop) plus the length, which Node recomputes. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'trailers',
  'transfer-encoding',
  'upgrade',
  'content-length',
]);

export function isForwardableHeader(name: string): boolean {
  return !HOP_BY_HOP.has(name.toLowerCase());
}

function bodyBytes(body: RpcHttpResponse['body']): Buffer {
  if (!body) return Buffer.alloc(0);
  if (body.bytes) return Buffer.from(body.bytes.buffer, body.bytes.byteOffset, body.bytes.byteLength);
  if (body.string !== undefined) return Buffer.from(body.string, 'utf8');
  if (body.json !== undefined) return Buffer.from(body.json, 'utf8');
  return Buffer.alloc(0);
}

export function writeRpcHttpResponse(res: ServerResponse, response: RpcHttpResponse, method: string): number {
  const status = Number(response.statusCode ?? 200);
  res.statusCode = Number.isInteger(status) && status >= 100 && status <= 999 ? status : 200;
  for (const [name, value] of Object.entries(response.headers ?? {})) {
    if (isForwardableHeader(name)) res.setHeader(name, value);
  }
  const cookies = (response.cookies ?? []).map(serializeCookie);
  if (cookies.length > 0) res.setHeader('set-cookie', cookies);
  const body = bodyBytes(response.body);
  const noBody = method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304 || (res.statusCode >= 100 && res.statusCode < 200);
  if (noBody) res.end();
  else res.end(body);
  return res.statusCode;
}

export function writeJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function writeJsonError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  writeJson(res, status, { error: { code, message } }, headers);
}
