import { HttpRequest } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BadRequestError, PayloadTooLargeError } from '../../src/errors';
import { parseChatId, parseTimestampUTC, readJsonBody, textField } from '../../src/http/input';

const limits = { maxBodyBytes: 1024, maxMessageChars: 20 };
const schema = z.object({ message: textField('message', limits.maxMessageChars) });

function post(body: string | Uint8Array, headers: Record<string, string> = {}) {
  return new HttpRequest({
    url: 'http://localhost/api/x',
    method: 'POST',
    headers,
    body: typeof body === 'string' ? { string: body } : { bytes: body },
  });
}
async function failure(promise: Promise<unknown>) {
  return promise.then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('readJsonBody', () => {
  it('parses JSON whatever the Content-Type says, and ignores unknown fields', async () => {
    expect(await readJsonBody(post('{"message":"hi","extra":1}', { 'content-type': 'text/json' }), schema, limits)).toEqual({ message: 'hi' });
    expect(await readJsonBody(post('{"message":"hi"}', { 'content-type': 'text/plain' }), schema, limits)).toEqual({ message: 'hi' });
  });

  it.each([
    ['not JSON', '{message:', 'invalid_json'],
    ['a JSON array', '["hi"]', 'invalid_json'],
    ['a JSON string', '"hi"', 'invalid_json'],
    ['a missing field', '{}', 'invalid_field'],
    ['a wrong-typed field', '{"message": 42}', 'invalid_field'],
    ['a blank field', '{"message": "   "}', 'invalid_field'],
    ['an empty body for a required field', '', 'invalid_field'],
  ])('answers 400 for %s', async (_name, body, code) => {
    const err = await failure(readJsonBody(post(body), schema, limits));
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).code).toBe(code);
  });

  it('takes a binding field from the query string when the body has none, as Functions binding expressions do; the body wins', async () => {
    const at = (query: string, body: string | undefined) =>
      new HttpRequest({ url: `http://localhost/api/x${query}`, method: 'POST', body: body === undefined ? undefined : { string: body } });
    const read = (request: HttpRequest) => readJsonBody(request, schema, limits, ['message']);
    expect(await read(at('?message=Who%20won', undefined))).toEqual({ message: 'Who won' }); // no body
    expect(await read(at('?message=hi', ''))).toEqual({ message: 'hi' }); // an empty body
    expect(await read(at('?message=hi', '{"other":1}'))).toEqual({ message: 'hi' }); // a body without the field
    expect(await read(at('?message=from-query', '{"message":"from-body"}'))).toEqual({ message: 'from-body' });
    // Neither: the usual error. Over the limit in the query: 413, as in the body. A bad body is still refused.
    expect(((await failure(read(at('', undefined)))) as BadRequestError).code).toBe('invalid_field');
    expect(await failure(read(at(`?message=${'x'.repeat(limits.maxMessageChars + 1)}`, undefined)))).toBeInstanceOf(PayloadTooLargeError);
    expect(((await failure(read(at('?message=hi', '{bad')))) as BadRequestError).code).toBe('invalid_json');
    // Only the named fields come from the query.
    expect(((await failure(readJsonBody(at('?message=hi', undefined), schema, limits))) as BadRequestError).code).toBe('invalid_field');
  });

  it('says which field is wrong', async () => {
    const err = await failure(readJsonBody(post('{"message": 42}'), schema, limits));
    expect((err as Error).message).toBe("'message': must be a string");
    const missing = await failure(readJsonBody(post('{}'), schema, limits));
    expect((missing as Error).message).toBe("'message': is required (a string)");
  });

  it('answers 400 for invalid UTF-8', async () => {
    const err = await failure(readJsonBody(post(new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])), schema, limits));
    expect((err as BadRequestError).code).toBe('invalid_encoding');
  });

  it('answers 413 for a body over the limit, even when Content-Length lies', async () => {
    const big = JSON.stringify({ message: 'x'.repeat(2000) });
    expect(await failure(readJsonBody(post(big), schema, limits))).toBeInstanceOf(PayloadTooLargeError);
    expect(await failure(readJsonBody(post(big, { 'content-length': '10' }), schema, limits))).toBeInstanceOf(PayloadTooLargeError);
    expect(await failure(readJsonBody(post('{"message":"hi"}', { 'content-length': '999999' }), schema, limits))).toBeInstanceOf(PayloadTooLargeError);
  });

  it('answers 413 for a field over MAX_MESSAGE_CHARS', async () => {
    const err = await failure(readJsonBody(post(JSON.stringify({ message: 'y'.repeat(21) })), schema, limits));
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect((err as Error).message).toContain('MAX_MESSAGE_CHARS');
  });

  it('does not let __proto__ keys pollute anything', async () => {
    const value = await readJsonBody(post('{"message":"hi","__proto__":{"polluted":true}}'), schema, limits);
    expect(value).toEqual({ message: 'hi' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('parseChatId', () => {
  it.each(['abc123', 'A-b_c.d', 'x'.repeat(128), '0'])('accepts %s', (id) => expect(parseChatId(id)).toBe(id));
  it.each(['', '.', '..', '../etc', 'a/b', 'a@b', 'ünï', 'x'.repeat(129), 'a b', 'a%2Fb', undefined])('rejects %s', (id) => {
    expect(() => parseChatId(id)).toThrow(BadRequestError);
  });
});

describe('parseTimestampUTC', () => {
  it('parses ISO-8601 with and without a zone (no zone = UTC)', () => {
    expect(parseTimestampUTC('2024-01-15T22:00:00')).toBe(Date.parse('2024-01-15T22:00:00Z'));
    expect(parseTimestampUTC('2024-01-15T22:00:00.123Z')).toBe(Date.parse('2024-01-15T22:00:00.123Z'));
    expect(parseTimestampUTC('2024-01-15T23:00:00+01:00')).toBe(Date.parse('2024-01-15T22:00:00Z'));
    expect(parseTimestampUTC('2024-01-15T22:00')).toBe(Date.parse('2024-01-15T22:00:00Z'));
  });
  it('parses what .NET clients send: 7 fractional digits (round-trip "o"), offsets with and without a colon', () => {
    expect(parseTimestampUTC('2026-01-15T22:00:00.1234567Z')).toBe(Date.parse('2026-01-15T22:00:00.123Z'));
    expect(parseTimestampUTC('2026-01-15T22:00:00.1234567')).toBe(Date.parse('2026-01-15T22:00:00.123Z'));
    expect(parseTimestampUTC('2026-01-15T23:00:00.0000000+01:00')).toBe(Date.parse('2026-01-15T22:00:00Z'));
    expect(parseTimestampUTC('2026-01-15T23:00:00+0100')).toBe(Date.parse('2026-01-15T22:00:00Z'));
    expect(parseTimestampUTC('2026-01-15T20:30:00-01:30')).toBe(Date.parse('2026-01-15T22:00:00Z'));
  });
  it("reads an offset whose unencoded '+' the query string turned into a space", () => {
    const query = new URLSearchParams('timestampUTC=2026-01-15T23:00:00+01:00');
    expect(parseTimestampUTC(query.get('timestampUTC') ?? '')).toBe(Date.parse('2026-01-15T22:00:00Z'));
    const encoded = new URLSearchParams(`timestampUTC=${encodeURIComponent('2026-01-15T23:00:00.1234567+01:00')}`);
    expect(parseTimestampUTC(encoded.get('timestampUTC') ?? '')).toBe(Date.parse('2026-01-15T22:00:00.123Z'));
  });
  it.each(['yesterday', '2024-01-15', '2024-13-01T00:00:00Z', '2024-01-15T25:00:00Z', '1705356000', '', '2024-01-15T22:00:00Zjunk'])(
    'rejects %s',
    (raw) => expect(() => parseTimestampUTC(raw)).toThrow(BadRequestError),
  );
});
