/**
 * Input validation at the edge: request bodies (JSON whatever the Content-Type, size-limited,
 * strict UTF-8), route parameters and query values. Everything past this module is typed.
 */
import type { HttpRequest } from '@azure/functions';
import { z } from 'zod';
import { BadRequestError, PayloadTooLargeError } from '../errors';

export interface InputLimits {
  maxBodyBytes: number;
  maxMessageChars: number;
}

/**
 * Reads the body as a JSON object and validates it with `schema`. An empty body counts as `{}` so
 * that optional-only bodies (PUT /chats) may be omitted. String fields over their `.max()` are 413.
 * Fields named in `fromQuery` may come from the query string instead, as Functions binding
 * expressions (`{message}`) resolve from the body or the query; the body wins when both have one.
 */
export async function readJsonBody<T>(request: HttpRequest, schema: z.ZodType<T>, limits: InputLimits, fromQuery: readonly string[] = []): Promise<T> {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (Number.isFinite(declared) && declared > limits.maxBodyBytes) throw bodyTooLarge(limits);
  const bytes = await readBodyBytes(request, limits);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new BadRequestError('invalid_encoding', 'The request body is not valid UTF-8.');
  }
  let value: unknown = {};
  if (text.trim() !== '') {
    try {
      value = JSON.parse(text);
    } catch {
      throw new BadRequestError('invalid_json', 'The request body is not valid JSON.');
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BadRequestError('invalid_json', 'The request body must be a JSON object.');
  }
  const fields: Record<string, unknown> = { ...value };
  for (const name of fromQuery) {
    const fromUrl = request.query.get(name);
    if (fields[name] === undefined && fromUrl !== null) fields[name] = fromUrl;
  }
  const parsed = schema.safeParse(fields);
  if (parsed.success) return parsed.data;
  const tooBig = parsed.error.issues.find((issue) => issue.code === 'too_big');
  if (tooBig !== undefined) throw new PayloadTooLargeError(describeIssue(tooBig));
  throw new BadRequestError('invalid_field', parsed.error.issues.map(describeIssue).join('; '));
}

/**
 * A body reader for one schema, built on first use from the limits (which come from the config,
 * read once), so requests do not rebuild schemas.
 */
export function jsonBodyReader<T>(
  getLimits: () => InputLimits,
  build: (limits: InputLimits) => z.ZodType<T>,
  options: { fromQuery?: readonly string[] } = {},
): (request: HttpRequest) => Promise<T> {
  let built: { limits: InputLimits; schema: z.ZodType<T> } | undefined;
  return (request) => {
    if (built === undefined) {
      const limits = getLimits();
      built = { limits, schema: build(limits) };
    }
    return readJsonBody(request, built.schema, built.limits, options.fromQuery);
  };
}

/**
 * The body's bytes, read chunk by chunk so that a body without a Content-Length (chunked) is refused
 * with 413 as soon as it passes the limit, instead of after the client has sent all of it.
 */
async function readBodyBytes(request: HttpRequest, limits: InputLimits): Promise<Uint8Array> {
  const stream: ReadableStream<unknown> | null = request.body;
  if (stream === null) return new Uint8Array(0);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const chunk = await reader.read().catch(() => {
      // The client stopped sending before the body was complete (the host aborts the read): its
      // fault, not ours, so a 400 rather than an unhandled error. It has usually gone by now.
      throw new BadRequestError('incomplete_body', 'The request body ended before it was complete.');
    });
    if (chunk.done) break;
    if (!(chunk.value instanceof Uint8Array)) throw new TypeError('request body chunks must be bytes');
    total += chunk.value.byteLength;
    // Stop reading here; the rest of the upload is the host's to discard.
    if (total > limits.maxBodyBytes) throw bodyTooLarge(limits);
    chunks.push(chunk.value);
  }
  return Buffer.concat(chunks, total);
}

function bodyTooLarge(limits: InputLimits): PayloadTooLargeError {
  return new PayloadTooLargeError(`The request body is larger than ${limits.maxBodyBytes} bytes (MAX_BODY_BYTES).`);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.length > 0 ? `'${issue.path.join('.')}'` : 'body';
  return `${field}: ${issue.message}`;
}

/** A required, non-blank text field of at most `maxChars` characters. */
export function textField(name: string, maxChars: number) {
  return z
    .string({ error: (issue) => (issue.input === undefined ? `is required (a string)` : `must be a string`) })
    .max(maxChars, `is longer than ${maxChars} characters (MAX_MESSAGE_CHARS)`)
    .refine((v) => v.trim() !== '', `${name} must not be empty`);
}

const CHAT_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** A chat id: 1–128 of `A-Z a-z 0-9 - _ .`, so entity keys can neither collide nor escape. */
export function parseChatId(raw: string | undefined): string {
  if (raw === undefined || !CHAT_ID.test(raw) || raw === '.' || raw === '..') {
    throw new BadRequestError('invalid_chat_id', 'chatId must be 1-128 characters of A-Z, a-z, 0-9, "-", "_" or "." (and not "." or "..").');
  }
  return raw;
}

// Reply ids are the message id + '.reply', tool steps '<id>.reply.<round>[.<call>]', and system
// messages are 's-<digits>' (chat/state.ts), so client-chosen ids may not take those forms: a message
// keyed 'x.reply' would share its id with the reply to 'x'.
export const MESSAGE_ID = /^(?!.*\.reply(?:$|\.))(?!s-\d+$)[A-Za-z0-9._:-]{1,128}$/;
export const MESSAGE_ID_RULE = 'must be 1-128 of A-Z a-z 0-9 . _ : -, not contain ".reply" at its end or before a "." and not be of the form "s-<digits>"';

// ISO-8601 date-time; seconds, fraction and zone optional. No zone means UTC (the seed's test.http omits it).
const ISO_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * Parses `timestampUTC` as .NET and JS clients send it: ISO-8601 with up to 9 fractional digits
 * (.NET's round-trip format has 7), `Z`, an offset, or no zone (= UTC). Returns epoch milliseconds.
 */
export function parseTimestampUTC(raw: string): number {
  // An offset's '+' sent without percent-encoding arrives as a space (query strings decode '+' so).
  const text = raw.trim().replace(/ (\d{2}:?\d{2})$/, '+$1');
  const match = ISO_DATE_TIME.exec(text);
  if (match === null) {
    throw new BadRequestError('invalid_timestamp', 'timestampUTC must be an ISO-8601 date-time such as 2026-01-15T22:00:00Z.');
  }
  // Digits past the millisecond (.NET sends 7) are dropped: stored times have milliseconds only.
  const normalised = match[8] === undefined ? `${text}Z` : text;
  const ms = Date.parse(normalised);
  const [month, day, hour, minute, second] = [match[2], match[3], match[4], match[5], match[6] ?? '0'].map(Number) as [number, number, number, number, number];
  if (Number.isNaN(ms) || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    throw new BadRequestError('invalid_timestamp', `timestampUTC '${raw.slice(0, 64)}' is not a valid date-time.`);
  }
  return ms;
}
