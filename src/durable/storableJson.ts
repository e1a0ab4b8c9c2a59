/**
 * Values that cross the Durable extension's storage: signal inputs (queue messages) and entity state
 * (tables, queues, blobs). Two kinds of character do not survive that trip on the Azure Storage
 * backend: U+FFFE and U+FFFF, which queue messages (XML) cannot hold — the queue refuses the
 * message with a 400 — and lone surrogates, which the extension's UTF-8 writes turn into U+FFFD.
 * A value holding either travels as its JSON text with them escaped (`\ufffe`, `\ud800`), inside a
 * wrapper, and is restored exactly when read. Every other value travels as it is.
 */
// JSON.stringify writes U+FFFE/U+FFFF as they are and lone surrogates as \udXXX escapes.
const NOT_STORABLE = /[\ufffe\uffff]|\\u[dD][89a-fA-F][0-9a-fA-F]{2}/;
const ESCAPED_KEY = '$escapedJson';

export function encodeStorable(value: unknown): unknown {
  if (value === undefined) return undefined;
  const json = JSON.stringify(value);
  if (!NOT_STORABLE.test(json)) return value;
  return { [ESCAPED_KEY]: json.replace(/[\ufffe\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`) };
}

export function decodeStorable(value: unknown): unknown {
  if (typeof value === 'object' && value !== null && ESCAPED_KEY in value) {
    const escaped = (value as Record<string, unknown>)[ESCAPED_KEY];
    if (typeof escaped === 'string') return JSON.parse(escaped) as unknown;
  }
  return value;
}
